"""Sequence-pair data: parsing, tokenising, vocabularies and batching for the seq2seq task.

Three datasets share this module:
- `word-pairs`: the built-in English -> Spanish words (or any `source<TAB>target` file);
- `scan`: SCAN's `IN: <command> OUT: <actions>` lines (Lake and Baroni 2018);
- `sentence-pairs`: tab-separated sentence pairs, extra columns ignored (the Tatoeba/Anki
  export: `Go.<TAB>Ve.<TAB>CC-BY 2.0 (France) Attribution: ...`).

Files are read by `zoo.textfile` (a bad byte or a NUL names its line and column), tokenised
by `zoo.vocab.Tokenizer` and split by `zoo.splits.split`. The saved state is
{"source": [...], "target": [...], "tokens": "char"|"word", "max_target_length": int,
"fingerprint": str} plus, where they apply, "lowercase", "punctuation" (split punctuation off
words) and "bleu" (score outputs with corpus BLEU). Targets are framed as <s> y_1 .. y_n </s>.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from zoo.core.errors import DataError
from zoo.toolkit.data import SPLITS, Data, lengths, pad
from zoo.toolkit.splits import split
from zoo.toolkit.textfile import TextFile, embedded, read_text
from zoo.toolkit.vocab import Tokenizer, Vocab

Rows = list[tuple[int, str, str]]  # (line, source text, target text)
Pair = tuple[list[str], list[str], str]  # source tokens, target tokens, reference text
Example = tuple[np.ndarray, np.ndarray, str]  # source ids, <s> target ids </s>, reference
SPECIALS = (Vocab.PAD, Vocab.UNK, Vocab.BOS, Vocab.EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


# --------------------------------------------------------------------------------- parsing
def parse_scan(file: TextFile) -> Rows:
    """(line, command, actions) of each `IN: <command> OUT: <actions>` line; blank lines skipped."""
    out = []
    for lineno, line in file.numbered():
        if not line.strip():
            continue
        head, sep, actions = line.strip().partition(" OUT:")
        if not head.startswith("IN:") or not sep:
            raise file.error("expected 'IN: <command> OUT: <actions>'", lineno)
        command, actions = head[3:].strip(), actions.strip()
        if not command.split() or not actions.split():
            raise file.error("empty command or action sequence", lineno)
        out.append((lineno, command, actions))
    return out


def parse_tsv(file: TextFile) -> Rows:
    """(line, source, target) of each `source<TAB>target[<TAB>ignored...]` line."""
    out = []
    for lineno, line in file.numbered():
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].split() or not parts[1].split():
            raise file.error("expected 'source<TAB>target'", lineno)
        out.append((lineno, parts[0].strip(), parts[1].strip()))
    return out


def read_pairs(
    file: TextFile, parse: Callable[[TextFile], Rows], tokenizer: Tokenizer, what: str
) -> list[Pair]:
    """The file's pairs, tokenised; the reference text is lower-cased with the tokens."""
    rows = parse(file)
    if not rows:
        raise file.error(f"no {what} found (empty file?)")
    pairs = []
    for lineno, source, target in rows:
        source_tokens, target_tokens = tokenizer(source), tokenizer(target)
        if not source_tokens or not target_tokens:
            raise file.error("a side has no tokens after tokenising", lineno)
        reference = target.lower() if tokenizer.lowercase else target
        pairs.append((source_tokens, target_tokens, reference))
    return pairs


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
    sources, targets = [s for s, _, _ in train], [t for _, t, _ in train]
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


def encode(pairs: list[Pair], state: dict[str, Any]) -> list[Example]:
    src, tgt = Vocab(state["source"]), Vocab(state["target"])
    return [
        (
            np.array(src.encode(s), dtype=np.int64),
            np.array([BOS_ID, *tgt.encode(t), EOS_ID], dtype=np.int64),
            text,
        )
        for s, t, text in pairs
    ]


def target_length(example: Example) -> int:
    """An example's length for batching: its target's (a function, so the cache stores it)."""
    return len(example[1])


def collate(examples: list[Example]) -> dict[str, Any]:
    """Padded batch: the target fed to the decoder (<s> y_1 .. y_n) and the one it should
    write (y_1 .. y_n </s>, -100 on padding); `references` carries the target texts for
    corpus BLEU."""
    sources = [s for s, _, _ in examples]
    return {
        "src": pad(sources, PAD_ID),
        "src_lengths": lengths(sources),
        "tgt_in": pad([t[:-1] for _, t, _ in examples], PAD_ID),
        "tgt_out": pad([t[1:] for _, t, _ in examples], -100),
        "references": [text for _, _, text in examples],
    }


