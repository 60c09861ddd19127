"""CI's skip policy (tests/skips.py): with ZOO_STRICT_SKIPS=1 a skip it does not allow fails
the session and is named; without it, skips are plain skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import conftest, skips

REPO = Path(__file__).resolve().parents[2]

TESTS = {
    "test_tiny.py": (
        "import pytest\n\n"
        "def test_passes():\n    assert True\n\n"
        "def test_as_root():\n"
        "    pytest.skip('permission bits do not stop this user from reading (root)')\n\n"
        "def test_needs_an_extra():\n"
        "    pytest.importorskip('zoo_no_such_extra')\n"
    ),
    "test_no_data.py": (  # a whole module skipped while collected
        "import pytest\n\n"
        "pytest.skip('../shared/data/scan is absent', allow_module_level=True)\n\n"
        "def test_reads_the_data():\n    assert False\n"
    ),
}


def run_pytest(folder: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    """pytest on the generated tests, with the policy's hook loaded as the suite loads it."""
    env = {k: v for k, v in os.environ.items() if k != skips.ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if strict:
        env[skips.ENV] = "1"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.skips"]
    command += ["-q", "--rootdir", str(folder), str(folder)]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=60)


def test_a_skip_ci_does_not_allow_fails_the_session_only_when_strict(tmp_path):
    for name, text in TESTS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    strict = run_pytest(tmp_path, strict=True)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    lines = strict.stdout.splitlines()
    named = sorted(line for line in lines if line.startswith("DISALLOWED SKIP"))
    assert len(named) == 2, strict.stdout
    assert named[0].startswith("DISALLOWED SKIP test_no_data.py: ")
    assert "../shared/data/scan is absent" in named[0]
    assert named[1].startswith("DISALLOWED SKIP test_tiny.py::test_needs_an_extra: ")
    assert "could not import 'zoo_no_such_extra'" in named[1]
    assert "1 passed, 3 skipped" in strict.stdout
    lenient = run_pytest(tmp_path, strict=False)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert "DISALLOWED" not in lenient.stdout and "1 passed, 3 skipped" in lenient.stdout


def test_the_suite_enforces_the_hook_shown_here():
    assert conftest.pytest_configure is skips.pytest_configure


@pytest.mark.parametrize(
    ("reason", "allowed"),
    [
        ("Skipped: permission bits do not stop this user from reading (root)", True),
        ("a GPU is present", True),
        ("could not import 'sacrebleu': No module named 'sacrebleu'", False),
        ("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql", False),
        ("../shared/data/ud-english-ewt is absent", False),
        ("permission bits do not stop this user from reading (root) on Tuesdays", False),
    ],
)
def test_the_policy_allows_only_what_ci_cannot_have(reason, allowed):
    assert skips.allowed(reason) is allowed
