"""Parity check for a refactor: the same trainings must give the same weights and figures.

A redesign of the plugin contract, the trainer or the command line should change neither
behaviour nor figures: the same weights bit for bit where the arithmetic is unchanged, and the
same metrics and predictions otherwise. This script drives the `zoo` command line only (no zoo
imports, so it runs unchanged against the old and the new code) through a fixed list of short
trainings, each `zoo run ... --threads 1 --seed 0 --json -q`, then `zoo eval FILE --json` and
`zoo predict FILE <fixed inputs> --json`, and records for every run the sha256 of each tensor's
raw bytes, the training, evaluation and prediction results, and the number of steps.

    python benchmarks/redesign_parity.py --save before.json      # at the old commit
    python benchmarks/redesign_parity.py --compare before.json   # at the new one

`--compare` prints, per run, whether the weights are bit-identical and whether training
metrics, eval metrics and predictions are equal (and if not, the largest absolute difference of
the numeric metrics). It exits non-zero if any run failed, has different tensor names, different
predictions or step counts, or metrics that differ by more than 1e-9 relative; differing weights
are reported, not required. The last three runs read real data under `--data-root` (default
../shared/data: ud-english-ewt/, scan/, ett/ETTh1.csv) and are skipped when it is absent.
`--only NAME...` selects runs; `--workdir DIR` keeps the model files (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import torch
from safetensors import safe_open

SINE = "0 0.0998 0.1987 0.2955 0.3894 0.4794 0.5646 0.6442 0.7174 0.7833"
TEXT_SAMPLING = "--set length=40 --set temperature=0.5 --set seed=1"
REL_TOL = 1e-9


@dataclass(frozen=True)
class Run:
    """One training and what to ask of its model: shell-quoted arguments of `zoo run` and
    `zoo predict FILE`, where `{root}` stands for the data root."""

    name: str
    train: str
    predict: str
    real_data: bool = False

    def train_args(self, root: str) -> list[str]:
        return [a.format(root=root) for a in shlex.split(self.train)]

    def predict_args(self, root: str) -> list[str]:
        return [a.format(root=root) for a in shlex.split(self.predict)]


RUNS: tuple[Run, ...] = (
    Run("elman-sine", "elman-rnn", SINE),
    Run("elman-char-pairs", "elman-rnn --dataset char-pairs", "hello"),
    Run("elman-text", "elman-rnn --dataset text", f"'To be' {TEXT_SAMPLING}"),
    Run(
        "elman-lstm-cells",
        "elman-rnn --dataset char-pairs --set cell=lstm --set impl=cells",
        "hello",
    ),
    Run("gru-regressor", "gru-regressor", SINE),
    Run("lstm-tagger", "lstm-tagger", "'The dog ate the apple'"),
    Run("rnn-seq2seq", "rnn-seq2seq", "'hello cat good'"),
    Run(
        "tagger-ewt",
        "lstm-tagger --dataset conllu --data {root}/ud-english-ewt --steps 40",
        "'The dog ate the apple .'",
        real_data=True,
    ),
    Run(
        "seq2seq-scan",
        "rnn-seq2seq --dataset scan --data {root}/scan/tasks_train_simple.txt --steps 40",
        "'jump twice after walk left'",
        real_data=True,
    ),
    Run(
        "gru-etth1",
        "gru-regressor --dataset csv --data {root}/ett/ETTh1.csv"
        " --set preset=ett-h1-ot --set horizon=24",
        "--input {root}/ett/ETTh1.csv",
        real_data=True,
    ),
)


def zoo_command() -> list[str]:
    """The `zoo` executable next to this interpreter, else `python -m zoo`."""
    for name in ("zoo", "zoo.exe"):
        exe = Path(sys.executable).parent / name
        if exe.is_file():
            return [str(exe)]
    return [sys.executable, "-m", "zoo"]


class ZooError(RuntimeError):
    """A zoo command exited non-zero; `exit` and the last line of its output are kept."""

    def __init__(self, args: list[str], exit: int, output: str) -> None:
        tail = output.strip().splitlines() or [""]
        super().__init__(f"zoo {' '.join(args)} exited {exit}: {' | '.join(tail[-5:])}")
        self.exit, self.last_line = exit, tail[-1]


def zoo_json(args: list[str]) -> dict[str, Any]:
    """Run one zoo command and parse its JSON document; raise ZooError on failure."""
    proc = subprocess.run([*zoo_command(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ZooError(args, proc.returncode, proc.stderr or proc.stdout)
    return json.loads(proc.stdout)


def eval_metrics(out: Path) -> dict[str, Any]:
    """`zoo eval FILE --json` metrics; a refusal (a model whose data has no test split) is
    behaviour too, so it is recorded as {"error": {exit, message}} and compared like metrics."""
    try:
        return zoo_json(["eval", str(out), "--json"])["metrics"]
    except ZooError as exc:
        message = exc.last_line.replace(str(out), "{model}")
        return {"error": {"exit": exc.exit, "message": message}}


def tensor_hashes(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """sha256 of every tensor's raw bytes, and its dtype and shape, by tensor name."""
    hashes, specs = {}, {}
    with safe_open(str(path), "pt") as f:
        for name in sorted(f.keys()):
            t = f.get_tensor(name).contiguous()
            raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
            hashes[name] = hashlib.sha256(raw).hexdigest()
            specs[name] = f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"
    return hashes, specs


