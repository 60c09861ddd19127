"""Tagging data: the built-in toy corpus, CoNLL-U treebanks, vocabularies and batching.

The saved state is {"words": [...], "tags": [...], "chars": [...], "lowercase": bool} (plus,
for CoNLL-U, "column": which column the tags came from, and "fingerprint" of the training
file). "words" holds every training word (lower-cased when `lowercase`), so evaluation can
tell known from unknown words; "chars" the training characters in their original case, for
the character-level word features.

A batch is the `tagging` task's `words` [B,T], `lengths` [B] and `tags` [B,T] (-100 padding;
in evaluation splits only, `UNSEEN_TAG` = -2 for a gold tag the model does not know: counted
as a word, never right), plus the optional keys: `counts` [B,T] (training batches only), how
often each word occurs in the training data, and the character keys: `chars` [U,L] the
character ids of the U distinct word forms of the batch (between begin/end-of-word symbols,
padded with 0), `char_lengths` [U], and `forms` [B,T], which row of `chars` each word is;
for a treebank read with `aux_columns`, training batches carry `aux/NAME` [B,T] too, the ids
of each auxiliary column's values (vocabularies in the state's "aux_tags"), the targets of the
extra output layers; evaluation batches carry `gold/NAME` [B,T] instead, the gold values as
`evaluate` compares them (`match_key`: FEATS by its universal features, as the CoNLL 2018
script does), so each learnt column gets its accuracy.
Computing each distinct form once per batch saves a third of the character work on English
text.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.core.errors import DataError, SettingError, UsageError
from zoo.toolkit.data import Data, pad
from zoo.toolkit.records import Records, Taken, is_large, spill
from zoo.toolkit.splits import SPLITS, split
from zoo.toolkit.textfile import Lines, TextFile, embedded, read_text
from zoo.toolkit.vocab import Vocab

from . import conllu

# Words and their tags, and for a treebank read with `aux_columns`, those columns' values.
Sentence = tuple[list[str], list[str]] | tuple[list[str], list[str], dict[str, list[str]]]
# An encoded example: word ids, the original forms, tag ids, for training examples how often
# each word occurs in the training data (for frequency-aware word dropout), else None, and the
# auxiliary columns' ids by batch key (`aux/NAME` in training, `gold/NAME` in evaluation), or
# None without them.
Example = tuple[
    list[int], tuple[str, ...], list[int], list[int] | None, dict[str, list[int]] | None
]

BOW, EOW = "<w>", "</w>"
CHAR_SPECIALS = (Vocab.PAD, Vocab.UNK, BOW, EOW)
UNK_ID = 1  # Vocab.build puts <pad>, <unk> first
UNSEEN_TAG = -2  # gold tag of an evaluation word that the model has never seen
MAX_WORD_CHARS = 30  # longer forms (URLs) keep their first and last 15 characters


def parse_tagged_lines(file: TextFile) -> list[Sentence]:
    """'word/TAG word/TAG ...' lines; '#' starts a comment line."""
    sentences = []
    for lineno, line in file.numbered():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words, tags = [], []
        for token in line.split():
            word, sep, tag = token.rpartition("/")
            if not sep or not word or not tag:
                raise file.error(f"expected word/TAG, got {token!r}", lineno)
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


def toy_corpus() -> list[Sentence]:
    return parse_tagged_lines(embedded(__package__, "toy_corpus.txt"))


def normalise(word: str, lowercase: bool) -> str:
    return word.lower() if lowercase else word


def clip_form(form: str) -> str:
    if len(form) <= MAX_WORD_CHARS:
        return form
    half = MAX_WORD_CHARS // 2
    return form[:half] + form[-half:]


def make_state(
    train: Iterable[Sentence], lowercase: bool, known_tags: Sequence[str] = ()
) -> dict[str, Any]:
    """Vocabularies from the training sentences, counted in one pass (a streamed treebank is
    read once); `known_tags` (a closed tag set such as UPOS's seventeen) are added after the
    training tags, so a tag that training lacks is still one the model can be scored on."""
    words: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    aux: dict[str, Counter[str]] | None = None
    for sentence in train:
        words.update(normalise(w, lowercase) for w in sentence[0])
        tags.update(sentence[1])
        for w in sentence[0]:
            chars.update(clip_form(w))
        if aux is None:  # the first sentence says which auxiliary columns there are
            aux = {name: Counter() for name in aux_values(sentence)}
        for name, values in aux_values(sentence).items():
            aux[name].update(values)
    tag_list = Vocab.from_counts(tags, specials=()).to_list()
    state = {
        "words": Vocab.from_counts(words).to_list(),
        "tags": tag_list + [t for t in known_tags if t not in tag_list],
        "chars": Vocab.from_counts(chars, specials=CHAR_SPECIALS).to_list(),
        "lowercase": lowercase,
    }
    if aux:
        state["aux_tags"] = {
            name: Vocab.from_counts(c, specials=()).to_list() for name, c in aux.items()
        }
    return state


def aux_values(sentence: Sentence) -> dict[str, list[str]]:
    """The auxiliary columns of a sentence (`aux_columns`), each a value per word; {} if none."""
    return sentence[2] if len(sentence) > 2 else {}  # type: ignore[misc]


def encode(
    sentences: Sequence[Sentence],
    state: dict[str, Any],
    source: str = "",
    *,
    training: bool = True,
) -> list[Example]:
    """Ids of words and tags (and, for training data, word counts). A gold tag the model does
    not know is an error in training data and, in evaluation data, `UNSEEN_TAG`: a word the
    model cannot get right."""
    return list(encoded(sentences, state, source, training=training))


def encoded(
    sentences: Sequence[Sentence],
    state: dict[str, Any],
    source: str = "",
    *,
    training: bool = True,
) -> Iterator[Example]:
    """`encode`, one example at a time (two passes over `sentences` in training: the counts,
    then the ids), for a split written to disk as it is encoded."""
    words, tags = Vocab(state["words"]), Vocab(state["tags"], unk=None)
    lowercase = state["lowercase"]
    counts = Counter(normalise(w, lowercase) for s in sentences for w in s[0]) if training else None
    aux = aux_encoder(state, training=training)
    for sentence in sentences:
        ws, ts = sentence[0], sentence[1]
        try:
            tag_ids = tags.encode(ts)
        except KeyError as e:
            if not training:
                tag_ids = [tags.index.get(t, UNSEEN_TAG) for t in ts]
            else:
                raise DataError(
                    f"tag {e.args[0]!r} is not among the model's tags {state['tags']}",
                    path=source or None,
                ) from None
        normal = [normalise(w, lowercase) for w in ws]
        seen = [counts[w] for w in normal] if counts is not None else None
        yield (words.encode(normal), tuple(ws), tag_ids, seen, aux(sentence))


def match_key(column: str) -> Callable[[str], str]:
    """What evaluation compares of a column's values: FEATS by its universal features alone,
    as the CoNLL 2018 script's UFeats and AllTags do (zoo's figures must be the script's);
    any other column as written."""
    return conllu.universal_feats if column == "feats" else str


def match_keys(column: str, values: Sequence[str]) -> tuple[dict[str, int], list[int]]:
    """The distinct match keys of a column's vocabulary (key -> id) and the key id of each
    value: a predicted value id is right when its key id is the gold word's."""
    key = match_key(column)
    keys: dict[str, int] = {}
    return keys, [keys.setdefault(key(v), len(keys)) for v in values]


def aux_encoder(
    state: dict[str, Any], *, training: bool
) -> Callable[[Sentence], dict[str, list[int]] | None]:
    """What encodes a sentence's auxiliary columns: in training the targets, `aux/NAME`, each
    value's id; in evaluation `gold/NAME`, each value's match key id (UNSEEN_TAG where no value
    the model knows matches it: a word it cannot get right), which `evaluate` scores. None for
    a sentence without those columns, or a state without their vocabularies."""
    vocabs = state.get("aux_tags", {})
    if training:
        targets = {name: Vocab(values, unk=None) for name, values in vocabs.items()}

        def encode_targets(sentence: Sentence) -> dict[str, list[int]] | None:
            values = aux_values(sentence)
            if not values or not targets:
                return None
            return {f"aux/{name}": v.encode(values[name]) for name, v in targets.items()}

        return encode_targets
    keys = {name: match_keys(name, values)[0] for name, values in vocabs.items()}

    def encode_gold(sentence: Sentence) -> dict[str, list[int]] | None:
        values = aux_values(sentence)
        gold = {
            f"gold/{name}": [k.get(match_key(name)(v), UNSEEN_TAG) for v in values[name]]
            for name, k in keys.items()
            if name in values
        }
        return gold or None

    return encode_gold


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


class Collate:
    """Batches of encoded sentences for `state`'s vocabularies (character keys when it has
    chars). A class rather than a closure so that it pickles: zoo's prepared-data cache stores
    it beside the mapped examples (docs/plugins.md, "Prepared data")."""

    def __init__(self, state: dict[str, Any]):
        self.chars = CharEncoder(state.get("chars"))

    def __call__(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        batch = {
            "words": pad([ex[0] for ex in examples], 0),
            "lengths": torch.tensor([len(ex[0]) for ex in examples]),
            "tags": pad([ex[2] for ex in examples], -100),
        }
        if self.chars.vocab is not None:
            batch.update(self.chars.batch([ex[1] for ex in examples]))
        if all(ex[3] is not None for ex in examples):
            batch["counts"] = pad([ex[3] for ex in examples], 0)  # type: ignore[misc]
        aux = [ex[4] for ex in examples]
        if all(a is not None for a in aux):
            for key in aux[0] or {}:
                batch[key] = pad([a[key] for a in aux if a is not None], -100)
        return batch


def make_collate(state: dict[str, Any]) -> Callable[[Sequence[Example]], dict[str, torch.Tensor]]:
    """A collate function for `state`'s vocabularies (with character keys when it has chars)."""
    return Collate(state)


def input_encoder(
    state: dict[str, Any], *, chars: bool
) -> Callable[[Sequence[Sequence[str]]], dict[str, torch.Tensor]]:
    """What turns lists of words into the network's input (prediction: no tags), for
    `state`'s vocabularies; with `chars`, the character keys too."""
    words, lowercase = Vocab(state["words"]), bool(state.get("lowercase"))
    char_encoder = CharEncoder(state.get("chars")) if chars else None

    def batch(sentences: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        out = {
            "words": pad([words.encode(normalise(w, lowercase) for w in ws) for ws in sentences]),
            "lengths": torch.tensor([len(ws) for ws in sentences]),
        }
        if char_encoder is not None:
            out.update(char_encoder.batch(sentences))
        return out

    return batch


def example_length(example: Example) -> int:
    return len(example[0])


def load_toy_tags(config: Any, state: dict[str, Any] | None) -> Data:
    parts = split(toy_corpus(), config, state=state)
    state = state or make_state(list(parts["train"]), config.lowercase)
    return Data(
        state=state,
        splits={
            name: encode(list(parts[name]), state, training=name == "train") for name in SPLITS
        },
        collate=make_collate(state),
        length=example_length,
        summary="toy-tags: " + "/".join(str(len(parts[name])) for name in SPLITS) + " sentences",
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
    for name, suffix in (("train", "train"), ("valid", "dev"), ("test", "test")):
        matches = sorted(folder.glob(f"*-ud-{suffix}.conllu"))
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise DataError(
                f"several *-ud-{suffix}.conllu files ({names}); give files", path=str(folder)
            )
        if matches:
            found[name] = matches[0]
    if not found:
        raise DataError(
            "no *-ud-train.conllu, *-ud-dev.conllu or *-ud-test.conllu files in this folder",
            path=str(folder),
        )
    return found


def conllu_files(config: Any) -> tuple[Path | None, Any]:
    """The training file named by --data (a file, or a treebank folder's train file, which
    a folder holding only dev/test files lacks), and the config with --dev/--test, or else
    the folder's dev and test files, as its dev_path and test_path."""
    if config.path is None:
        raise UsageError(
            "dataset 'conllu' reads files: give --data TRAIN.conllu [--dev DEV --test TEST] "
            "or --data FOLDER holding *-ud-{train,dev,test}.conllu"
        )
    path = Path(config.path)
    if not path.is_dir():
        if not path.exists():
            raise DataError("no such file or folder", path=str(path))
        return path, config
    found = find_split_files(path)
    dev, test = config.dev_path or found.get("valid"), config.test_path or found.get("test")
    folder_files = dataclasses.replace(
        config,
        dev_path=str(dev) if dev is not None else None,
        test_path=str(test) if test is not None else None,
    )
    return found.get("train"), folder_files


MAX_HEAD_OFFSET = 8


def head_offset(head: str, position: int) -> str:
    """The HEAD column as a label: where the head is from the word (-2: two words before),
    clipped at MAX_HEAD_OFFSET either way; "root" for the root, "_" for none."""
    if not head.isdigit():
        return "_"
    if head == "0":
        return "root"
    distance = int(head) - position if len(head) < 10 else MAX_HEAD_OFFSET  # int() caps digits
    offset = max(-MAX_HEAD_OFFSET, min(MAX_HEAD_OFFSET, distance))
    return f"{offset:+d}"


def _other_columns(config: Any) -> tuple[str, ...]:
    return tuple(c for c in config.aux_columns.split(",") if c and c != config.column)


def _as_examples(
    sentences: Iterable[conllu.Sentence], other: tuple[str, ...]
) -> Iterator[Sentence]:
    for s in sentences:
        if "head" in other:
            s.other["head"] = [head_offset(h, i + 1) for i, h in enumerate(s.other["head"])]
        yield (s.words, s.tags, s.other) if other else (s.words, s.tags)  # type: ignore[misc]


def read_conllu(file: TextFile, config: Any) -> list[Sentence]:
    other = _other_columns(config)
    sentences = conllu.read(file, config.column, limit=config.limit, other_columns=other)
    return list(_as_examples(sentences, other))


def stream_conllu(path: str, config: Any) -> tuple[Records, str]:
    """(the sentences, the file's fingerprint) of a treebank larger than memory, read line by
    line and written to temporary records (zoo.toolkit.records) as they are parsed: the
    sentences of `read_conllu`, the same errors (the first a whole read would give, naming
    the file and line), memory for one sentence. `limit` keeps the first sentences, after the
    whole file is checked, as `read_conllu` does."""
    other, lines = _other_columns(config), Lines(path)
    found = conllu.sentences(lines, path, config.column, other_columns=other)
    kept = (s for k, s in enumerate(found) if not config.limit or k < config.limit)
    try:
        sentences = spill(_as_examples(kept, other))
    except DataError as e:
        lines.fail(e)
    if not len(sentences):
        raise DataError("no sentences: expected CoNLL-U word lines (ID FORM ... MISC)", path=path)
    assert lines.fingerprint is not None  # a whole pass was made
    return sentences, lines.fingerprint


def load_conllu(config: Any, state: dict[str, Any] | None) -> Data:
    """A treebank: its dev and test files (--dev, --test, or a folder's) or else the held-out
    fractions of the training file; vocabularies from the training split only. A trained
    model evaluated on another file scores that file whole (zoo.splits.split)."""
    if state is not None and state.get("column", config.column) != config.column:
        raise SettingError(
            f"column={config.column}: the model was trained on the "
            f"{state['column'].upper()} column; use column={state['column']}"
        )
    train_path, config = conllu_files(config)
    read_from: dict[int, str] = {}  # id of a split read from a --dev/--test file -> the file

    streamed = is_large(train_path)  # to train on, or to score with a trained model (`state`)

    def read_file(path: str) -> Sequence[Sentence]:
        if streamed and is_large(path):
            sentences: Sequence[Sentence] = stream_conllu(path, config)[0]
        else:
            sentences = read_conllu(read_text(path), config)
        read_from[id(sentences)] = path
        return sentences

    if train_path is None:  # a folder of dev/test files: evaluating only
        if state is None:
            raise DataError(
                "no *-ud-train.conllu file in this folder to train on", path=config.path
            )
        parts: dict[str, Sequence[Sentence]] = {"train": []}
        for name, path in (("valid", config.dev_path), ("test", config.test_path)):
            parts[name] = read_file(path) if path else []
        return conllu_data(config, state, parts, read_from, "", fresh=False)
    if streamed:
        examples, stamp = stream_conllu(str(train_path), config)
    else:
        file = read_text(train_path)
        examples, stamp = read_conllu(file, config), file.fingerprint
    # A treebank folder's dev and test files are its held-out splits whichever treebank the
    # model was trained on: it is evaluated as the training folder would be.
    own = state.get("fingerprint") if state is not None and Path(config.path).is_dir() else None
    parts = split(examples, config, state=state, fingerprint=own or stamp, read=read_file)
    parts = in_file_order(parts, examples)
    fresh = state is None
    if state is None:
        upos = UPOS if config.column == "upos" else ()
        state = make_state(parts["train"], config.lowercase, upos)
        state.update(column=config.column, fingerprint=stamp)
    collect = streamed_split if streamed else list
    return conllu_data(config, state, parts, read_from, str(train_path), fresh, collect)


def streamed_split(examples: Iterable[Example]) -> Sequence[Example]:
    """A split of a streamed treebank: written to disk as encoded, its lengths beside it."""
    return spill(examples, example_length)


def in_file_order(
    parts: dict[str, Sequence[Sentence]], examples: Sequence[Sentence]
) -> dict[str, Sequence[Sentence]]:
    """The splits cut from the training file, each in the file's order: the vocabularies'
    ties and the batches (hence the weights) are those of a treebank read in order, as they
    were before held-out fractions; the splits read from files are left as they are. Views
    of a streamed treebank (zoo.toolkit.records.Taken) are put in order by position."""
    if not isinstance(examples, list):
        return {
            name: Taken(examples, np.sort(part.positions))
            if isinstance(part, Taken) and part.base is examples
            else part
            for name, part in parts.items()
        }
    position = {id(s): i for i, s in enumerate(examples)}

    def cut(part: Sequence[Sentence]) -> bool:
        return part is not examples and bool(part) and id(part[0]) in position

    return {
        name: sorted(part, key=lambda s: position[id(s)]) if cut(part) else part
        for name, part in parts.items()
    }


def conllu_data(
    config: Any,
    state: dict[str, Any],
    parts: dict[str, Sequence[Sentence]],
    read_from: dict[int, str],
    train_path: str,
    fresh: bool,
    collect: Callable[[Iterable[Example]], Sequence[Example]] = list,
) -> Data:
    """The treebank's Data: the splits encoded (counts for a fresh training split only) and
    gathered by `collect` (a list, or records on disk for a streamed treebank), and which
    file each came from in the summary and `info`."""
    splits, files, sizes = {}, {}, []
    for name in SPLITS:
        sentences = parts.get(name, [])
        source = read_from.get(id(sentences), train_path)
        training = fresh and name == "train"
        splits[name] = collect(encoded(sentences, state, source, training=training))
        if sentences:
            files[name] = source
            words = sum(len(s[0]) for s in sentences)
            sizes.append(
                f"{name} {Path(source).name} {len(sentences):,} sentences / {words:,} words"
            )
    return Data(
        state=state,
        splits=splits,
        collate=make_collate(state),
        length=example_length,
        summary=f"conllu ({config.column.upper()}): {', '.join(sizes)}",
        info={"files": files},
    )
