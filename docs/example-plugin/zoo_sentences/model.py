"""The GRU classifier: embeddings, a bidirectional GRU, and a linear layer reading the final
states of both directions. The rest is what zoo asks of a network: its training loss, its
metrics over a split, and predictions for raw sentences."""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import zoo
from zoo.toolkit.cells import recurrent_layer
from zoo.toolkit.data import map_in_length_order, pad
from zoo.toolkit.metrics import Confusion
from zoo.toolkit.vocab import Tokenizer, Vocab


class GRUClassifier(zoo.Network):
    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        self.words, self.labels = Vocab(state["words"]), state["labels"]
        self.tokenize = Tokenizer.from_state(state)
        dim, hidden = config.embedding_dim, config.hidden_size
        self.embedding = nn.Embedding(len(self.words), dim, padding_idx=0)
        self.gru = recurrent_layer(
            "gru", config.impl, dim, hidden, batch_first=True, bidirectional=True
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(2 * hidden, len(self.labels))

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Label scores [B, labels] of word ids [B, T] (right-padded) of the given lengths."""
        x = self.dropout(self.embedding(words))
        x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(x)  # h: [2, B, H], the final states of both directions
        return self.out(self.dropout(torch.cat([h[0], h[1]], dim=-1)))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self(batch["words"], batch["lengths"]), batch["label"])

    def evaluate(self, batches: Any) -> dict[str, Any]:
        confusion, total = Confusion(self.labels), 0.0
        unseen = len(self.labels)  # the id of a label the model never saw: no loss, but wrong
        for batch in batches:
            scores, gold = self(batch["words"], batch["lengths"]), batch["label"]
            total += float(F.cross_entropy(scores, gold, ignore_index=unseen, reduction="sum"))
            confusion.add(scores.argmax(-1), gold)
        return {"loss": total / max(1, confusion.total), **confusion.metrics()}

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        if not all(text.strip() for text in inputs):
            raise zoo.UsageError("an empty input: give a sentence to classify")
        encoded = [self.words.encode(self.tokenize(text)) for text in inputs]
        labelled = map_in_length_order(self.classify, encoded, options.batch_size)
        return [
            {"input": text, "output": label, "probability": p, "text": f"{label}\t{p:.2f}\t{text}"}
            for text, (label, p) in zip(inputs, labelled)
        ]

    def classify(self, encoded: list[list[int]]) -> list[tuple[str, float]]:
        """(label, its probability) for each sentence of a batch of word ids."""
        lengths = torch.tensor([len(ids) for ids in encoded])
        p, best = self(pad(encoded).to(self.device), lengths).softmax(-1).max(-1)
        return [(self.labels[i], round(q, 4)) for q, i in zip(p.tolist(), best.tolist())]
