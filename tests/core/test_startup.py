"""`zoo list`, `zoo --help`, `zoo plugins` and `import zoo` never import torch (nor Optuna).

Their speed is measured in benchmarks/startup.py; here we check the cause of slowness.
"""

from __future__ import annotations

import signal
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


SLOW_START = """
import importlib.abc, sys, time
class SlowCommandLine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "zoo.cli":
            print("importing", flush=True)
            # A loaded machine's slow import, interrupted by the test: short sleeps, as an
            # import runs bytecode. Ctrl-C may reach a thread of numpy's BLAS instead of the
            # main one; the main thread sees it when it next runs Python, which one long
            # sleep put off past the test's timeout (a CI run met it).
            for _ in range(3000):
                time.sleep(0.01)
        return None
sys.meta_path.insert(0, SlowCommandLine())
from zoo.__main__ import console
console()
"""


def test_ctrl_c_while_the_command_line_imports_is_one_line_and_exit_130():
    """Ctrl-C that lands while `zoo` is still importing its commands ends like Ctrl-C during
    a command, not in a KeyboardInterrupt traceback (a signalled sweep met it under load)."""
    p = subprocess.Popen(
        [sys.executable, "-c", SLOW_START, "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal gives it: a test process may hold SIGINT ignored (inherited
        # by the child, which then never sees it; two CI runs met it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert p.stdout.readline().strip() == "importing"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert err == "\ninterrupted\n"


def test_the_console_script_is_the_guarded_entry():
    """The installed `zoo` command starts at zoo.__main__:console (the guard above)."""
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "zoo"]
    assert script.value == "zoo.__main__:console"


AT_EXIT = """
import atexit, os, signal, sys, time
def interrupted_teardown():
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the interpreter winds down
    time.sleep(0.2)
    print("teardown went on", flush=True)
atexit.register(interrupted_teardown)
sys.argv = ["zoo", "list"]
from zoo.__main__ import console
console()
"""


def test_ctrl_c_after_the_command_ended_is_ignored():
    """A signal that lands after the command's work, during the interpreter's teardown, is
    no traceback (a signalled `zoo run` met it: "Exception ignored ... KeyboardInterrupt")
    and leaves the command's exit code as it was."""
    p = subprocess.run([sys.executable, "-c", AT_EXIT], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "KeyboardInterrupt" not in p.stderr, p.stderr
    assert p.stdout.strip().endswith("teardown went on")
