"""The LSTM tagger network and what zoo asks of it: build, loss, evaluate, predict.

    e_i = Embedding(word_i)
    h_1 .. h_n = LSTM(e_1 .. e_n)          (both directions by default; packed, no padding work)
    tag_i = argmax(W h_i + b)

Tensor names are torch's own (`embedding.weight`, `lstm.weight_ih_l0`, `out.weight`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.data import Vocab
from zoo.errors import UsageError

UNK_ID = 1  # Vocab.build puts <pad>, <unk> first


class LSTMTagger(nn.Module):
    def __init__(self, config: Any, num_words: int, num_tags: int):
        super().__init__()
        self.word_dropout = config.word_dropout
        self.embedding = nn.Embedding(num_words, config.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), num_tags)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """words: [batch, time] ids, lengths: [batch] -> tag scores [batch, time, tags]."""
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(words.shape, device=words.device) < self.word_dropout) & (
                words > UNK_ID
            )
            words = words.masked_fill(drop, UNK_ID)
        x = self.dropout(self.embedding(words))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        return self.out(self.dropout(out))


def build(config: Any, state: dict[str, Any], task: str) -> LSTMTagger:
    return LSTMTagger(config, len(state["words"]), len(state["tags"]))


def loss(module: LSTMTagger, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    scores = module(batch["words"], batch["lengths"])
    return F.cross_entropy(scores.flatten(0, 1), batch["tags"].flatten(), ignore_index=-100)


def evaluate(
    module: LSTMTagger, batches: Iterable[dict[str, torch.Tensor]], state: dict[str, Any], task: str
) -> dict[str, float]:
    total = correct = loss_sum = unknown = unknown_correct = 0.0
    for batch in batches:
        scores = module(batch["words"], batch["lengths"])
        tags = batch["tags"]
        valid = tags != -100
        loss_sum += float(F.cross_entropy(scores[valid], tags[valid], reduction="sum"))
        hit = (scores.argmax(-1) == tags) & valid
        is_unknown = (batch["words"] == UNK_ID) & valid
        total += float(valid.sum())
        correct += float(hit.sum())
        unknown += float(is_unknown.sum())
        unknown_correct += float((hit & is_unknown).sum())
    metrics = {"loss": loss_sum / total, "accuracy": correct / total}
    if unknown:
        metrics["unknown_accuracy"] = unknown_correct / unknown
    metrics["unknown_words"] = int(unknown)
    return metrics


def predict(
    module: LSTMTagger, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    """Each input is a sentence, split on whitespace; returns word/TAG pairs."""
    words_vocab, tags = Vocab(state["words"]), Vocab(state["tags"], unk=None)
    sentences = [s.split() for s in inputs]
    for i, words in enumerate(sentences):
        if not words:
            raise UsageError(f"input {i + 1} is empty: give a sentence of words")
    ids = [
        words_vocab.encode(w.lower() if state.get("lowercase") else w for w in ws)
        for ws in sentences
    ]
    lengths = torch.tensor([len(s) for s in ids])
    padded = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(ids):
        padded[i, : len(s)] = torch.tensor(s)
    predicted = module(padded, lengths).argmax(-1).tolist()
    results = []
    for words, tag_ids in zip(sentences, predicted):
        pairs = list(zip(words, tags.decode(tag_ids[: len(words)])))
        results.append(
            {
                "input": " ".join(words),
                "output": [list(p) for p in pairs],
                "text": " ".join(f"{w}/{t}" for w, t in pairs),
            }
        )
    return results
