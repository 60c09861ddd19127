"""The RNN encoder-decoder and what zoo asks of it: build, loss, evaluate, predict.

    h = Encoder-RNN(Embed(x_1 .. x_n))[final state]
    s_0 = h;  s_t = Decoder-RNN(Embed(y_{t-1}), s_{t-1});  p(y_t) = softmax(W s_t + b)

Training feeds the true previous token (teacher forcing); decoding feeds back its own greedy
choice, from <s> until </s> or the length limit, a whole batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from zoo.data import Vocab
from zoo.errors import UsageError

from .data import BOS_ID, EOS_ID, PAD_ID, detokenize, tokenize


class RNNSeq2Seq(nn.Module):
    def __init__(self, config: Any, source_vocab: int, target_vocab: int, max_length: int):
        super().__init__()
        self.max_length = max_length
        dropout = config.dropout if config.num_layers > 1 else 0.0
        self.src_embedding = nn.Embedding(source_vocab, config.embedding_dim, padding_idx=PAD_ID)
        self.tgt_embedding = nn.Embedding(target_vocab, config.embedding_dim, padding_idx=PAD_ID)
        self.encoder = nn.RNN(
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=dropout,
        )
        self.decoder = nn.RNN(
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size, target_vocab)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.dropout(self.src_embedding(src)),
            lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        _, hidden = self.encoder(packed)
        return hidden

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced scores [batch, target time, target vocab]."""
        out, _ = self.decoder(self.dropout(self.tgt_embedding(tgt_in)), self.encode(src, lengths))
        return self.out(self.dropout(out))

    @torch.no_grad()
    def greedy(
        self, src: torch.Tensor, lengths: torch.Tensor, max_length: int | None = None
    ) -> list[list[int]]:
        """Token ids of the greedy output of each source, </s> excluded."""
        limit = max_length or self.max_length
        hidden = self.encode(src, lengths)
        token = torch.full((src.shape[0], 1), BOS_ID, dtype=torch.long, device=src.device)
        finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        steps = []
        for _ in range(limit):
            out, hidden = self.decoder(self.tgt_embedding(token), hidden)
            token = self.out(out).argmax(-1)
            steps.append(token[:, 0])
            finished |= token[:, 0] == EOS_ID
            if bool(finished.all()):
                break
        ids = torch.stack(steps, 1).tolist() if steps else [[] for _ in range(src.shape[0])]
        return [row[: row.index(EOS_ID)] if EOS_ID in row else row for row in ids]


def decode_limit(config: Any, state: dict[str, Any]) -> int:
    return config.max_length or 2 * int(state["max_target_length"]) + 10


def build(config: Any, state: dict[str, Any], task: str) -> RNNSeq2Seq:
    return RNNSeq2Seq(
        config, len(state["source"]), len(state["target"]), decode_limit(config, state)
    )


def loss(module: RNNSeq2Seq, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    scores = module(batch["src"], batch["src_lengths"], batch["tgt_in"])
    return F.cross_entropy(scores.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=-100)


def evaluate(
    module: RNNSeq2Seq, batches: Iterable[dict[str, torch.Tensor]], state: dict[str, Any], task: str
) -> dict[str, float]:
    """Teacher-forced loss, and exact match / token accuracy of greedy decoding."""
    loss_sum = tokens = exact = sequences = token_hits = 0.0
    for batch in batches:
        gold = batch["tgt_out"]
        valid = gold != -100
        scores = module(batch["src"], batch["src_lengths"], batch["tgt_in"])
        loss_sum += float(F.cross_entropy(scores[valid], gold[valid], reduction="sum"))
        tokens += float(valid.sum())
        for row, predicted in zip(gold.tolist(), module.greedy(batch["src"], batch["src_lengths"])):
            target = [t for t in row if t != -100][:-1]  # drop </s>
            exact += predicted == target
            token_hits += sum(p == t for p, t in zip(predicted, target)) / max(
                len(target), len(predicted), 1
            )
            sequences += 1
    return {
        "loss": loss_sum / tokens,
        "exact_match": exact / sequences,
        "token_accuracy": token_hits / sequences,
    }


def predict(
    module: RNNSeq2Seq, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    """Each input is one source sequence; returns its greedy translation."""
    src_vocab, tgt_vocab, mode = Vocab(state["source"]), Vocab(state["target"]), state["tokens"]
    encoded = []
    for i, text in enumerate(inputs):
        tokens = tokenize(text.strip(), mode)
        if not tokens:
            raise UsageError(f"input {i + 1} is empty: give a sequence to translate")
        encoded.append(src_vocab.encode(tokens))
    lengths = torch.tensor([len(s) for s in encoded])
    src = torch.full((len(encoded), int(lengths.max())), PAD_ID, dtype=torch.long)
    for i, s in enumerate(encoded):
        src[i, : len(s)] = torch.tensor(s)
    results = []
    for text, ids in zip(inputs, module.greedy(src, lengths)):
        output = detokenize(tgt_vocab.decode(ids), mode)
        results.append({"input": text, "output": output, "text": output})
    return results
