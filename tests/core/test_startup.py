"""`zoo list`, `zoo --help`, `zoo plugins` and `import zoo` never import torch (nor Optuna).

Their speed is measured in benchmarks/startup.py; here we check the cause of slowness.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from zoo.cli import cli
try:
    cli.main(args={args!r}, prog_name="zoo")
except SystemExit:
    pass
heavy = [m for m in ("torch", "optuna", "sqlalchemy") if m in sys.modules]
print(("HEAVY " + " ".join(heavy)) if heavy else "NO-TORCH", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list"], ["list", "--json"], ["plugins"], ["run", "--help"], ["sweep", "--help"]],
)
def test_light_commands_do_not_import_torch(args):
    p = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, timeout=60
    )
    assert p.stderr.strip().endswith("NO-TORCH"), p.stderr


def test_import_zoo_is_light():
    code = "import sys, zoo; zoo.hookimpl; zoo.Architecture; print('torch' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "False", p.stderr
