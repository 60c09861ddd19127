"""Training throughput of zoo's trainer against hand-written PyTorch loops, side by side.

    python benchmarks/tagger_speed.py [--data ../shared/data/ud-english-ewt] [--threads 1 [2]]
                                      [--steps 40] [--repeats 3] [--sentences 300]

All three loops train the same network (the `conllu` defaults: word embeddings + char CNN +
2-layer BiLSTM) with the same optimizer (Adam, the recipe's learning rate and clipping), from
the same initial weights, in one process:

- zoo:      `zoo.trainer.fit` for --steps steps, collating its batches as it goes;
- minimal:  a minimal hand-written loop over the very same batches, collated beforehand
            (zero_grad, loss, backward, clip, step), so it pays nothing for batching;
- one-by-one: the teaching code's loop, one sentence per step, over the first --sentences
            sentences of the same order.

zoo and minimal alternate --repeats times, taking turns at going first (for each thread count
given, in turn); medians are reported. Prints one JSON document: words per second of each loop (wall and CPU) per thread
count, and the ratios zoo/minimal and zoo/one-by-one. Takes a few minutes on a 2-core
machine; run nothing else meanwhile when timing, and with `--threads 1 2` leave both cores
free so that the second thread has a core to itself. The figures: docs/results/tagging-ewt.md.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import statistics
import time
from pathlib import Path

import torch

import zoo
from zoo.toolkit.data import Data
from zoo.training import trainer

REPO = Path(__file__).resolve().parents[1]


def timed(fn) -> tuple[float, float]:
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ud-english-ewt"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=300)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    opts = ap.parse_args()
    settings = dict(s.split("=", 1) for s in opts.sets)
    model = zoo.create("lstm-tagger", "conllu", opts.data, steps=opts.steps, **settings)
    cfg = model.train_config
    data = model.data
    train_only = Data(data.state, {"train": data.splits["train"]}, data.collate, data.length)
    initial = copy.deepcopy(model.module.state_dict())

    # The batches zoo's trainer will draw (same seed, same generator): collated up front.
    rng = torch.Generator().manual_seed(cfg.seed)
    batches = []
    for b in train_only.batches("train", cfg.batch_size, shuffle=True, generator=rng):
        batches.append(b)
        if len(batches) == opts.steps:
            break
    words = sum(int(b["lengths"].sum()) for b in batches)

    def fresh() -> torch.nn.Module:
        module = type(model.module)(model.config, model.state)
        module.load_state_dict(initial)
        return module.train()

    def zoo_loop() -> None:
        trainer.fit(fresh(), train_only, cfg_threads)

    def minimal_loop() -> None:
        module = fresh()
        opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
        for batch in batches:
            loss = module.loss(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            opt.step()

    one_by_one = [train_only.collate([ex]) for ex in data.splits["train"][: opts.sentences]]
    one_words = sum(int(b["lengths"].sum()) for b in one_by_one)

    def sentence_loop() -> None:
        module = fresh()
        opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
        for batch in one_by_one:
            module.zero_grad()
            loss = module.loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            opt.step()

    def rate(runs: list[tuple[float, float]], n: int) -> dict[str, float]:
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        return {
            "words_per_s": round(n / wall),
            "words_per_cpu_s": round(n / cpu),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
        }

    report: dict = {
        "steps": opts.steps,
        "batch_size": cfg.batch_size,
        "words": words,
        "parameters": model.num_parameters(),
        "settings": settings,
    }
    for threads in opts.threads:
        torch.set_num_threads(threads)
        cfg_threads = dataclasses.replace(cfg, threads=threads)
        minimal_loop()  # warm-up: first-call allocations
        results: dict[str, list[tuple[float, float]]] = {"zoo": [], "minimal": []}
        for i in range(opts.repeats):
            # Alternate which loop goes first: the second of a pair ran measurably slower
            # (the first one's freed memory), which a fixed order charged to zoo every time.
            pair = [("minimal", minimal_loop), ("zoo", zoo_loop)]
            for name, loop in pair if i % 2 == 0 else pair[::-1]:
                results[name].append(timed(loop))
        one = timed(sentence_loop)
        z, m, o = (
            rate(results["zoo"], words),
            rate(results["minimal"], words),
            rate([one], one_words),
        )
        report[f"threads={threads}"] = {
            "zoo": z,
            "minimal": m,
            "one_by_one": o | {"sentences": opts.sentences},
            "zoo_vs_minimal": round(z["words_per_s"] / m["words_per_s"], 3),
            "zoo_vs_minimal_cpu": round(z["words_per_cpu_s"] / m["words_per_cpu_s"], 3),
            "zoo_vs_one_by_one": round(z["words_per_s"] / o["words_per_s"], 1),
            "runs": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in results.items()},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
