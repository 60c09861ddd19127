"""`zoo-runtime FILE INPUT...` (or `python -m zoo_runtime`): `zoo predict` for an exported
model, without torch or zoo. Output lines, `--json` and errors are zoo predict's."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from . import load
from .onnxfile import RuntimeZooError, UsageError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-runtime", description="Predict with a model exported by `zoo export`."
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


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if bool(args.inputs) == bool(args.input_file):
        raise UsageError(
            "give INPUT arguments or --input FILE" + (", not both" if args.inputs else "")
        )
    options = _options(args.assignments)
    model = load(args.model, threads=max(1, args.threads))
    if args.input_file is not None:
        try:
            with open(args.input_file, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"--input {args.input_file!r}: cannot read: {e}") from None
        output, predictions = model.predict_file(text, args.input_file, **options)
    else:
        predictions = model.predict(list(args.inputs), **options)
        output = "".join(f"{p['text']}\n" for p in predictions)
    if args.output_file is not None:
        with open(args.output_file, "w", encoding="utf-8") as f:
            f.write(output)
    if args.as_json:
        doc = {"model": args.model, "architecture": model.architecture, "predictions": predictions}
        print(json.dumps(_clean(doc), indent=2, ensure_ascii=False))
    elif args.output_file is None:
        sys.stdout.write(output)
    return 0


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except RuntimeZooError as e:
        print(f"Error: {e}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
