"""Training and decoding throughput of `rnn-seq2seq` on SCAN, against hand-written PyTorch.

Training: zoo's trainer (`zoo.trainer.fit`, batching and collating included) against a minimal
hand-written loop (`zero_grad`, `backward`, `clip_grad_norm_`, `step` over batches collated
beforehand) that trains a hand-written copy of the same network (plain `nn.Embedding`,
`nn.LSTM`, `nn.Linear` and the attention written out in a few lines), from the same initial
weights, on the same batches in the same order, with the same seed for dropout. Both are
timed side by side in one process, alternating, `--repeats` times; the script checks that
both compute the same first loss, and prints steps per second (CPU and wall) and the ratio.

Decoding: sequences per second for the whole test file with greedy search and beam search
(width 5), from a trained model file (`--model`, e.g. one written by seq2seq_scan.py), in
batches of `--batch-size`, and the exact match each reaches.

Every figure is at `--threads` intra-op threads (default 1). Takes a few minutes on a 2-core
machine; run nothing else meanwhile when timing:

    python benchmarks/seq2seq_throughput.py --model runs/scan/scan-simple-default-seed0.safetensors

The figures: docs/results/scan.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo.toolkit.data import Vocab
from zoo.toolkit.textfile import read_text
from zoo.training import trainer

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "scan"


class HandWritten(nn.Module):
    """LSTM encoder-decoder with Luong ("general") attention, as one would write it by hand.
    Parameter names follow the plugin's, so its weights load here unchanged."""

    def __init__(self, sources: int, targets: int, emb: int, hidden: int, dropout: float):
        super().__init__()
        self.src_embedding = nn.Embedding(sources, emb, padding_idx=0)
        self.tgt_embedding = nn.Embedding(targets, emb, padding_idx=0)
        self.encoder = nn.LSTM(emb, hidden, batch_first=True)
        self.decoder = nn.LSTM(emb, hidden, batch_first=True)
        self.attention = nn.Module()
        self.attention.linear_in = nn.Linear(hidden, hidden, bias=False)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, targets)

    def forward(self, src, lengths, tgt_in):
        packed = pack_padded_sequence(
            self.dropout(self.src_embedding(src)), lengths, batch_first=True, enforce_sorted=False
        )
        memory, state = self.encoder(packed)
        memory, _ = pad_packed_sequence(memory, batch_first=True, total_length=src.shape[1])
        out, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), state)
        scores = out @ self.attention.linear_in(memory).transpose(1, 2)
        scores = scores.masked_fill((src == 0).unsqueeze(1), float("-inf"))
        context = torch.softmax(scores, -1) @ memory
        return self.out(self.dropout(torch.tanh(self.combine(torch.cat([context, out], -1)))))


