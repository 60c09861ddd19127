"""The tagger on UD English EWT, end to end, with the defaults of the `conllu` dataset.

    python benchmarks/tagger_ewt.py [--data ../shared/data/ud-english-ewt] [--threads N]
                                    [--out /tmp/tagger-ewt.safetensors] [--set KEY=VALUE ...]

Runs, each as a subprocess, exactly what a user types:

1. `zoo run lstm-tagger --dataset conllu --data EWT` (plus any --threads and --set: without
   them, the recipe's own thread count), timing it
   and reading its peak RSS and CPU-seconds from the kernel (getrusage of the child);
2. `zoo eval MODEL --data EWT/en_ewt-ud-test.conllu`: UPOS accuracy overall, on known and on
   unknown words, and per tag;
3. `zoo predict MODEL --input EWT/en_ewt-ud-test.conllu --output OUT.conllu` three times:
   model load time and tagging words per second (median), checking that OUT differs from the
   test file in the predicted columns only (UPOS, XPOS, FEATS), then scoring OUT with the
   official CoNLL 2018 script (`../shared/tools/conll18_ud_eval.py -v`): UPOS, XPOS, UFeats,
   AllTags.

Prints one JSON document (also written next to the model as MODEL.json). Takes 5-15 minutes
on a 2-core machine; run nothing else meanwhile when timing. The figures:
docs/results/tagging-ewt.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The installed `zoo` script, not `python -m zoo`: -m would import a `zoo/` folder from the
# current directory (another checkout) ahead of the installed package.
_EXE = Path(sys.executable).parent / "zoo"
ZOO = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "zoo"]


def run_measured(args: list[str]) -> tuple[dict, dict]:
    """Run a zoo command that prints JSON; return (its JSON, wall/CPU/peak-RSS of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([*ZOO, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"zoo {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far (KiB on Linux)
    return json.loads(p.stdout), {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1),
    }


def conll18_scores(gold: Path, system: Path) -> dict[str, float] | None:
    """UPOS, XPOS, UFeats and AllTags F1 (= accuracy, gold tokens) from the official CoNLL
    2018 script, `../shared/tools/conll18_ud_eval.py -v`, where it is."""
    script = REPO.parent / "shared" / "tools" / "conll18_ud_eval.py"
    if not script.exists():
        return None
    p = subprocess.run(
        [sys.executable, str(script), "-v", str(gold), str(system)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {line.split("|")[0].strip(): line.split("|") for line in p.stdout.splitlines()}
    return {name: float(rows[name][3]) for name in ("UPOS", "XPOS", "UFeats", "AllTags")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ud-english-ewt"))
    ap.add_argument("--threads", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--out", default="/tmp/tagger-ewt.safetensors")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--skip-train", action="store_true", help="evaluate an existing --out")
    opts = ap.parse_args()
    data = Path(opts.data)
    test = next(data.glob("*-ud-test.conllu"))
    report: dict = {"threads": opts.threads, "settings": opts.sets, "cpus": os.cpu_count()}

    if not opts.skip_train:
        sets = [a for s in opts.sets for a in ("--set", s)]
        threads = ["--threads", str(opts.threads)] if opts.threads is not None else []
        doc, usage = run_measured(
            ["run", "lstm-tagger", "--dataset", "conllu", "--data", str(data), *threads,
             "--out", opts.out, "--json", "-q", *sets]
        )  # fmt: skip
        training = doc["training"]
        report["train"] = {
            **usage,
            "trainer_seconds": training["seconds"],
            "trainer_cpu_seconds": training["cpu_seconds"],
            "epochs": training["epochs"],
            "steps": training["steps"],
            "best_dev_accuracy": training["best_validation"].get("accuracy"),
            "best_step": training["best_validation"].get("step"),
            "parameters": doc["parameters"],
            "settings": doc["settings"],
        }

    doc, usage = run_measured(["eval", opts.out, "--data", str(test), "--json"])
    m = doc["metrics"]
    report["test"] = {
        "accuracy": m["accuracy"],
        **{k: m[k] for k in ("xpos_accuracy", "feats_accuracy", "alltags_accuracy") if k in m},
        "known_accuracy": m.get("known_accuracy"),
        "unknown_accuracy": m.get("unknown_accuracy"),
        "words": m["words"],
        "unknown_words": m["unknown_words"],
        "per_tag": {
            k.split("/", 1)[1]: round(v, 4) for k, v in m.items() if k.startswith("recall/")
        },
        "eval_seconds": doc["seconds"],
    }

    out = Path(opts.out).with_suffix(".test.conllu")
    runs = []
    for _ in range(3):
        doc, usage = run_measured(
            ["predict", opts.out, "--input", str(test), "--output", str(out), "--json",
             "--threads", str(opts.threads or 1)]
        )  # fmt: skip
        runs.append((doc["load_seconds"], doc["predict_seconds"], usage["wall_s"]))
    words = m["words"]
    original, tagged = test.read_bytes().split(b"\n"), out.read_bytes().split(b"\n")
    # the predicted columns are UPOS, XPOS, FEATS (4-6): every other byte must be the file's
    same_elsewhere = len(original) == len(tagged) and all(
        a == b
        or (a.split(b"\t")[:3] + a.split(b"\t")[6:] == b.split(b"\t")[:3] + b.split(b"\t")[6:])
        for a, b in zip(original, tagged)
    )
    report["conll18"] = conll18_scores(test, out)
    report["predict"] = {
        "words": words,
        "load_seconds": statistics.median(r[0] for r in runs),
        "tag_seconds": statistics.median(r[1] for r in runs),
        "words_per_second": round(words / statistics.median(r[1] for r in runs)),
        "command_wall_seconds": statistics.median(r[2] for r in runs),
        "only_predicted_columns_changed": same_elsewhere,
    }
    text = json.dumps(report, indent=2)
    Path(opts.out).with_suffix(".json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