def prediction_record(run: Run, doc: dict[str, Any], root: str) -> Any:
    """The `text` of each prediction; for a file input the whole predictions, with the data
    root (as given or resolved) written as `{root}`, so that roots spelt differently compare."""
    predictions = doc["predictions"]
    if "--input" not in shlex.split(run.predict):
        return [p.get("text") for p in predictions]
    text = json.dumps(predictions)
    for spelling in (str(Path(root).resolve()), root):
        text = text.replace(json.dumps(spelling)[1:-1], "{root}")
    return json.loads(text)


def execute(run: Run, root: str, workdir: Path) -> dict[str, Any]:
    """Train, evaluate and predict for one run; the record saved and compared."""
    out = workdir / f"{run.name}.safetensors"
    train = run.train_args(root)
    common = ["--threads", "1", "--seed", "0", "--out", str(out), "--json", "-q"]
    t0 = time.perf_counter()
    trained = zoo_json(["run", *train, *common])
    seconds = time.perf_counter() - t0
    evaluated = eval_metrics(out)
    predict = run.predict_args(root)
    predicted = zoo_json(["predict", str(out), *predict, "--json"])
    hashes, specs = tensor_hashes(out)
    return {
        "train_args": train,
        "predict_args": predict,
        "steps": trained.get("training", {}).get("steps"),
        "tensors": hashes,
        "tensor_specs": specs,
        "train_metrics": trained.get("metrics"),
        "eval_metrics": evaluated,
        "predictions": prediction_record(run, predicted, root),
        "train_seconds": round(seconds, 2),
    }


def run_all(runs: list[Run], root: str, workdir: Path) -> dict[str, dict[str, Any]]:
    """Execute every run in turn, one at a time; failures and skips are recorded, not raised."""
    results: dict[str, dict[str, Any]] = {}
    for run in runs:
        if run.real_data and not Path(root).is_dir():
            print(f"{run.name:18s} skipped: data root {root} not found", flush=True)
            results[run.name] = {"skipped": f"data root {root} not found"}
            continue
        t0 = time.perf_counter()
        try:
            results[run.name] = execute(run, root, workdir)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            results[run.name] = {"error": str(exc)}
            print(f"{run.name:18s} FAILED: {exc}", flush=True)
            continue
        rec = results[run.name]
        n = len(rec["tensors"])
        print(
            f"{run.name:18s} ok  {rec['steps']} steps, {n} tensors, {time.perf_counter() - t0:.1f} s"
        )
    return results


def environment() -> dict[str, Any]:
    """What produced the figures: versions, platform and the checkout's commit."""
    proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    version = subprocess.run(
        [*zoo_command(), "--version"], capture_output=True, text=True, check=False
    )
    return {
        "commit": proc.stdout.strip() or None,
        "zoo": version.stdout.strip() or None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "platform": platform.platform(),
    }


