"""Tagging data: the built-in toy corpus, vocabularies and batching.

The saved state is {"words": [...], "tags": [...], "lowercase": bool}; any tagging dataset that
saves the same keys and batches the same way works with any tagging architecture.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError

Sentence = tuple[list[str], list[str]]


def parse_tagged_lines(text: str, source: str) -> list[Sentence]:
    """'word/TAG word/TAG ...' lines; '#' starts a comment line."""
    sentences = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words, tags = [], []
        for token in line.split():
            word, sep, tag = token.rpartition("/")
            if not sep or not word or not tag:
                raise DataError(f"expected word/TAG, got {token!r}", path=source, line=lineno)
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


def toy_corpus() -> list[Sentence]:
    text = resources.files(__package__).joinpath("toy_corpus.txt").read_text(encoding="utf-8")
    return parse_tagged_lines(text, "toy_corpus.txt")


def normalise(word: str, lowercase: bool) -> str:
    return word.lower() if lowercase else word


def make_state(train: list[Sentence], lowercase: bool) -> dict[str, Any]:
    return {
        "words": Vocab.build([[normalise(w, lowercase) for w in ws] for ws, _ in train]).to_list(),
        "tags": Vocab.build([ts for _, ts in train], specials=()).to_list(),
        "lowercase": lowercase,
    }


def encode(sentences: list[Sentence], state: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    words, tags = Vocab(state["words"]), Vocab(state["tags"], unk=None)
    out = []
    for ws, ts in sentences:
        try:
            tag_ids = tags.encode(ts)
        except KeyError as e:
            raise DataError(
                f"tag {e.args[0]!r} is not among the model's tags {state['tags']}"
            ) from None
        out.append((words.encode(normalise(w, state["lowercase"]) for w in ws), tag_ids))
    return out


def collate(examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    return {
        "words": pad([w for w, _ in examples], 0),
        "lengths": torch.tensor([len(w) for w, _ in examples]),
        "tags": pad([t for _, t in examples], -100),
    }


def load_toy_tags(config: Any, state: dict[str, Any] | None) -> Data:
    sentences = toy_corpus()
    v, t = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(sentences, [1 - v - t, v, t], config.split_seed)
    state = state or make_state(train, config.lowercase)
    return Data(
        state=state,
        splits={
            "train": encode(train, state),
            "valid": encode(valid, state),
            "test": encode(test, state),
        },
        collate=collate,
        length=lambda ex: len(ex[0]),
        summary=f"toy-tags: {len(train)}/{len(valid)}/{len(test)} sentences",
    )
