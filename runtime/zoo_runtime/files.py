"""The runtime's twin of zoo's output rule (`zoo.core.fileio.refuse_input_as_output`): no
command writes over one of its own inputs. The runtime imports nothing of zoo, so the rule is
written again here; tests/runtime/test_files.py holds the two to the same answers."""

from __future__ import annotations

import os
from pathlib import Path

from .onnxfile import UsageError


def refuse_input_as_output(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> None:
    """Raise UsageError (exit 2) if `output` is the same file as one of `inputs`, which maps
    how each input was given (`FILE`, `--input`) to its path."""
    message = same_file_message(output, option, inputs)
    if message:
        raise UsageError(message)


def same_file_message(
    output: str | os.PathLike[str], option: str, inputs: dict[str, str | os.PathLike[str] | None]
) -> str | None:
    for label, given in inputs.items():
        if given is not None and _same_file(Path(output), Path(given)):
            return (
                f"{option} {str(output)!r}: is the same file as {label} {str(given)!r}; "
                "writing there would destroy it: give another path"
            )
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)