def save(path: Path, document: dict[str, Any]) -> None:
    """Write the JSON document atomically: a temporary file beside it, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as {dotted.path: leaf}."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, v in items:
        flat.update(flatten(v, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


RENAMED: dict[str, str] = {}  # metric key prefixes renamed on purpose (--renamed OLD=NEW)


def renamed(key: str) -> str:
    for old, new in RENAMED.items():
        if old in key:
            return key.replace(old, new)
    return key


def diff_metrics(old: Any, new: Any) -> tuple[str, bool]:
    """('equal' or a description, within tolerance?) for two metric documents. Keys the new
    document adds are reported, not failed; a key it lacks (after --renamed) fails."""
    if old == new:
        return "equal", True
    a = {renamed(k): v for k, v in flatten(old).items()}
    b = flatten(new)
    if a.keys() - b.keys():
        return f"keys gone: {sorted(a.keys() - b.keys())}", False
    added = sorted(b.keys() - a.keys())
    note = f"; {len(added)} new keys (e.g. {added[0]})" if added else ""
    worst, ok = 0.0, True
    for key in a:
        x, y = a[key], b[key]
        if is_number(x) and is_number(y):
            if math.isnan(x) and math.isnan(y):
                continue
            worst = max(worst, abs(x - y))
            ok = ok and abs(x - y) <= REL_TOL * max(abs(x), abs(y))
        elif x != y:
            return f"{key}: {x!r} -> {y!r}", False
    if worst == 0.0:
        return "equal on every key of the baseline" + note, True
    verdict = "within 1e-9 rel" if ok else "BEYOND 1e-9 rel"
    return f"differ, max abs diff {worst:.3g} ({verdict}){note}", ok


def compare_weights(old: dict[str, str], new: dict[str, str]) -> tuple[str, bool]:
    """('bit-identical' or a description, same tensor names?)."""
    if old.keys() != new.keys():
        gone, added = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
        return f"DIFFERENT TENSOR NAMES: -{gone} +{added}", False
    changed = [k for k in old if old[k] != new[k]]
    if not changed:
        return f"bit-identical ({len(old)} tensors)", True
    return f"differ in {len(changed)} of {len(old)} tensors (e.g. {changed[0]})", True


def short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_run(name: str, old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Print the comparison of one run; True when it passes."""
    if old is None:
        print(f"{name}: not in the baseline")
        return False
    for rec, side in ((old, "baseline"), (new, "now")):
        if "error" in rec or "skipped" in rec:
            print(f"{name}: {side} {'failed' if 'error' in rec else 'skipped'}: ", end="")
            print(rec.get("error") or rec.get("skipped"))
            return "skipped" in old and "skipped" in new
    weights, names_ok = compare_weights(old["tensors"], new["tensors"])
    train, train_ok = diff_metrics(old["train_metrics"], new["train_metrics"])
    evals, eval_ok = diff_metrics(old["eval_metrics"], new["eval_metrics"])
    preds_ok = old["predictions"] == new["predictions"]
    steps_ok = old["steps"] == new["steps"]
    passed = names_ok and train_ok and eval_ok and preds_ok and steps_ok
    print(f"{name}: {'PASS' if passed else 'FAIL'}")
    print(f"  weights:       {weights}")
    steps = "equal" if steps_ok else f"{old['steps']} -> {new['steps']}"
    print(f"  steps:         {steps}")
    print(f"  train metrics: {train}")
    print(f"  eval metrics:  {evals}")
    preds = (
        "equal"
        if preds_ok
        else f"DIFFER: {short(old['predictions'])} -> {short(new['predictions'])}"
    )
    print(f"  predictions:   {preds}")
    return passed


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> bool:
    """Compare every run of this session against the baseline; True when all pass."""
    old_runs, new_runs = baseline["runs"], current["runs"]
    before, now = baseline["environment"].get("commit"), current["environment"].get("commit")
    print(f"\nbaseline commit {before}, now {now}")
    results = {name: compare_run(name, old_runs.get(name), rec) for name, rec in new_runs.items()}
    identical = [n for n, r in new_runs.items() if n in old_runs and same_weights(old_runs[n], r)]
    differing = [n for n in new_runs if n not in identical]
    print(f"\nweights bit-identical: {', '.join(identical) or 'none'}")
    print(f"weights differ (or no weights): {', '.join(differing) or 'none'}")
    failed = [n for n, ok in results.items() if not ok]
    print(f"parity: {'FAIL in ' + ', '.join(failed) if failed else 'PASS'} ({len(results)} runs)")
    return not failed


def same_weights(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return "tensors" in old and old.get("tensors") == new.get("tensors")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = [r.name for r in RUNS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, metavar="FILE.json", help="write the results here")
    parser.add_argument("--compare", type=Path, metavar="FILE.json", help="baseline to compare to")
    parser.add_argument(
        "--data-root", default="../shared/data", help="real data (default: %(default)s)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep model files here (default: a temp folder)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=names, metavar="NAME", help=f"runs: {' '.join(names)}"
    )
    parser.add_argument(
        "--renamed",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="a metric key renamed on purpose (e.g. accuracy/=recall/): compare under the new name",
    )
    parser.add_argument(
        "--current", type=Path, metavar="FILE.json", help="compare this saved run, do not train"
    )
    args = parser.parse_args(argv)
    RENAMED.update(item.split("=", 1) for item in args.renamed)
    if args.save is None and args.compare is None:
        parser.error("give --save FILE.json, --compare FILE.json, or both")
    return args


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the selected trainings into workdir; the whole JSON document."""
    workdir.mkdir(parents=True, exist_ok=True)
    runs = [r for r in RUNS if args.only is None or r.name in args.only]
    root = str(args.data_root).rstrip("/")
    t0 = time.perf_counter()
    results = run_all(runs, root, workdir)
    wall = time.perf_counter() - t0
    print(f"wall time {wall:.1f} s for {len(runs)} runs")
    env = environment()
    return {"environment": env, "data_root": root, "wall_seconds": round(wall, 1), "runs": results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    baseline = json.loads(args.compare.read_text(encoding="utf-8")) if args.compare else None
    if args.current is not None and baseline is not None:
        return 0 if compare(baseline, json.loads(args.current.read_text(encoding="utf-8"))) else 1
    if args.workdir is not None:
        document = measure(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="zoo-parity-") as tmp:
            document = measure(args, Path(tmp))
    if args.save is not None:
        save(args.save, document)
        print(f"saved {args.save}")
    failed = [n for n, r in document["runs"].items() if "error" in r]
    if baseline is not None:
        return 0 if compare(baseline, document) else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
