"""`zoo-runtime FILE INPUT...` (or `python -m zoo_runtime`): `zoo predict` for an exported
model, without torch or zoo; `zoo-runtime serve FILE...` serves exported models over HTTP
(serve_command.py). Output lines, `--json` and errors are zoo predict's: a mistake
is one `Error:` line (exit 2 for the command line's, 1 for the rest), never a traceback
(`ZOO_DEBUG=1` shows one); a closed pipe (`zoo-runtime ... | head -1`) ends quietly with 141
as Unix tools do; Ctrl-C is 130; output files are written atomically, never over an input.
tests/runtime/test_side_by_side.py holds each answer to zoo predict's."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
import time
from typing import Any, NoReturn

from . import files, load
from .onnxfile import RuntimeZooError, SettingError, UsageError, out_of_memory

PIPE_CLOSED = 128 + 13  # how a Unix tool killed by SIGPIPE exits (zoo's too)
_NUMBER = re.compile(r"^-\.?\d")  # -0.5, -1e5, -0.82,0.1: an input, as zoo predict takes it
_MARK = "\x00"  # before such an input while argparse reads: no argument can hold a NUL
_TAKES_VALUE = {"--input", "--output", "--set", "--threads"}


class _Parser(argparse.ArgumentParser):
    """argparse, its complaints one UsageError line instead of usage and a message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="zoo-runtime",
        description="Predict with a model exported by `zoo export`.",
        allow_abbrev=False,  # `--in` is no --input: zoo predict's options are whole words
    )
    p.add_argument("model", metavar="FILE", help="the .onnx file")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="sentences, sequences or numbers")
    p.add_argument("--input", dest="input_file", help="read inputs from a file")
    p.add_argument("--output", dest="output_file", help="write the predictions to a file")
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a predict option (beam_size=5, temperature=0, ...)",
    )
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")
    return p


def _options(assignments: list[str]) -> dict[str, Any]:
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _numbers_marked(argv: list[str]) -> list[str]:
    """argparse takes `-1e5` or `-0.82,0.1` for an unknown option (its test for negative
    numbers knows neither exponents nor commas); zoo predict takes them as inputs, so mark
    each such argument, where no option's value is due, as one."""
    out: list[str] = []
    value_due = rest = False
    for token in argv:
        rest = rest or (token == "--" and not value_due)
        marked = not rest and not value_due and _NUMBER.match(token) is not None
        out.append(_MARK + token if marked else token)
        value_due = not rest and token in _TAKES_VALUE
    return out


def run(argv: list[str]) -> int:
    """The command itself: raises RuntimeZooError for a mistake, returns the exit code."""
    if argv[:1] == ["serve"]:
        from .serve_command import serve_command

        return serve_command(argv[1:])
    args = _parser().parse_args(_numbers_marked(argv))
    args.inputs = [a.removeprefix(_MARK) for a in args.inputs]
    if bool(args.inputs) == bool(args.input_file):
        raise UsageError(
            "give INPUT arguments or --input FILE" + (", not both" if args.inputs else "")
        )
    options = _options(args.assignments)
    if args.output_file is not None:  # before loading: never over an input, nor nowhere
        files.check_writable(
            args.output_file,
            option="--output",
            inputs={"FILE": args.model, "--input": args.input_file},
        )
    model = load(args.model, threads=max(1, args.threads))
    start = time.perf_counter()
    if args.input_file is not None:
        text = files.read_text(args.input_file, option="--input")
        output, predictions = model.predict_file(text, args.input_file, **options)
    else:
        predictions = model.predict(list(args.inputs), **options)
        output = "".join(f"{p['text']}\n" for p in predictions)
    seconds = time.perf_counter() - start
    if args.output_file is not None:
        files.atomic_write_text(args.output_file, output)
    if args.as_json:
        doc = {"model": args.model, "architecture": model.architecture, "predictions": predictions}
        print(json.dumps(files.clean(doc), indent=2, ensure_ascii=False))
    elif args.output_file is None:
        sys.stdout.write(output)
    else:
        count = len(predictions)
        print(
            f"wrote {count} predictions to {args.output_file} in {seconds:.2f} s", file=sys.stderr
        )
    return 0


def answer(argv: list[str]) -> int:
    """`run`, every way it can end turned into zoo's: one line and an exit code."""
    debug = bool(os.environ.get("ZOO_DEBUG"))
    try:
        code = run(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except RuntimeZooError as e:
        return _said(f"--set {e}" if isinstance(e, SettingError) else str(e), e.exit_code)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except MemoryError as e:
        if debug:
            raise
        return _said(str(out_of_memory(e)), 1)
    except OSError as e:
        if e.errno == errno.EPIPE:
            return _quiet_closed_pipe()
        if debug:
            raise
        return _said(_internal(e), 1)
    except Exception as e:
        if debug:
            raise
        return _said(_internal(e), 1)


def _said(message: str, code: int) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return code


def _internal(e: Exception) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return (
        f"internal error: {type(e).__name__}: {first} (a bug in zoo-runtime or a recipe; "
        "ZOO_DEBUG=1 shows the traceback)"
    )


def _quiet_closed_pipe() -> int:
    """stdout's reader went away (`zoo-runtime ... | head -1`): end quietly, as Unix tools
    do. stdout goes to /dev/null so the interpreter's last flush cannot complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a descriptor: nothing is flushed to it
        pass
    return PIPE_CLOSED


def main(argv: list[str] | None = None) -> None:
    """The `zoo-runtime` command: exits with `answer`'s code."""
    sys.exit(answer(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
