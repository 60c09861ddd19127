"""Sequence-pair data: readers, tokenising, vocabularies and batching for the seq2seq task.

Three datasets share this module:
- `word-pairs`: the built-in English -> Spanish words (or any `source<TAB>target` file);
- `scan`: SCAN's `IN: <command> OUT: <actions>` lines (Lake and Baroni 2018);
- `sentence-pairs`: tab-separated sentence pairs, extra columns ignored (the Tatoeba/Anki
  export: `Go.<TAB>Ve.<TAB>CC-BY 2.0 (France) Attribution: ...`).

The saved state is {"source": [...], "target": [...], "tokens": "char"|"word",
"max_target_length": int} plus, where they apply, "lowercase", "punctuation" (split
punctuation off words) and "bleu" (score outputs with corpus BLEU). Targets are framed as
<s> y_1 .. y_n </s>. Every reader reports a bad file as one DataError naming file and line.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import numpy as np
import torch

from zoo.data import Data, Vocab, split_by_fraction
from zoo.errors import DataError

Pair = tuple[list[str], list[str]]
Example = tuple[np.ndarray, np.ndarray, str]  # source ids, <s> target ids </s>, target text
SPECIALS = (Vocab.PAD, Vocab.UNK, Vocab.BOS, Vocab.EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)

# Punctuation split off words in "punctuation" mode, and how it is glued back.
_PUNCT = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…")
_NO_SPACE_AFTER = set("([{¿¡«")


# ------------------------------------------------------------------------------ tokenising
def tokenize(
    text: str, mode: str, *, lowercase: bool = False, punctuation: bool = False
) -> list[str]:
    """Characters, or words split on white space (and punctuation, when asked)."""
    if lowercase:
        text = text.lower()
    if mode == "char":
        return list(" ".join(text.split()))
    return _PUNCT.findall(text) if punctuation else text.split()


def detokenize(tokens: list[str], mode: str, *, punctuation: bool = False) -> str:
    """Tokens back to text; with split punctuation, marks rejoin the word they followed."""
    if mode == "char":
        return "".join(tokens)
    if not punctuation:
        return " ".join(tokens)
    out = ""
    for token in tokens:
        if out and not (token in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER):
            out += " "
        out += token
    return out


def state_tokenizer(state: dict[str, Any]) -> Callable[[str], list[str]]:
    """The tokeniser a trained model's state asks for (older files: plain char/word)."""
    mode = state["tokens"]
    lowercase, punctuation = bool(state.get("lowercase")), bool(state.get("punctuation"))
    return lambda text: tokenize(text, mode, lowercase=lowercase, punctuation=punctuation)


def state_detokenizer(state: dict[str, Any]) -> Callable[[list[str]], str]:
    mode, punctuation = state["tokens"], bool(state.get("punctuation"))
    return lambda tokens: detokenize(tokens, mode, punctuation=punctuation)


# --------------------------------------------------------------------------------- reading
def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def text_lines(data: bytes, path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of UTF-8 bytes; a bad byte names its line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"not UTF-8 text ({e.reason} at byte {e.start + 1} of the line)",
                path=path,
                line=lineno,
            ) from None
        if "\x00" in text:
            raise DataError("contains a NUL byte: not a text file", path=path, line=lineno)
        yield lineno, text.rstrip("\r")


def parse_scan(lines: Iterator[tuple[int, str]], path: str) -> list[tuple[int, str, str]]:
    """(line, command, actions) of each `IN: <command> OUT: <actions>` line; blank lines skipped."""
    out = []
    for lineno, line in lines:
        if not line.strip():
            continue
        head, sep, actions = line.strip().partition(" OUT:")
        if not head.startswith("IN:") or not sep:
            raise DataError("expected 'IN: <command> OUT: <actions>'", path=path, line=lineno)
        command, actions = head[3:].strip(), actions.strip()
        if not command.split() or not actions.split():
            raise DataError("empty command or action sequence", path=path, line=lineno)
        out.append((lineno, command, actions))
    return out


def parse_tsv(lines: Iterator[tuple[int, str]], path: str) -> list[tuple[int, str, str]]:
    """(line, source, target) of each `source<TAB>target[<TAB>ignored...]` line."""
    out = []
    for lineno, line in lines:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].split() or not parts[1].split():
            raise DataError("expected 'source<TAB>target'", path=path, line=lineno)
        out.append((lineno, parts[0].strip(), parts[1].strip()))
    return out


