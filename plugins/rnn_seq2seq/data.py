"""Sequence-pair data: parsing, tokenising, vocabularies and batching for the seq2seq task.

Three datasets share this module:
- `word-pairs`: the built-in English -> Spanish words (or any `source<TAB>target` file);
- `scan`: SCAN's `IN: <command> OUT: <actions>` lines (Lake and Baroni 2018);
- `sentence-pairs`: tab-separated sentence pairs, extra columns ignored (the Tatoeba/Anki
  export: `Go.<TAB>Ve.<TAB>CC-BY 2.0 (France) Attribution: ...`).

Files are read by `zoo.textfile` (a bad byte or a NUL names its line and column), tokenised
by `zoo.vocab.Tokenizer` and split by `zoo.splits.split`. A training file larger than
`zoo.toolkit.records.stream_above()` (64 MiB; `ZOO_STREAM_ABOVE`) is read line by line and its
pairs, splits and encoded examples written to records on disk, not lists: the same results
in bounded memory (docs/data.md). The saved state is
{"source": [...], "target": [...], "tokens": "char"|"word", "max_target_length": int,
"fingerprint": str} plus, where they apply, "lowercase", "punctuation" (split punctuation off
words) and "bleu" (score outputs with corpus BLEU). Targets are framed as <s> y_1 .. y_n </s>.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from zoo.core.errors import DataError
from zoo.toolkit.data import SPLITS, Data, lengths, pad
from zoo.toolkit.records import Records, is_large, spill
from zoo.toolkit.splits import split
from zoo.toolkit.textfile import Lines, TextFile, embedded, read_text
from zoo.toolkit.vocab import Tokenizer, Vocab

Rows = list[tuple[int, str, str]]  # (line, source text, target text)
Pair = tuple[list[str], list[str], str]  # source tokens, target tokens, reference text
Example = tuple[np.ndarray, np.ndarray, str]  # source ids, <s> target ids </s>, reference
SPECIALS = (Vocab.PAD, Vocab.UNK, Vocab.BOS, Vocab.EOS)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


# --------------------------------------------------------------------------------- parsing
def scan_row(line: str) -> tuple[str, str] | None:
    """(command, actions) of an `IN: <command> OUT: <actions>` line, None for a blank one; a
    ValueError says what is wrong."""
    if not line.strip():
        return None
    head, sep, actions = line.strip().partition(" OUT:")
    if not head.startswith("IN:") or not sep:
        raise ValueError("expected 'IN: <command> OUT: <actions>'")
    command, actions = head[3:].strip(), actions.strip()
    if not command.split() or not actions.split():
        raise ValueError("empty command or action sequence")
    return command, actions


def tsv_row(line: str) -> tuple[str, str] | None:
    """(source, target) of a `source<TAB>target[<TAB>ignored...]` line, None for a blank one."""
    if not line.strip():
        return None
    parts = line.split("\t")
    if len(parts) < 2 or not parts[0].split() or not parts[1].split():
        raise ValueError("expected 'source<TAB>target'")
    return parts[0].strip(), parts[1].strip()


Row = Callable[[str], "tuple[str, str] | None"]


def rows(lines: Iterable[tuple[int, str]], row: Row, path: str) -> Iterator[tuple[int, str, str]]:
    """(line, source, target) of numbered lines; a bad line is a DataError naming it."""
    for lineno, line in lines:
        try:
            found = row(line)
        except ValueError as e:
            raise DataError(str(e), path=path, line=lineno) from None
        if found is not None:
            yield lineno, *found


def parse_scan(file: TextFile) -> Rows:
    """(line, command, actions) of each `IN: <command> OUT: <actions>` line; blank lines skipped."""
    return list(rows(file.numbered(), scan_row, file.path))


def parse_tsv(file: TextFile) -> Rows:
    """(line, source, target) of each `source<TAB>target[<TAB>ignored...]` line."""
    return list(rows(file.numbered(), tsv_row, file.path))


ROW_OF = {parse_scan: scan_row, parse_tsv: tsv_row}  # how a streamed file is parsed


def read_pairs(
    file: TextFile, parse: Callable[[TextFile], Rows], tokenizer: Tokenizer, what: str
) -> list[Pair]:
    """The file's pairs, tokenised; the reference text is lower-cased with the tokens."""
    found = parse(file)
    if not found:
        raise file.error(f"no {what} found (empty file?)")
    return [tokenised(r, tokenizer, file.path) for r in found]


