"""Tagging data: the built-in toy corpus, CoNLL-U treebanks, vocabularies and batching.

The saved state is {"words": [...], "tags": [...], "chars": [...], "lowercase": bool} (plus
"column" for CoNLL-U: which column the tags came from). "words" holds every training word
(lower-cased when `lowercase`), so evaluation can tell known from unknown words; "chars" the
training characters in their original case, for the character-level word features.

A batch is the `tagging` task's `words` [B,T], `lengths` [B] and `tags` [B,T] (-100 padding),
(and, in evaluation splits only, `UNSEEN_TAG` = -2
for a gold tag the model does not know: counted as a word, never right), plus the optional
keys: `counts` [B,T] (training batches only), how often each word occurs in the
training data, and the character keys: `chars` [U,L] the character ids of the U distinct word forms
of the batch (between begin/end-of-word symbols, padded with 0), `char_lengths` [U], and
`forms` [B,T], which row of `chars` each word is. Computing each distinct form once per batch
saves a third of the character work on English text.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError, UsageError

from . import conllu

Sentence = tuple[list[str], list[str]]
# An encoded example: word ids, the original forms, tag ids, and for training examples how
# often each word occurs in the training data (for frequency-aware word dropout), else None.
Example = tuple[list[int], tuple[str, ...], list[int], list[int] | None]

BOW, EOW = "<w>", "</w>"
CHAR_SPECIALS = (Vocab.PAD, Vocab.UNK, BOW, EOW)
UNSEEN_TAG = -2  # gold tag of an evaluation word that the model has never seen
MAX_WORD_CHARS = 30  # longer forms (URLs) keep their first and last 15 characters


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


def clip_form(form: str) -> str:
    if len(form) <= MAX_WORD_CHARS:
        return form
    half = MAX_WORD_CHARS // 2
    return form[:half] + form[-half:]


def make_state(
    train: list[Sentence], lowercase: bool, known_tags: Sequence[str] = ()
) -> dict[str, Any]:
    """Vocabularies from the training sentences; `known_tags` (a closed tag set such as UPOS's
    seventeen) are added after the training tags, so a tag that training lacks is still one
    the model can be scored on."""
    tags = Vocab.build([ts for _, ts in train], specials=()).to_list()
    return {
        "words": Vocab.build([[normalise(w, lowercase) for w in ws] for ws, _ in train]).to_list(),
        "tags": tags + [t for t in known_tags if t not in tags],
        "chars": Vocab.build(
            (clip_form(w) for ws, _ in train for w in ws), specials=CHAR_SPECIALS
        ).to_list(),
        "lowercase": lowercase,
    }


def encode(
    sentences: list[Sentence], state: dict[str, Any], source: str = "", *, training: bool = True
) -> list[Example]:
    """Ids of words and tags (and, for training data, word counts). A gold tag the model does
    not know is an error in training data and, in evaluation data, `UNSEEN_TAG`: a word the
    model cannot get right."""
    words, tags = Vocab(state["words"]), Vocab(state["tags"], unk=None)
    lowercase = state["lowercase"]
    counts = (
        Counter(normalise(w, lowercase) for ws, _ in sentences for w in ws) if training else None
    )
    out = []
    for ws, ts in sentences:
        try:
            tag_ids = tags.encode(ts)
        except KeyError as e:
            if not training:
                tag_ids = [tags.index.get(t, UNSEEN_TAG) for t in ts]
            else:
                where = f"{source}: " if source else ""
                raise DataError(
                    f"{where}tag {e.args[0]!r} is not among the model's tags {state['tags']}"
                ) from None
        normal = [normalise(w, lowercase) for w in ws]
        seen = [counts[w] for w in normal] if counts is not None else None
        out.append((words.encode(normal), tuple(ws), tag_ids, seen))
    return out


class CharEncoder:
    """Form -> character ids (with begin/end-of-word symbols), cached: a corpus repeats forms."""

    def __init__(self, chars: Sequence[str] | None):
        self.vocab = Vocab(chars) if chars else None
        self.cache: dict[str, list[int]] = {}

    def __call__(self, form: str) -> list[int]:
        ids = self.cache.get(form)
        if ids is None:
            assert self.vocab is not None
            v = self.vocab
            ids = [v.index[BOW], *(v.id(c) for c in clip_form(form)), v.index[EOW]]
            if len(self.cache) < 1_000_000:
                self.cache[form] = ids
        return ids

    def batch(self, sentences: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """The character keys of a batch: distinct forms' ids, their lengths, each word's row."""
        rows: dict[str, int] = {}
        index = [[rows.setdefault(f, len(rows)) for f in forms] for forms in sentences]
        ids = [self(f) for f in rows]
        return {
            "chars": pad(ids, 0),
            "char_lengths": torch.tensor([len(c) for c in ids]),
            "forms": pad(index, 0),
        }


def make_collate(state: dict[str, Any]) -> Callable[[Sequence[Example]], dict[str, torch.Tensor]]:
    """A collate function for `state`'s vocabularies (with character keys when it has chars)."""
    chars = CharEncoder(state.get("chars"))

    def collate(examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        batch = {
            "words": pad([ex[0] for ex in examples], 0),
            "lengths": torch.tensor([len(ex[0]) for ex in examples]),
            "tags": pad([ex[2] for ex in examples], -100),
        }
        if chars.vocab is not None:
            batch.update(chars.batch([ex[1] for ex in examples]))
        if all(ex[3] is not None for ex in examples):
            batch["counts"] = pad([ex[3] for ex in examples], 0)  # type: ignore[misc]
        return batch

    return collate


def example_length(example: Example) -> int:
    return len(example[0])


def load_toy_tags(config: Any, state: dict[str, Any] | None) -> Data:
    sentences = toy_corpus()
    v, t = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(sentences, [1 - v - t, v, t], config.split_seed)
    state = state or make_state(train, config.lowercase)
    return Data(
        state=state,
        splits={
            "train": encode(train, state),
            "valid": encode(valid, state, training=False),
            "test": encode(test, state, training=False),
        },
        collate=make_collate(state),
        length=example_length,
        summary=f"toy-tags: {len(train)}/{len(valid)}/{len(test)} sentences",
    )


# ------------------------------------------------------------------------------- CoNLL-U
UPOS = [
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
]  # the Universal POS tags, a closed set


def find_split_files(folder: Path) -> dict[str, Path]:
    """The `*-ud-train/dev/test.conllu` files of a treebank folder (each at most once)."""
    found: dict[str, Path] = {}
    for split, suffix in (("train", "train"), ("valid", "dev"), ("test", "test")):
        matches = sorted(folder.glob(f"*-ud-{suffix}.conllu"))
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise DataError(
                f"several *-ud-{suffix}.conllu files ({names}); give files", path=str(folder)
            )
        if matches:
            found[split] = matches[0]
    if not found:
        raise DataError(
            "no *-ud-train.conllu, *-ud-dev.conllu or *-ud-test.conllu files in this folder",
            path=str(folder),
        )
    return found


def conllu_files(config: Any, training: bool) -> dict[str, Path]:
    """Which file feeds which split, from --data (a file or a treebank folder), --dev, --test.

    When a trained model is evaluated (`training` False) on one file given with --data and no
    --dev/--test, that file is the test split."""
    if config.path is None:
        raise UsageError(
            "dataset 'conllu' reads files: give --data TRAIN.conllu [--dev DEV --test TEST] "
            "or --data FOLDER holding *-ud-{train,dev,test}.conllu"
        )
    path = Path(config.path)
    if path.is_dir():
        files = find_split_files(path)
    elif not path.exists():
        raise DataError("no such file or folder", path=str(path))
    elif not training and not config.dev_path and not config.test_path:
        return {"test": path}
    else:
        files = {"train": path}
    if config.dev_path:
        files["valid"] = Path(config.dev_path)
    if config.test_path:
        files["test"] = Path(config.test_path)
    if training and "train" not in files:
        raise DataError("no *-ud-train.conllu file in this folder to train on", path=str(path))
    return files


def read_conllu_sentences(path: os.PathLike[str], config: Any) -> list[Sentence]:
    sentences = conllu.read(path, config.column, limit=config.limit)
    return [(s.words, s.tags) for s in sentences]  # type: ignore[misc]  # tags required


def load_conllu(config: Any, state: dict[str, Any] | None) -> Data:
    """A treebank's train/dev/test files; vocabularies from train only."""
    files = conllu_files(config, training=state is None)
    read = {split: read_conllu_sentences(p, config) for split, p in files.items()}
    fresh = state is None
    if state is None:
        state = make_state(read["train"], config.lowercase, UPOS if config.column == "upos" else ())
        state["column"] = config.column
    elif state.get("column", config.column) != config.column:
        raise UsageError(
            f"the model was trained on the {state['column'].upper()} column; "
            f"--set column={state['column']}"
        )
    splits = {
        split: encode(s, state, str(files[split]), training=split == "train" and fresh)
        for split, s in read.items()
    }
    sizes = ", ".join(
        f"{split} {files[split].name} {len(s):,} sentences / {sum(len(w) for w, _ in s):,} words"
        for split, s in read.items()
    )
    return Data(
        state=state,
        splits=splits,
        collate=make_collate(state),
        length=example_length,
        summary=f"conllu ({config.column.upper()}): {sizes}",
        info={"files": {split: str(p) for split, p in files.items()}},
    )
