"""The project's own error types.

Every failure a user can cause (a bad option, a malformed file, a model file from a stranger)
raises one of these, so the CLI can print one clear line and exit non-zero instead of a
traceback. Anything else escaping is a bug in zoo or in a plugin.
"""

from __future__ import annotations

import re
import signal


class ZooError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""

    exit_code = 1


class UsageError(ZooError):
    """A wrong name, option or value on the command line or in an API call (exit 2, as click)."""

    exit_code = 2


class SettingError(UsageError):
    """A setting with a bad value or name, from `--set KEY=VALUE` or a keyword argument of the
    Python API. The message names the setting (`hidden_size=-1 is below its minimum 1`); the
    command line adds that it came from `--set`."""


class DataError(ZooError):
    """A data file that cannot be read as the dataset expects; the message names file and line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ModelFileError(ZooError):
    """A model file that is missing, damaged, too new, or names something not installed."""


class PluginError(ZooError):
    """A plugin that failed to load, misregistered, or clashes with another plugin."""


class TrainingStopped(ZooError):
    """A training hook stopped the run on purpose, not a failure: a sweep pruning a trial
    whose validation scores are hopeless. `status` is what the run log records ('pruned');
    `zoo run` exits 3, so whoever started it can tell a pruned run from a failed one."""

    exit_code = 3

    def __init__(self, message: str, status: str = "pruned"):
        super().__init__(message)
        self.status = status


class TrainingDiverged(ZooError):
    """The loss became NaN or infinite; the model keeps its last good weights."""


class TrainingInterrupted(ZooError):
    """Ctrl-C (or SIGTERM, as schedulers send before they stop a job) during training: stopped
    cleanly after a step, with a checkpoint when one is kept. Exits 128 + the signal's number,
    as a process killed by it would (130 for Ctrl-C, 143 for SIGTERM)."""

    exit_code = 128 + signal.SIGINT

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + signum


class OutOfMemory(ZooError):
    """The machine (or the GPU) had no memory left for what a step asked: not a bug, and
    something the user can change (exit 1)."""


def out_of_memory(error: BaseException) -> OutOfMemory | None:
    """An OutOfMemory naming how much was asked, when `error` is running out of memory:
    Python's MemoryError, torch's CPU allocator ("can't allocate memory: you tried to
    allocate N bytes") or CUDA's ("CUDA out of memory. Tried to allocate 20.00 MiB");
    None for anything else."""
    text = str(error)
    cpu = re.search(r"you tried to allocate (\d+) bytes", text)
    if cpu and "can't allocate memory" in text:
        asked = f"could not allocate {int(cpu.group(1)):,} bytes more"
    elif type(error).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text:
        asked = text.split(". ")[0].split("\n")[0][:200]
    elif isinstance(error, MemoryError):
        asked = "Python could not allocate memory"
    else:
        return None
    return OutOfMemory(
        f"out of memory: {asked}; lower the batch size (--batch-size) or the model's size, "
        "use fewer processes, or free memory"
    )
