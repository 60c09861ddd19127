"""The labelled-sentences dataset: a file of `text<TAB>label` lines, as word and label ids."""

from typing import Any

import torch

from zoo.toolkit.data import Data, pad
from zoo.toolkit.splits import split
from zoo.toolkit.textfile import TextFile, embedded, read_text
from zoo.toolkit.vocab import Tokenizer, Vocab


def read(file: TextFile | str) -> list[tuple[str, str]]:
    """The (text, label) pairs of a file, or of the file at a path (`--dev`, `--test`)."""
    file = read_text(file) if isinstance(file, str) else file
    examples = []
    for lineno, line in file.numbered():
        if not line.strip():
            continue  # blank lines separate nothing; skip them
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise file.error(f"expected 'text<TAB>label', got {len(fields)} field(s)", lineno)
        examples.append((fields[0], fields[1].strip()))
    return examples


def length(example: tuple[list[int], int]) -> int:
    """Words in an example (for length buckets); a function, not a lambda, so that zoo's
    prepared-data cache can store it."""
    return len(example[0])


def collate(examples: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
    return {
        "words": pad([words for words, _ in examples]),
        "lengths": torch.tensor([len(words) for words, _ in examples]),
        "label": torch.tensor([label for _, label in examples]),
    }


def load(config: Any, state: dict[str, Any] | None) -> Data:
    """Training (`state` None) builds the vocabularies from the training split; evaluating a
    trained model reuses its own, so a word it never saw is `<unk>`."""
    file = read_text(config.path) if config.path else embedded(__package__, "sentences.tsv")
    splits = split(read(file), config, state=state, fingerprint=file.fingerprint, read=read)
    if state is None:
        tokenize = Tokenizer("word", lowercase=config.lowercase, punctuation=True)
        state = {
            **tokenize.to_state(),
            "words": Vocab.build(tokenize(text) for text, _ in splits["train"]).to_list(),
            "labels": sorted({label for _, label in splits["train"]}),
            "fingerprint": file.fingerprint,
        }
    tokenize, words, labels = Tokenizer.from_state(state), Vocab(state["words"]), state["labels"]
    # A label the model never saw gets the id len(labels): Confusion counts it wrong.
    ids = {label: i for i, label in enumerate(labels)}
    encoded = {
        name: [(words.encode(tokenize(text)), ids.get(label, len(labels))) for text, label in part]
        for name, part in splits.items()
    }
    return Data(state, encoded, collate, length=length)
