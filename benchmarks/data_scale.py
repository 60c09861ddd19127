"""Data of any size (issue 29): peak memory on large texts, mapped against in-memory speed,
and the EWT tagger's time to its first step with the prepared-data cache cold and warm.

    python benchmarks/data_scale.py [--sizes 100M 1G 4G] [--work /tmp/zoo-data-scale]
                                    [--data ../shared/data] [--steps 300] [--parts all]
                                    [--stream-sizes 100M 1G] [--out results.json]

Parts (`--parts rss speed ewt sweep conllu pairs eval`, default the first four):

- rss:   for each size, a text generated from EWT's `# text = ` sentences (shuffled by a
         seeded `random.Random(0)`, joined by newlines, repeated until the size is reached),
         then `zoo run elman-rnn --dataset text --data FILE --steps 20 --threads 1 --set
         valid_fraction=0.001 --set test_fraction=0.001` (scoring 10% of 4 GB would take an
         hour and measure nothing about reading) under
         `/usr/bin/time -f %M`: cold (empty cache: the run streams the text and prepares it),
         warm (mapped), and for the smallest size also the in-memory path (`--no-cache` with
         ZOO_TEXT_STREAM_ABOVE above the file's size: the whole text read at once).
- speed: steps per second of the same command with `--steps N`, mapped (warm cache) against
         in memory, on the smallest size; the trainer's own wall time (`training.seconds`).
- ewt:   `zoo run lstm-tagger --dataset conllu --data EWT` from the command to its first
         optimizer step (a driver process records the first `Tensor.backward` and exits):
         without the cache, cold and warm, beside the floor (a fresh interpreter importing
         torch; and torch with torch._dynamo, which torch's optimizer wrappers import and
         zoo's optimizer step does not); then the trained weights of `--steps 30
         --threads 1` cached against `--no-cache`, compared bit for bit; and the peak RSS
         of `--steps 5 --threads 1` (evaluation included) warm against `--no-cache`.
- sweep: the CPU-seconds one trial spends loading EWT without the cache against mapping it
         (in-process `time.process_time()` around `load_data`, median of 3), times 12 trials.

- conllu, pairs: the streamed readers (`--stream-sizes 100M 1G`): a CoNLL-U file made by
         repeating EWT's train file whole (`en_ewt-ud-train.conllu`, 14 MB, 12,544
         sentences) until the size is reached (cut at a sentence end), and a SCAN file made
         by repeating `tasks_train_simple.txt` (16,728 lines) the same way; then `zoo run
         lstm-tagger --dataset conllu` / `zoo run rnn-seq2seq --dataset scan` with
         `--data FILE --steps 20 --threads 1` and the 0.1% held-out parts of `rss`, under
         `/usr/bin/time -f %M`: cold (an empty cache: the reader streams the file into
         records, the cache links them, 20 steps) and, for the smallest size, in memory
         (`--no-cache`, ZOO_STREAM_ABOVE above the file's size: the file read whole).

- eval:  `zoo eval` streaming: a small tagger (20 steps on EWT) scores each generated CoNLL-U
         file of `--stream-sizes` whole (`zoo eval MODEL --data FILE --threads 1`) under
         `/usr/bin/time -f %M`; the smallest also read whole (ZOO_STREAM_ABOVE above it).

Generated files are deleted at the end. The figures: docs/results/data.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ZOO = [sys.executable, "-m", "zoo"]
UNITS = {"K": 1e3, "M": 1e6, "G": 1e9}

FIRST_STEP = """
import os, sys, time
import torch
t0 = float(os.environ["BENCH_T0"])
real = torch.Tensor.backward
def first(self, *a, **k):
    print(json.dumps({"first_step": time.time() - t0}), flush=True)
    os._exit(0)