def tokenised(found: tuple[int, str, str], tokenizer: Tokenizer, path: str) -> Pair:
    lineno, source, target = found
    source_tokens, target_tokens = tokenizer(source), tokenizer(target)
    if not source_tokens or not target_tokens:
        raise DataError("a side has no tokens after tokenising", path=path, line=lineno)
    reference = target.lower() if tokenizer.lowercase else target
    return source_tokens, target_tokens, reference


def stream_pairs(
    path: str, parse: Callable[[TextFile], Rows], tokenizer: Tokenizer, what: str
) -> tuple[Records, str]:
    """(the pairs, the file's fingerprint) of a file larger than memory, read line by line
    and written to temporary records (zoo.toolkit.records) as they are tokenised: the pairs
    of `read_pairs` and its errors, in its order (a bad byte anywhere, then a malformed line,
    then a side without tokens), in bounded memory."""
    lines, late = Lines(path), []

    def pairs() -> Iterator[Pair]:
        found = rows(lines, ROW_OF[parse], path)
        for row in found:
            try:
                yield tokenised(row, tokenizer, path)
            except DataError as e:  # read_pairs parses every line before it tokenises
                late.append(e)
                break
        for _ in found:  # after a tokenising error: a malformed line later comes first
            pass

    try:
        records = spill(pairs())
    except DataError as e:
        lines.fail(e)
    if late:
        raise late[0]
    if not len(records):
        raise DataError(f"no {what} found (empty file?)", path=path)
    assert lines.fingerprint is not None  # a whole pass was made
    return records, lines.fingerprint


