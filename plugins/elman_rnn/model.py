"""The Elman RNN network and what zoo asks of it: build, loss, evaluate, predict.

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)      (nn.RNN, per layer)
    y_t = W_out h_t + b_out                                  (readout, per step)

Tensor names are nn.RNN's and nn.Linear's own (`rnn.weight_ih_l0`, `readout.weight`), so the
weights load into plain torch layers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.data import Vocab, parse_numbers
from zoo.errors import UsageError


class ElmanRNN(nn.Module):
    def __init__(
        self, config: Any, input_size: int, output_size: int, vocab_size: int | None = None
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = (
            nn.Embedding(vocab_size, config.embedding_dim, padding_idx=0)
            if vocab_size is not None and config.embedding_dim > 0
            else None
        )
        self.rnn = nn.RNN(
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            nonlinearity=config.nonlinearity,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        directions = 2 if config.bidirectional else 1
        self.readout = nn.Linear(config.hidden_size * directions, output_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: [batch, time, features] of numbers, or [batch, time] of symbol ids."""
        if self.vocab_size is not None:
            x = (
                self.embedding(x)
                if self.embedding is not None
                else F.one_hot(x, self.vocab_size).float()
            )
        if lengths is not None and bool((lengths != x.shape[1]).any()):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, _ = self.rnn(x)
        return self.readout(out)


def build(config: Any, state: dict[str, Any], task: str) -> ElmanRNN:
    if task == "step-classification":
        vocab, outputs = len(state["input_vocab"]), len(state["output_vocab"])
        input_size = config.embedding_dim if config.embedding_dim > 0 else vocab
        return ElmanRNN(config, input_size, outputs, vocab_size=vocab)
    return ElmanRNN(config, int(state["input_size"]), int(state["output_size"]))


def loss(module: ElmanRNN, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = module(batch["x"], batch["lengths"])
    if "mask" in batch:  # step-regression
        mask = batch["mask"]
        return F.mse_loss(out[mask], batch["y"][mask])
    return F.cross_entropy(
        out.reshape(-1, out.shape[-1]), batch["y"].reshape(-1), ignore_index=-100
    )


def evaluate(
    module: ElmanRNN, batches: Iterable[dict[str, torch.Tensor]], state: dict[str, Any], task: str
) -> dict[str, float]:
    if task == "step-regression":
        se = ae = n = 0.0
        for batch in batches:
            mask = batch["mask"]
            diff = module(batch["x"], batch["lengths"])[mask] - batch["y"][mask]
            se += float((diff**2).sum())
            ae += float(diff.abs().sum())
            n += diff.numel()
        return {"loss": se / n, "mse": se / n, "mae": ae / n}
    total_loss = correct = tokens = exact = sequences = 0.0
    for batch in batches:
        out = module(batch["x"], batch["lengths"])
        y = batch["y"]
        valid = y != -100
        total_loss += float(F.cross_entropy(out[valid], y[valid], reduction="sum"))
        hit = (out.argmax(-1) == y) & valid
        correct += float(hit.sum())
        tokens += float(valid.sum())
        exact += float((hit | ~valid).all(dim=1).sum())
        sequences += y.shape[0]
    return {
        "loss": total_loss / tokens,
        "accuracy": correct / tokens,
        "sequence_accuracy": exact / sequences,
    }


def predict(
    module: ElmanRNN, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    if task == "step-classification":
        vocab, outputs = Vocab(state["input_vocab"]), Vocab(state["output_vocab"])
        results = []
        for text in inputs:
            if not text:
                raise UsageError("empty input: give a string of symbols, e.g. hello")
            ids = torch.tensor([vocab.encode(text)])
            predicted = "".join(outputs.decode(module(ids)[0].argmax(-1).tolist()))
            results.append({"input": text, "output": predicted, "text": f"{text} -> {predicted}"})
        return results
    # step-regression: numbers typed one per argument form one sequence; otherwise each input
    # (a line of a file) is a sequence of whitespace-separated steps.
    if all(len(s.split()) == 1 for s in inputs):
        sequences = [parse_numbers(" ".join(inputs))]
    else:
        sequences = [parse_numbers(s) for s in inputs]
    results = []
    for seq in sequences:
        if not seq:
            raise UsageError("empty input: give numbers, one per time step")
        if any(len(step) != state["input_size"] for step in seq):
            raise UsageError(f"each step needs {state['input_size']} comma-separated value(s)")
        out = module(torch.tensor([seq], dtype=torch.float32))[0]
        values = [[round(v, 6) for v in row] for row in out.tolist()]
        flat = [v[0] if len(v) == 1 else v for v in values]
        results.append(
            {
                "input": [s[0] if len(s) == 1 else s for s in seq],
                "output": flat,
                "text": " ".join(
                    f"{v:.4f}" if isinstance(v, float) else ",".join(f"{u:.4f}" for u in v)
                    for v in flat
                ),
            }
        )
    return results