# ------------------------------------------------------------------------ training pairs
def _within_limits(pairs: list[Pair], config: Any) -> list[Pair]:
    """The training pairs within the configured maximum lengths (0: no limit)."""
    ms = getattr(config, "max_source_length", 0)
    mt = getattr(config, "max_target_length", 0)
    return [p for p in pairs if (not ms or len(p[0]) <= ms) and (not mt or len(p[1]) <= mt)]


def _concatenated(pairs: list[Pair], share: float, seed: int, mode: str) -> list[Pair]:
    """Extra training pairs, each two random training pairs joined source to source and target
    to target (Nguyen et al. 2021, "Data augmentation by concatenation"): outputs longer than
    any in the data, so the decoder learns that length alone is no reason to stop."""
    rng = random.Random(seed)
    glue = [" "] if mode == "char" else []
    extra = []
    for _ in range(round(share * len(pairs))):
        i, j = rng.randrange(len(pairs)), rng.randrange(len(pairs))
        (s1, t1, text1), (s2, t2, text2) = pairs[i], pairs[j]
        extra.append(([*s1, *glue, *s2], [*t1, *glue, *t2], f"{text1} {text2}"))
    return pairs + extra


def hold_out_long_targets(parts: dict[str, Any], config: Any) -> dict[str, Any]:
    """`valid_min_target_length` L: training pairs with at least L target tokens join the
    validation split. A random validation split of SCAN's length split is scored near 100% by
    every model; this one asks for outputs longer than any trained on, as the test does, so
    choosing settings and keeping the best weights by it rewards length generalisation while
    using the training file alone."""
    limit = getattr(config, "valid_min_target_length", 0)
    if not limit:
        return parts
    train = list(parts["train"])
    longer = [p for p in train if len(p[1]) >= limit]
    kept = [p for p in train if len(p[1]) < limit]
    return {**parts, "train": kept, "valid": [*parts["valid"], *longer]}


def training_pairs(pairs: list[Pair], config: Any, where: str) -> list[Pair]:
    """The training split as trained on: pairs beyond the maximum lengths dropped, joined
    pairs added (`concat_pairs`)."""
    pairs = _within_limits(pairs, config)
    if not pairs:
        raise DataError(
            "no training pairs left after valid_fraction, test_fraction, "
            "valid_min_target_length and the maximum lengths",
            path=where,
        )
    if getattr(config, "concat_pairs", 0.0):
        mode = getattr(config, "tokens", "word")
        pairs = _concatenated(pairs, config.concat_pairs, config.split_seed, mode)
    return pairs


# -------------------------------------------------------------------------------- loaders
def load_pairs(
    config: Any,
    state: dict[str, Any] | None,
    *,
    name: str,
    parse: Callable[[TextFile], Rows],
    what: str,
    flags: dict[str, Any],
    builtin: str | None = None,
) -> Data:
    """The loader the three datasets share: read, tokenise, split, build or reuse the state.

    Training (`state` None): the file is cut by `valid_fraction`/`test_fraction`, unless
    `dev_path`/`test_path` give those splits as files; training pairs beyond the maximum
    lengths are dropped; vocabularies come from the training pairs alone. Evaluating: the
    training file gives its held-out split again, any other file is all test split, read
    with the model's own tokeniser and vocabularies (`zoo.splits.split`).
    """
    if config.path is None and builtin is None:
        raise DataError(f"dataset {name!r} reads a file: give --data PATH")
    file = read_text(config.path) if config.path is not None else embedded(__package__, builtin)
    where = config.path or "built-in data"
    tokenizer = Tokenizer.from_state(
        state or {"tokens": getattr(config, "tokens", "word"), **flags}
    )
    pairs = read_pairs(file, parse, tokenizer, what)

    def read(path: str) -> list[Pair]:
        return read_pairs(read_text(path), parse, tokenizer, what)

    parts = split(pairs, config, state=state, fingerprint=file.fingerprint, read=read)
    if state is None:
        parts = hold_out_long_targets(parts, config)
        parts["train"] = training_pairs(list(parts["train"]), config, where)
        state = make_state(
            parts["train"],
            getattr(config, "tokens", "word"),
            vocab_size=getattr(config, "vocab_size", 0),
            min_count=getattr(config, "min_count", 1),
            shared_vocab=getattr(config, "shared_vocab", False),
            fingerprint=file.fingerprint,
            **flags,
        )
    splits = {s: encode(list(parts[s]), state) for s in SPLITS}
    sizes = "/".join(str(len(splits[s])) for s in SPLITS)
    return Data(
        state=state,
        splits=splits,
        collate=collate,
        length=target_length,
        summary=f"{name}: {sizes} train/valid/test pairs from {where}",
    )


def load_word_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    return load_pairs(
        config,
        state,
        name="word-pairs",
        parse=parse_tsv,
        what="pairs",
        flags={},
        builtin="word_pairs.tsv",
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
