"""The LSTM classifier: the four functions zoo calls, and the network they use."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from zoo.data import Vocab
from zoo.errors import UsageError


class LSTMClassifier(nn.Module):
    def __init__(self, config: Any, num_symbols: int, num_labels: int):
        super().__init__()
        self.embedding = nn.Embedding(num_symbols, config.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embedding_dim, config.hidden_size, config.num_layers, batch_first=True
        )
        self.out = nn.Linear(config.hidden_size, num_labels)

    def forward(self, symbols: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.embedding(symbols), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h, _) = self.lstm(packed)
        return self.out(h[-1])


def build(config: Any, state: dict[str, Any], task: str) -> LSTMClassifier:
    return LSTMClassifier(config, len(state["symbols"]), len(state["labels"]))


def loss(module: LSTMClassifier, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(module(batch["symbols"], batch["lengths"]), batch["label"])


def evaluate(module, batches, state, task) -> dict[str, float]:
    n = correct = total_loss = 0.0
    for batch in batches:
        scores = module(batch["symbols"], batch["lengths"])
        total_loss += float(F.cross_entropy(scores, batch["label"], reduction="sum"))
        correct += float((scores.argmax(-1) == batch["label"]).sum())
        n += len(batch["label"])
    return {"loss": total_loss / n, "accuracy": correct / n}


def predict(module, inputs: list[str], state, task, options) -> list[dict[str, Any]]:
    symbols = Vocab(state["symbols"])
    results = []
    for text in inputs:
        if not text:
            raise UsageError("empty input: give a string of bits, e.g. 1011")
        ids = torch.tensor([symbols.encode(text)])
        label = state["labels"][int(module(ids, torch.tensor([len(text)])).argmax(-1))]
        results.append({"input": text, "output": label, "text": f"{text}\t{label}"})
    return results