import json
torch.Tensor.backward = first
from zoo.cli import cli
cli(sys.argv[1:])
"""


def size_of(text: str) -> int:
    return int(float(text[:-1]) * UNITS[text[-1].upper()]) if text[-1].isalpha() else int(text)


def generate(path: Path, size: int, ewt: Path) -> Path:
    """`size` bytes of EWT sentences, shuffled by a seeded generator, one a line."""
    if path.exists() and path.stat().st_size >= size:
        return path
    train = (ewt / "en_ewt-ud-train.conllu").read_text(encoding="utf-8")
    sentences = [line[9:] for line in train.splitlines() if line.startswith("# text = ")]
    rng = random.Random(0)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size:
            rng.shuffle(sentences)
            block = "\n".join(sentences) + "\n"
            block = block[: size - written] if written + len(block) > size else block
            f.write(block)
            written += len(block.encode("utf-8"))
    return path


def timed(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run under /usr/bin/time: peak RSS (MiB), wall and CPU seconds, and stdout's JSON."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        t0 = time.perf_counter()
        p = subprocess.run(
            ["/usr/bin/time", "-f", "%M %U %S", "-o", t.name, *command],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            cwd=REPO,
        )
        wall = time.perf_counter() - t0
        rss_kb, user, system = t.read().split()[-3:]
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{p.stderr}")
    doc = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    return {
        "peak_rss_mib": round(int(rss_kb) / 1024, 1),
        "wall_s": round(wall, 2),
        "cpu_s": round(float(user) + float(system), 2),
        "training": {k: v for k, v in doc.get("training", {}).items() if k != "history"},
        "timings": doc.get("timings"),
        "words": (doc.get("metrics") or {}).get("words"),  # what `zoo eval` scored
    }


SMALL = ["--set", "valid_fraction=0.001", "--set", "test_fraction=0.001"]


def charlm(path: Path, steps: int, out: Path) -> list[str]:
    """The char LM's command; held-out parts of 0.1% each, so that scoring 10% of a 4 GB
    text (an hour on this machine) does not swamp the figures of reading it."""
    return [
        *ZOO, "run", "elman-rnn", "--dataset", "text", "--data", str(path),
        "--steps", str(steps), "--threads", "1", "--json", "-q", "--no-log",
        "--out", str(out), *SMALL,
    ]  # fmt: skip


def rss_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    rows = {}
    for size_text in args.sizes:
        path = generate(work / f"text-{size_text}.txt", size_of(size_text), args.ewt)
        env = {"ZOO_CACHE_DIR": str(cache)}
        shutil.rmtree(cache, ignore_errors=True)
        row = {"bytes": path.stat().st_size}
        row["cold"] = timed(charlm(path, 20, work / "m.safetensors"), env)
        row["warm"] = timed(charlm(path, 20, work / "m.safetensors"), env)
        if size_text == args.sizes[0]:
            memory = {"ZOO_TEXT_STREAM_ABOVE": str(10**15), "ZOO_NO_CACHE": "1"}
            row["in_memory"] = timed(charlm(path, 20, work / "m.safetensors"), memory)
        rows[size_text] = row
        print(size_text, json.dumps({k: v for k, v in row.items() if k != "bytes"}), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        if size_text != args.sizes[0]:
            path.unlink()
    return rows


def speed_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    path = generate(work / f"text-{args.sizes[0]}.txt", size_of(args.sizes[0]), args.ewt)
    env = {"ZOO_CACHE_DIR": str(cache)}
    out: dict[str, list[float]] = {"mapped": [], "in_memory": []}
    memory = {"ZOO_TEXT_STREAM_ABOVE": str(10**15), "ZOO_NO_CACHE": "1"}
    timed(charlm(path, 1, work / "m.safetensors"), env)  # prepare
    for _ in range(args.repeats):
        for name, extra_env in (("mapped", env), ("in_memory", memory)):
            r = timed(charlm(path, args.steps, work / "m.safetensors"), extra_env)
            out[name].append(args.steps / r["training"]["seconds"])
    result = {k: round(statistics.median(v), 2) for k, v in out.items()}
    result["ratio"] = round(result["mapped"] / result["in_memory"], 3)
    result["runs"] = out
    print("speed", json.dumps(result), flush=True)
    return result


def first_step(command: list[str], env: dict[str, str]) -> float:
    env = {**os.environ, **env, "BENCH_T0": repr(time.time())}
    p = subprocess.run(
        [sys.executable, "-c", FIRST_STEP, *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"no first step: {' '.join(command)}\n{p.stderr}")
    return round(json.loads(lines[-1])["first_step"], 2)


def imported(modules: str) -> float:
    """Seconds from starting a fresh interpreter to having imported `modules`, measured as
    `first_step` measures a command."""
    code = f"import os, time, json, {modules}; "
    code += 'print(json.dumps({"first_step": time.time() - float(os.environ["BENCH_T0"])}))'
    env = {**os.environ, "BENCH_T0": repr(time.time())}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return round(json.loads(p.stdout.splitlines()[-1])["first_step"], 2)


def ewt_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    tagger = ["run", "lstm-tagger", "--dataset", "conllu", "--data", str(args.ewt), "-q"]
    tagger += ["--no-log", "--out", str(work / "t.safetensors")]
    env = {"ZOO_CACHE_DIR": str(cache)}
    shutil.rmtree(cache, ignore_errors=True)
    rows: dict[str, list[float]] = {"no_cache": [], "cold": [], "warm": []}
    rows.update({"import_torch": [], "import_torch_dynamo": []})
    for _ in range(args.repeats):
        rows["no_cache"].append(first_step([*tagger, "--no-cache"], env))
        shutil.rmtree(cache, ignore_errors=True)
        rows["cold"].append(first_step(tagger, env))
        rows["warm"].append(first_step(tagger, env))
        # the floor: the interpreter and torch; and torch._dynamo, which torch's optimizer
        # wrappers import and zoo's optimizer step no longer does (zoo/training/optimizers.py)
        rows["import_torch"].append(imported("torch"))
        rows["import_torch_dynamo"].append(imported("torch, torch._dynamo"))
    result: dict[str, Any] = {k: statistics.median(v) for k, v in rows.items()}
    result["speedup_warm"] = round(result["no_cache"] / result["warm"], 1)
    result["runs"] = rows
    short = [*tagger[:-2], "--steps", "30", "--threads", "1"]
    for name, extra in (("cached", []), ("plain", ["--no-cache"])):
        p = subprocess.run(
            [*ZOO, *short, "--out", str(work / f"{name}.safetensors"), *extra],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
        )
        assert p.returncode == 0, p.stderr
    result["bit_identical"] = same_weights(work / "cached.safetensors", work / "plain.safetensors")
    rss = [*ZOO, *tagger[:-1], str(work / "r.safetensors"), "--steps", "5", "--threads", "1"]
    result["peak_rss_mib"] = {
        "no_cache": timed([*rss, "--no-cache"], env)["peak_rss_mib"],
        "warm": timed(rss, env)["peak_rss_mib"],
    }
    print("ewt", json.dumps(result), flush=True)
    return result


def same_weights(a: Path, b: Path) -> bool:
    from safetensors.torch import load_file

    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)


def sweep_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    os.environ["ZOO_CACHE_DIR"] = str(cache)
    from zoo.core.registry import get_registry
    from zoo.core.settings import resolve, with_paths
    from zoo.training.datasets import load_data

    reg = get_registry()
    spec, ds = reg.architecture("lstm-tagger").spec, reg.dataset("conllu").spec
    config = resolve(spec, ds, with_paths({}, {"--data": str(args.ewt)}, ds)).data
    load_data(reg, "conllu", config, None)  # prepared once
    costs: dict[str, list[float]] = {"parse": [], "mapped": []}
    for _ in range(3):
        for name, cache_on in (("parse", False), ("mapped", True)):
            t0 = time.process_time()
            load_data(reg, "conllu", config, None, cache=cache_on)
            costs[name].append(time.process_time() - t0)
    per = {k: round(statistics.median(v), 3) for k, v in costs.items()}
    result = {**per, "trials": 12, "saved_cpu_s": round(12 * (per["parse"] - per["mapped"]), 1)}
    print("sweep", json.dumps(result), flush=True)
    return result


def repeated(path: Path, size: int, source: Path, unit: bytes) -> Path:
    """`source` repeated whole until `size` bytes, cut after a `unit` (a sentence's blank
    line, a line end)."""
    block = source.read_bytes()
    written = 0
    with open(path, "wb") as f:
        while written < size:
            piece = block
            if written + len(piece) > size:
                piece = piece[: piece.find(unit, size - written) + len(unit)] or piece
            f.write(piece)
            written += len(piece)
    return path


def streamed_part(args: argparse.Namespace, work: Path, cache: Path, kind: str) -> dict[str, Any]:
    if kind == "conllu":
        source, unit = args.ewt / "en_ewt-ud-train.conllu", b"\n\n"
        head = ["lstm-tagger", "--dataset", "conllu"]
    else:
        source, unit = args.data / "scan" / "tasks_train_simple.txt", b"\n"
        head = ["rnn-seq2seq", "--dataset", "scan"]
    rows = {}
    for size_text in args.stream_sizes:
        path = repeated(work / f"{kind}-{size_text}", size_of(size_text), source, unit)
        command = [
            *ZOO, "run", *head, "--data", str(path), "--steps", "20", "--threads", "1",
            "--json", "-q", "--no-log", "--out", str(work / "m.safetensors"), *SMALL,
        ]  # fmt: skip
        env = {"ZOO_CACHE_DIR": str(cache)}
        shutil.rmtree(cache, ignore_errors=True)
        row: dict[str, Any] = {"bytes": path.stat().st_size, "cold": timed(command, env)}
        if size_text == args.stream_sizes[0]:
            memory = {"ZOO_STREAM_ABOVE": str(10**15), "ZOO_NO_CACHE": "1"}
            row["in_memory"] = timed(command, memory)
        rows[size_text] = row
        print(kind, size_text, json.dumps(row), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        path.unlink()
    return rows


def eval_part(args: argparse.Namespace, work: Path, cache: Path) -> dict[str, Any]:
    """`zoo eval` on the generated CoNLL-U files (`--stream-sizes`), each scored whole by a
    small tagger trained for 20 steps on EWT (a small network, so that scoring a gigabyte
    takes minutes, not an hour): peak RSS, wall, and the words scored; the smallest size also
    read whole (ZOO_STREAM_ABOVE above its size)."""
    model = work / "small.safetensors"
    small = ["char_encoder=none", "hidden_size=32", "embedding_dim=32", "num_layers=1"]
    small += ["bidirectional=false", "aux_weight=0"]
    train = [*ZOO, "run", "lstm-tagger", "--dataset", "conllu", "--data", str(args.ewt)]
    train += ["--steps", "20", "--threads", "1", "-q", "--no-log", "--out", str(model)]
    timed([*train, *(x for kv in small for x in ("--set", kv))], {})
    source = args.ewt / "en_ewt-ud-train.conllu"
    rows = {}
    for size_text in args.stream_sizes:
        path = repeated(work / f"eval-{size_text}.conllu", size_of(size_text), source, b"\n\n")
        command = [*ZOO, "eval", str(model), "--data", str(path), "--json", "--threads", "1"]
        row: dict[str, Any] = {"bytes": path.stat().st_size}
        for name, env in (("streamed", {}), ("in_memory", {"ZOO_STREAM_ABOVE": str(10**15)})):
            if name == "in_memory" and size_text != args.stream_sizes[0]:
                continue
            row[name] = timed(command, env)
        rows[size_text] = row
        print("eval", size_text, json.dumps(row), flush=True)
        path.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["100M", "1G", "4G"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "zoo-scale")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--stream-sizes", nargs="+", default=["100M", "1G"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["rss", "speed", "ewt", "sweep"],
        choices=["rss", "speed", "ewt", "sweep", "conllu", "pairs", "eval"],
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.ewt = args.data / "ud-english-ewt"
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    parts = {"rss": rss_part, "speed": speed_part, "ewt": ewt_part, "sweep": sweep_part}
    parts["conllu"] = lambda *a: streamed_part(*a, kind="conllu")
    parts["pairs"] = lambda *a: streamed_part(*a, kind="pairs")
    parts["eval"] = eval_part
    results: dict[str, Any] = {"load": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        for name in args.parts:
            results[name] = parts[name](args, args.work, cache)
    finally:
        shutil.rmtree(args.work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