# ---------------------------------------------------------------------------- vocabularies
def make_state(
    train: list[Pair],
    tokens: str,
    *,
    vocab_size: int = 0,
    min_count: int = 1,
    shared_vocab: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Vocabularies from the training pairs only; `extra` keys (tokeniser flags) are kept."""
    limits = {"min_count": min_count, "max_size": vocab_size or None}
    sources, targets = [s for s, _ in train], [t for _, t in train]
    if shared_vocab:
        source = target = Vocab.build(sources + targets, specials=SPECIALS, **limits).to_list()
    else:
        source = Vocab.build(sources, specials=SPECIALS, **limits).to_list()
        target = Vocab.build(targets, specials=SPECIALS, **limits).to_list()
    return {
        "source": source,
        "target": target,
        "tokens": tokens,
        "max_target_length": max(len(t) for t in targets),
        **extra,
    }


def encode(pairs: list[Pair], texts: list[str], state: dict[str, Any]) -> list[Example]:
    src, tgt = Vocab(state["source"]), Vocab(state["target"])
    return [
        (
            np.array(src.encode(s), dtype=np.int64),
            np.array([BOS_ID, *tgt.encode(t), EOS_ID], dtype=np.int64),
            text,
        )
        for (s, t), text in zip(pairs, texts)
    ]


def collate(examples: list[Example]) -> dict[str, Any]:
    """Padded batch; `references` carries the target texts for corpus BLEU.

    Examples hold numpy arrays and the batch is filled in numpy: several times faster than
    building tensors example by example, which matters when a training step takes 30 ms.
    """
    batch = len(examples)
    src_len = [len(s) for s, _, _ in examples]
    tgt_len = [len(t) - 1 for _, t, _ in examples]
    src = np.full((batch, max(src_len)), PAD_ID, dtype=np.int64)
    tgt_in = np.full((batch, max(tgt_len)), PAD_ID, dtype=np.int64)
    tgt_out = np.full((batch, max(tgt_len)), -100, dtype=np.int64)
    for i, (s, t, _) in enumerate(examples):
        src[i, : src_len[i]] = s
        tgt_in[i, : tgt_len[i]] = t[:-1]
        tgt_out[i, : tgt_len[i]] = t[1:]
    return {
        "src": torch.from_numpy(src),
        "src_lengths": torch.tensor(src_len),
        "tgt_in": torch.from_numpy(tgt_in),
        "tgt_out": torch.from_numpy(tgt_out),
        "references": [text for _, _, text in examples],
    }


# -------------------------------------------------------------------------------- loaders
Rows = list[tuple[int, str, str]]
Parser = Callable[[Iterator[tuple[int, str]], str], Rows]


def fingerprint(data: bytes) -> str:
    """Identifies the training file, so evaluating on it reproduces its held-out splits."""
    return hashlib.sha256(data).hexdigest()[:16]


def _rows(data: bytes, path: str, parse: Parser, what: str) -> Rows:
    rows = parse(text_lines(data, path), path)
    if not rows:
        raise DataError(f"no {what} found (empty file?)", path=path)
    return rows


def _tokenized(rows: Rows, tokenizer: Callable[[str], list[str]], path: str) -> list[Pair]:
    pairs = []
    for lineno, source, target in rows:
        pair = (tokenizer(source), tokenizer(target))
        if not pair[0] or not pair[1]:
            raise DataError("a side has no tokens after tokenising", path=path, line=lineno)
        pairs.append(pair)
    return pairs


def _within_limits(rows: Rows, pairs: list[Pair], config: Any) -> tuple[Rows, list[Pair]]:
    """The training pairs within the configured maximum lengths (0: no limit)."""
    ms = getattr(config, "max_source_length", 0)
    mt = getattr(config, "max_target_length", 0)
    keep = [
        i for i, (s, t) in enumerate(pairs) if (not ms or len(s) <= ms) and (not mt or len(t) <= mt)
    ]
    return [rows[i] for i in keep], [pairs[i] for i in keep]


def _concatenated(
    rows: Rows, pairs: list[Pair], share: float, seed: int, mode: str
) -> tuple[Rows, list[Pair]]:
    """Extra training pairs, each two random training pairs joined source to source and target
    to target (Nguyen et al. 2021, "Data augmentation by concatenation"): outputs longer than
    any in the data, so the decoder learns that length alone is no reason to stop."""
    rng = random.Random(seed)
    glue = [" "] if mode == "char" else []
    extra_rows, extra_pairs = [], []
    for _ in range(round(share * len(pairs))):
        i, j = rng.randrange(len(pairs)), rng.randrange(len(pairs))
        (s1, t1), (s2, t2) = pairs[i], pairs[j]
        extra_pairs.append(([*s1, *glue, *s2], [*t1, *glue, *t2]))
        extra_rows.append((0, f"{rows[i][1]} {rows[j][1]}", f"{rows[i][2]} {rows[j][2]}"))
    return rows + extra_rows, pairs + extra_pairs


def load_pairs(
    config: Any,
    state: dict[str, Any] | None,
    *,
    name: str,
    parse: Parser,
    what: str,
    flags: dict[str, Any],
    builtin: bytes | None = None,
) -> Data:
    """The loader the three datasets share: read, tokenise, split, build or reuse the state.

    Training (`state` None): the main file is cut by `valid_fraction`/`test_fraction`, unless
    `dev_path`/`test_path` give those splits as files; training pairs beyond the maximum
    lengths are dropped; vocabularies come from the training pairs alone.
    Evaluating (`state` given): on the training file itself the splits are reproduced (and
    the whole file is the test split when training held nothing out); any other file is read
    whole into the test split, with the model's own tokeniser and vocabularies.
    """
    path = config.path
    if path is None and builtin is None:
        raise DataError(f"dataset {name!r} reads a file: give --data PATH")
    where = path or "built-in data"
    data = read_bytes(path) if path is not None else builtin
    assert data is not None
    rows = _rows(data, where, parse, what)
    stamp = fingerprint(data)
    tokenizer = state_tokenizer(state or {"tokens": getattr(config, "tokens", "word"), **flags})

    split_rows: dict[str, Rows] = {"train": [], "valid": [], "test": []}
    sources = {"train": where, "valid": where, "test": where}
    if state is not None and state.get("fingerprint", stamp) != stamp:
        split_rows["test"] = rows
    else:
        files = {
            "valid": getattr(config, "dev_path", None),
            "test": getattr(config, "test_path", None),
        }
        v = 0.0 if files["valid"] else getattr(config, "valid_fraction", 0.0)
        t = 0.0 if files["test"] else getattr(config, "test_fraction", 0.0)
        parts = split_by_fraction(rows, [1 - v - t, v, t], config.split_seed)
        split_rows = dict(zip(("train", "valid", "test"), parts))
        for split, other in files.items():
            if other:
                split_rows[split] = _rows(read_bytes(other), other, parse, what)
                sources[split] = other
        if state is not None and not split_rows["test"]:
            split_rows["test"] = rows  # nothing was held out: evaluate on the whole file
    split_pairs = {s: _tokenized(r, tokenizer, sources[s]) for s, r in split_rows.items()}

    if state is None:
        split_rows["train"], split_pairs["train"] = _within_limits(
            split_rows["train"], split_pairs["train"], config
        )
        if not split_pairs["train"]:
            raise DataError(
                "no training pairs left after valid_fraction, test_fraction and the maximum "
                "lengths",
                path=where,
            )
        if getattr(config, "concat_pairs", 0.0):
            split_rows["train"], split_pairs["train"] = _concatenated(
                split_rows["train"],
                split_pairs["train"],
                config.concat_pairs,
                config.split_seed,
                getattr(config, "tokens", "word"),
            )
        state = make_state(
            split_pairs["train"],
            getattr(config, "tokens", "word"),
            vocab_size=getattr(config, "vocab_size", 0),
            min_count=getattr(config, "min_count", 1),
            shared_vocab=getattr(config, "shared_vocab", False),
            fingerprint=stamp,
            **flags,
        )
    lower = bool(state.get("lowercase"))
    splits = {
        s: encode(split_pairs[s], [r[2].lower() if lower else r[2] for r in split_rows[s]], state)
        for s in ("train", "valid", "test")
    }
    sizes = "/".join(str(len(splits[s])) for s in ("train", "valid", "test"))
    return Data(
        state=state,
        splits=splits,
        collate=collate,
        length=lambda ex: len(ex[1]),
        summary=f"{name}: {sizes} train/valid/test pairs from {where}",
    )


def load_word_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    builtin = resources.files(__package__).joinpath("word_pairs.tsv").read_bytes()
    return load_pairs(
        config, state, name="word-pairs", parse=parse_tsv, what="pairs", flags={}, builtin=builtin
    )


def load_scan(config: Any, state: dict[str, Any] | None) -> Data:
    return load_pairs(config, state, name="scan", parse=parse_scan, what="SCAN lines", flags={})


def load_sentence_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    flags = {
        "lowercase": config.lowercase,
        "punctuation": config.split_punctuation and config.tokens == "word",
        "bleu": True,
    }
    return load_pairs(
        config, state, name="sentence-pairs", parse=parse_tsv, what="pairs", flags=flags
    )