# ---------------------------------------------------------------------------- vocabularies
def make_state(
    train: Iterable[Pair],
    tokens: str,
    *,
    vocab_size: int = 0,
    min_count: int = 1,
    shared_vocab: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Vocabularies from the training pairs only, counted in one pass (a streamed file's pairs
    are read once); `extra` keys (tokeniser flags) are kept."""
    limits = {"min_count": min_count, "max_size": vocab_size or None}
    sources: Counter[str] = Counter()
    targets: Counter[str] = Counter()
    longest = 0
    for s, t, _ in train:
        sources.update(s)
        targets.update(t)
        longest = max(longest, len(t))
    if shared_vocab:  # counted as the sources followed by the targets
        both = Counter(sources)
        both.update(targets)
        source = target = Vocab.from_counts(both, specials=SPECIALS, **limits).to_list()
    else:
        source = Vocab.from_counts(sources, specials=SPECIALS, **limits).to_list()
        target = Vocab.from_counts(targets, specials=SPECIALS, **limits).to_list()
    return {
        "source": source,
        "target": target,
        "tokens": tokens,
        "max_target_length": longest,
        **extra,
    }


def encode(pairs: Iterable[Pair], state: dict[str, Any]) -> list[Example]:
    return list(encoded(pairs, state))


def encoded(pairs: Iterable[Pair], state: dict[str, Any]) -> Iterator[Example]:
    """`encode`, one example at a time (a split written to disk as it is encoded)."""
    src, tgt = Vocab(state["source"]), Vocab(state["target"])
    for s, t, text in pairs:
        yield (
            np.array(src.encode(s), dtype=np.int64),
            np.array([BOS_ID, *tgt.encode(t), EOS_ID], dtype=np.int64),
            text,
        )


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
Collect = Callable[[Iterable[Pair]], Sequence[Pair]]  # list, or `spill` for a streamed file


def _within_limits(pairs: Sequence[Pair], config: Any, collect: Collect) -> Sequence[Pair]:
    """The training pairs within the configured maximum lengths (0: no limit)."""
    ms = getattr(config, "max_source_length", 0)
    mt = getattr(config, "max_target_length", 0)
    return collect(p for p in pairs if (not ms or len(p[0]) <= ms) and (not mt or len(p[1]) <= mt))


def _concatenated(
    pairs: Sequence[Pair], share: float, seed: int, mode: str, collect: Collect
) -> Sequence[Pair]:
    """Extra training pairs, each two random training pairs joined source to source and target
    to target (Nguyen et al. 2021, "Data augmentation by concatenation"): outputs longer than
    any in the data, so the decoder learns that length alone is no reason to stop."""
    rng = random.Random(seed)
    glue = [" "] if mode == "char" else []

    def extra() -> Iterator[Pair]:
        for _ in range(round(share * len(pairs))):
            i, j = rng.randrange(len(pairs)), rng.randrange(len(pairs))
            (s1, t1, text1), (s2, t2, text2) = pairs[i], pairs[j]
            yield ([*s1, *glue, *s2], [*t1, *glue, *t2], f"{text1} {text2}")

    return collect(itertools.chain(pairs, extra()))


def hold_out_long_targets(
    parts: dict[str, Any], config: Any, collect: Collect = list
) -> dict[str, Any]:
    """`valid_min_target_length` L: training pairs with at least L target tokens join the
    validation split. A random validation split of SCAN's length split is scored near 100% by
    every model; this one asks for outputs longer than any trained on, as the test does, so
    choosing settings and keeping the best weights by it rewards length generalisation while
    using the training file alone."""
    limit = getattr(config, "valid_min_target_length", 0)
    if not limit:
        return parts
    train = parts["train"]
    longer = (p for p in train if len(p[1]) >= limit)
    kept = collect(p for p in train if len(p[1]) < limit)
    return {**parts, "train": kept, "valid": collect(itertools.chain(parts["valid"], longer))}


def training_pairs(
    pairs: Sequence[Pair], config: Any, where: str, collect: Collect = list
) -> Sequence[Pair]:
    """The training split as trained on: pairs beyond the maximum lengths dropped, joined
    pairs added (`concat_pairs`)."""
    pairs = _within_limits(pairs, config, collect)
    if not len(pairs):
        raise DataError(
            "no training pairs left after valid_fraction, test_fraction, "
            "valid_min_target_length and the maximum lengths",
            path=where,
        )
    if getattr(config, "concat_pairs", 0.0):
        mode = getattr(config, "tokens", "word")
        pairs = _concatenated(pairs, config.concat_pairs, config.split_seed, mode, collect)
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
    where = config.path or "built-in data"
    tokenizer = Tokenizer.from_state(
        state or {"tokens": getattr(config, "tokens", "word"), **flags}
    )
    streamed = is_large(config.path) and parse in ROW_OF  # to train on, or to score (`state`)

    def read(path: str) -> Sequence[Pair]:
        if streamed and is_large(path):
            return stream_pairs(path, parse, tokenizer, what)[0]
        return read_pairs(read_text(path), parse, tokenizer, what)

    if streamed:  # a file larger than memory: pairs on disk, read line by line
        pairs, stamp = stream_pairs(config.path, parse, tokenizer, what)
    else:
        file = read_text(config.path) if config.path is not None else embedded(__package__, builtin)
        pairs, stamp = read_pairs(file, parse, tokenizer, what), file.fingerprint
    collect: Collect = spill if streamed else list
    parts = split(pairs, config, state=state, fingerprint=stamp, read=read)
    if state is None:
        parts, state = _for_training(parts, config, where, collect, stamp, flags)
    if streamed:  # each split written as encoded, its lengths beside it
        splits = {s: spill(encoded(parts[s], state), target_length) for s in SPLITS}
    else:
        splits = {s: encode(parts[s], state) for s in SPLITS}
    sizes = "/".join(str(len(splits[s])) for s in SPLITS)
    return Data(
        state=state,
        splits=splits,
        collate=collate,
        length=target_length,
        summary=f"{name}: {sizes} train/valid/test pairs from {where}",
    )


def _for_training(
    parts: dict[str, Any],
    config: Any,
    where: str,
    collect: Collect,
    stamp: str,
    flags: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The splits of a training run, too-long pairs held out or dropped, and the state (the
    vocabularies) built from its training pairs alone."""
    parts = hold_out_long_targets(parts, config, collect)
    parts["train"] = training_pairs(parts["train"], config, where, collect)
    state = make_state(
        parts["train"],
        getattr(config, "tokens", "word"),
        vocab_size=getattr(config, "vocab_size", 0),
        min_count=getattr(config, "min_count", 1),
        shared_vocab=getattr(config, "shared_vocab", False),
        fingerprint=stamp,
        **flags,
    )
    return parts, state


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