def hand_loop(module, batches, lr, clip, seed):
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for b in batches:
        scores = module(b["src"], b["src_lengths"], b["tgt_in"])
        loss = F.cross_entropy(scores.flatten(0, 1), b["tgt_out"].flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()
    return float(loss.detach())


def timed(fn):
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - w, time.process_time() - c


def training(args) -> None:
    model = zoo.create(
        "rnn-seq2seq",
        dataset="scan",
        data=args.data / "tasks_train_simple.txt",
        steps=args.steps,
        threads=args.threads,
        seed=0,
    )
    cfg, c = model.train_config, model.config
    assert (c.cell, c.attention, c.num_layers, c.bidirectional) == ("lstm", "luong", 1, False)
    assert c.tie_embeddings == "none" and c.teacher_forcing == 1.0
    initial = copy.deepcopy(model.module.state_dict())
    # The batches zoo's trainer will draw: the same generator, seeded the same way.
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = []
    while len(batches) < args.steps:
        batches.extend(model.data.batches("train", cfg.batch_size, shuffle=True, generator=gen))
    batches = batches[: args.steps]
    s, t = len(model.state["source"]), len(model.state["target"])
    hand = HandWritten(s, t, c.embedding_dim, c.hidden_size, c.dropout)
    hand.load_state_dict(initial)
    model.module.load_state_dict(initial)
    model.module.eval(), hand.eval()
    b = batches[0]
    with torch.no_grad():
        ours = model.module.loss(b)
        theirs = F.cross_entropy(
            hand(b["src"], b["src_lengths"], b["tgt_in"]).flatten(0, 1),
            b["tgt_out"].flatten(),
            ignore_index=-100,
        )
    assert torch.allclose(ours, theirs), (ours, theirs)
    print(
        f"training: {args.steps} steps of batch {cfg.batch_size} on tasks_train_simple.txt, "
        f"{torch.get_num_threads()} thread(s); first loss {float(ours):.4f} in both",
        flush=True,
    )
    # Warm up both (oneDNN prepares its kernels for each new shape on first use).
    warm = batches[: min(30, args.steps)]
    trainer.fit(model.module, model.data, replace(cfg, steps=len(warm)))
    hand_loop(hand, warm, cfg.lr, cfg.grad_clip, cfg.seed)
    zoo_times, hand_times = [], []

    def run_zoo() -> None:
        model.module.load_state_dict(initial)
        _, wall, cpu = timed(lambda: trainer.fit(model.module, model.data, cfg))
        zoo_times.append((wall, cpu))

    def run_hand() -> None:
        hand.load_state_dict(initial)
        _, hwall, hcpu = timed(lambda: hand_loop(hand, batches, cfg.lr, cfg.grad_clip, cfg.seed))
        hand_times.append((hwall, hcpu))

    for rep in range(args.repeats):
        # Take turns at going first: the second of a pair tends to run slower.
        for run in (run_zoo, run_hand) if rep % 2 == 0 else (run_hand, run_zoo):
            run()
        (wall, cpu), (hwall, hcpu) = zoo_times[-1], hand_times[-1]
        ours, theirs = model.module.state_dict(), hand.state_dict()
        differ = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
        print(
            f"  repeat {rep + 1}: zoo {args.steps / cpu:.1f} steps/CPU-s ({args.steps / wall:.1f}"
            f"/s wall), hand-written {args.steps / hcpu:.1f} steps/CPU-s "
            f"({args.steps / hwall:.1f}/s wall); largest weight difference after training "
            f"{differ:.2g}",
            flush=True,
        )
    for label, i in (("CPU", 1), ("wall", 0)):
        z = statistics.median(x[i] for x in zoo_times)
        h = statistics.median(x[i] for x in hand_times)
        print(
            f"median {label}: zoo {args.steps / z:.1f} steps/s, hand-written {args.steps / h:.1f}"
            f" steps/s, zoo/hand throughput ratio {h / z:.3f}"
        )


def threads(args) -> None:
    """zoo's trainer at each thread count, alternating, from the same weights and batches."""
    model = zoo.create(
        "rnn-seq2seq", dataset="scan", data=args.data / "tasks_train_simple.txt", seed=0
    )
    initial = copy.deepcopy(model.module.state_dict())
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in args.compare_threads}
    for rep in range(args.repeats + 1):  # the first round warms up
        for n in args.compare_threads:
            cfg = replace(model.train_config, steps=args.thread_steps, threads=n)
            model.module.load_state_dict(initial)
            _, wall, cpu = timed(lambda c=cfg: trainer.fit(model.module, model.data, c))
            if rep:
                results[n].append((wall, cpu))
    torch.set_num_threads(args.threads)
    for n, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(
            f"threads {n}: {args.thread_steps / wall:.1f} steps/s wall, "
            f"{args.thread_steps / cpu:.1f} steps/CPU-s (median of {len(runs)})"
        )


def decoding(args) -> None:
    model = zoo.load(args.model)
    test = args.data / "tasks_test_simple.txt"
    if "length" in args.model.name:
        test = args.data / "tasks_test_length.txt"
    pairs = [line[3:].split(" OUT: ") for line in read_text(test).lines() if line.strip()]
    src_vocab = Vocab(model.state["source"])
    tgt_vocab = Vocab(model.state["target"])
    encoded = [src_vocab.encode(s.split()) for s, _ in pairs]
    print(
        f"decoding: {len(pairs)} sequences of {test.name} with {args.model.name}, batches of "
        f"{args.batch_size}, {torch.get_num_threads()} thread(s)",
        flush=True,
    )
    model.module.eval()
    for beam in (1, 5):
        options = argparse.Namespace(
            beam_size=beam, length_penalty=0.6, max_length=0, batch_size=args.batch_size
        )
        runs = []
        for _ in range(args.repeats):
            with torch.no_grad():
                outputs, wall, cpu = timed(lambda o=options: model.module.translate(encoded, o))
            runs.append((wall, cpu))
        exact = sum(
            " ".join(tgt_vocab.decode(o)) == t.strip() for o, (_, t) in zip(outputs, pairs)
        ) / len(pairs)
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        name = "greedy" if beam == 1 else f"beam {beam}"
        print(
            f"  {name}: {len(pairs) / cpu:.0f} sequences/CPU-s ({len(pairs) / wall:.0f}/s wall; "
            f"median of {args.repeats}), exact match {100 * exact:.2f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", type=Path, help="trained model file for decoding")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="decoding batch size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--compare-threads", type=int, nargs="*", default=[], help="e.g. 1 2: time each count"
    )
    parser.add_argument("--thread-steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_training:
        training(args)
    if args.compare_threads:
        threads(args)
    if args.model:
        decoding(args)


if __name__ == "__main__":
    main()
