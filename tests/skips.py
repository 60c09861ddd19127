"""CI's skip policy: the one list of skips CI allows, and the pytest plugin that enforces it.

CI (.ci/run) installs every extra (`test`, `plot`, `tensorboard`, `onnx`, `postgres`, so
Optuna, psycopg, onnx, onnxruntime, matplotlib, TensorBoard and sacrebleu), a PostgreSQL
server, and has the shared data folder `../shared/data` beside the checkout. A test that
skips there for want of any of those is a test CI promises and silently did not run. So with
ZOO_STRICT_SKIPS=1 (set by .ci/run), a skip whose reason matches no entry of `ALLOWED` fails
the session: the exit status is non-zero and the summary has one line per such test, naming
it and its reason. Without the variable, skips behave as pytest's always do (a laptop without
the data or a server still runs the rest).

Skips CI does NOT allow, and why (their reasons match nothing below):
  - a missing extra: `importorskip` of optuna, psycopg, onnx, onnxruntime, matplotlib,
    tensorboard, sacrebleu (CI installs them all);
  - a missing PostgreSQL server (initdb, pg_ctl) or its `postgres` user (.ci/run installs
    the Debian package, which brings both);
  - a missing `../shared/data/...` folder or file (CI has ../shared);
  - "needs Linux /proc" (CI is Linux); "no mount command" and "cannot mount a small tmpfs"
    (CI runs as root on a machine of its own, where the disk-full test can mount one).

To allow another skip, add its reason here with why CI may skip it; tests/conftest.py loads
this policy as its `pytest_configure` hook, and tests/core/test_skip_policy.py shows it works.
"""

from __future__ import annotations

import os
import re

import pytest

ENV = "ZOO_STRICT_SKIPS"
SKIPPED = "Skipped: "  # what pytest puts before the reason of a `pytest.skip(...)`

# reason (a regular expression matching the whole reason) -> why CI may skip it
ALLOWED: dict[str, str] = {
    r"permission bits do not stop this user from reading \(root\)": (
        "CI runs as root, whom permission bits do not stop: the unreadable-file test "
        "cannot make a file it cannot read"
    ),
    r"a GPU is present": (
        "the no-GPU error message can only be checked on a machine without a GPU; CI has "
        "none, so it runs there, and skips only on a developer's GPU machine"
    ),
}


def allowed(reason: str) -> bool:
    """Whether CI may skip a test for this reason (`ALLOWED`)."""
    reason = reason.removeprefix(SKIPPED).strip()
    return any(re.fullmatch(pattern, reason) for pattern in ALLOWED)


def skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """The reason of a skipped test or module, or None when it was not skipped (an
    expected failure, `xfail`, reports as skipped too, and is not a skip)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix(SKIPPED)
    return str(report.longrepr)


class StrictSkips:
    """The plugin active under ZOO_STRICT_SKIPS=1: notes every skip that `ALLOWED` does
    not cover, fails the session for it and names each in the summary."""

    def __init__(self) -> None:
        self.offending: list[str] = []  # one line per skip not allowed

    def note(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        reason = skip_reason(report)
        if reason is None or allowed(reason):
            return
        where = ""
        if isinstance(report.longrepr, tuple):
            where = f" (skipped at {report.longrepr[0]}:{report.longrepr[1]})"
        self.offending.append(f"{report.nodeid or 'collection'}: {reason}{where}")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self.note(report)  # a module skipped as a whole (`importorskip` at its top)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.note(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        quiet = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.offending and session.exitstatus in quiet:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.offending:
            return
        terminalreporter.section(f"skips CI does not allow ({ENV}=1, tests/skips.py)", red=True)
        for line in self.offending:
            terminalreporter.write_line(f"DISALLOWED SKIP {line}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    """With ZOO_STRICT_SKIPS=1, enforce the policy for this session (tests/conftest.py
    takes this as its own hook; `-p tests.skips` loads it elsewhere)."""
    if os.environ.get(ENV) == "1" and not config.pluginmanager.has_plugin("zoo-strict-skips"):
        config.pluginmanager.register(StrictSkips(), "zoo-strict-skips")
