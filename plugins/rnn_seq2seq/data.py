"""Sequence-pair data: tokenising, vocabularies and batching for the seq2seq task.

The saved state is {"source": [...], "target": [...], "tokens": "char"|"word",
"max_target_length": int}; targets are framed as <s> y_1 .. y_n </s>.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError

Pair = tuple[list[str], list[str]]
SPECIALS = (Vocab.PAD, Vocab.UNK, Vocab.BOS, Vocab.EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


def tokenize(text: str, mode: str) -> list[str]:
    return list(text) if mode == "char" else text.split()


def detokenize(tokens: list[str], mode: str) -> str:
    return "".join(tokens) if mode == "char" else " ".join(tokens)


def parse_pairs(text: str, source: str, mode: str) -> list[Pair]:
    pairs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise DataError("expected 'source<TAB>target'", path=source, line=lineno)
        pairs.append((tokenize(parts[0].strip(), mode), tokenize(parts[1].strip(), mode)))
    if not pairs:
        raise DataError("no pairs found (empty file?)", path=source)
    return pairs


def make_state(train: list[Pair], mode: str) -> dict[str, Any]:
    return {
        "source": Vocab.build([s for s, _ in train], specials=SPECIALS).to_list(),
        "target": Vocab.build([t for _, t in train], specials=SPECIALS).to_list(),
        "tokens": mode,
        "max_target_length": max(len(t) for _, t in train),
    }


def encode(pairs: list[Pair], state: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    src, tgt = Vocab(state["source"]), Vocab(state["target"])
    return [(src.encode(s), [BOS_ID, *tgt.encode(t), EOS_ID]) for s, t in pairs]


def collate(examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    targets = [t for _, t in examples]
    return {
        "src": pad([s for s, _ in examples], PAD_ID),
        "src_lengths": torch.tensor([len(s) for s, _ in examples]),
        "tgt_in": pad([t[:-1] for t in targets], PAD_ID),
        "tgt_out": pad([t[1:] for t in targets], -100),
    }


def load_word_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    if config.path:
        with open(config.path, encoding="utf-8") as f:
            pairs = parse_pairs(f.read(), config.path, config.tokens)
    else:
        text = resources.files(__package__).joinpath("word_pairs.tsv").read_text(encoding="utf-8")
        pairs = parse_pairs(text, "word_pairs.tsv", config.tokens)
    v, t = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(pairs, [1 - v - t, v, t], config.split_seed)
    state = state or make_state(train, config.tokens)
    return Data(
        state=state,
        splits={
            "train": encode(train, state),
            "valid": encode(valid, state),
            "test": encode(test, state),
        },
        collate=collate,
        length=lambda ex: len(ex[0]),
        summary=f"word-pairs: {len(train)}/{len(valid)}/{len(test)} pairs from {config.path or 'built-in words'}",
    )
