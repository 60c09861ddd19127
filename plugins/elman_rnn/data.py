"""Data for the Elman RNN: generated sine/cosine sequences, symbol-to-symbol pairs, and
character text for a language model. Files are read by zoo.textfile and split by zoo.splits,
so their errors and held-out parts follow the rules every dataset follows."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.core.errors import DataError
from zoo.toolkit.data import Data, Part, Shard, move, pad
from zoo.toolkit.splits import SPLITS, split
from zoo.toolkit.textfile import TextFile, embedded, read_text
from zoo.toolkit.vocab import Vocab

from . import bigtext

HELLO = [("hello", "ohlol")]


def load_sine_cosine(config: Any, state: dict[str, Any] | None) -> Data:
    """Sequences x_t = sin(phi + t*step), y_t = cos(phi + t*step), phi uniform in [0, 2pi)."""
    rng = random.Random(config.split_seed)
    examples = []
    for _ in range(config.num_sequences):
        phi = rng.uniform(0.0, 2.0 * math.pi)
        ts = [phi + k * config.step for k in range(config.length)]
        examples.append(([[math.sin(t)] for t in ts], [[math.cos(t)] for t in ts]))
    parts = split(examples, config, state=state)
    sizes = "/".join(str(len(parts[name])) for name in ("train", "valid", "test"))
    return Data(
        state=state or {"input_size": 1, "output_size": 1},
        splits=parts,
        collate=collate_regression,
        summary=f"sine-cosine: {sizes} sequences of {config.length} steps",
    )


def collate_regression(
    examples: list[tuple[list[list[float]], list[list[float]]]],
) -> dict[str, torch.Tensor]:
    """Rows of vectors padded to [batch, longest, features]; `mask` marks the real steps."""
    lengths = torch.tensor([len(x) for x, _ in examples])
    x = pad([x for x, _ in examples], 0.0, torch.float32)
    y = pad([y for _, y in examples], 0.0, torch.float32)
    mask = torch.arange(x.shape[1]) < lengths[:, None]
    return {"x": x, "y": y, "mask": mask, "lengths": lengths}


def text_lines(file: TextFile) -> list[str]:
    """The lines as a reader in text mode gives them: '\\r\\n', '\\r' and '\\n' each end one
    (old Mac files end lines with '\\r' alone)."""
    return file.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_pairs(file: TextFile) -> list[tuple[str, str]]:
    """'input<TAB>target' lines; blank lines skipped; lengths must agree per line."""
    pairs = []
    for lineno, line in enumerate(text_lines(file), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise file.error("expected 'input<TAB>target'", lineno)
        source, target = parts[0], parts[1]
        if len(source) != len(target) or not source:
            raise file.error(
                f"input and target must have the same non-zero length "
                f"({len(source)} vs {len(target)})",
                lineno,
            )
        pairs.append((source, target))
    if not pairs:
        raise file.error("no pairs found (empty file?)")
    return pairs


def load_char_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    """Symbol-per-symbol pairs; vocabularies come from the training pairs (or the saved state)."""
    file = read_text(config.path) if config.path else None
    parts = split(
        read_pairs(file) if file else list(HELLO),
        config,
        state=state,
        fingerprint=file.fingerprint if file else None,
        read=lambda path: read_pairs(read_text(path)),
    )
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    if state is None:
        state = {
            "input_vocab": Vocab.build([s for s, _ in train]).to_list(),
            "output_vocab": Vocab.build([t for _, t in train], specials=(Vocab.UNK,)).to_list(),
        }
        if file:
            state["fingerprint"] = file.fingerprint
    inputs, outputs = Vocab(state["input_vocab"]), Vocab(state["output_vocab"])
    encoded = {
        name: [(inputs.encode(s), outputs.encode(t)) for s, t in part]
        for name, part in parts.items()
    }
    return Data(
        state=state,
        splits=encoded,
        collate=collate_symbols,
        summary=f"char-pairs: {len(train)}/{len(valid)}/{len(test)} pairs from {config.path or 'hello -> ohlol'}",
    )


def collate_symbols(examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    x = pad([s for s, _ in examples], 0)
    y = pad([t for _, t in examples], -100)
    return {"x": x, "y": y, "lengths": torch.tensor([len(s) for s, _ in examples])}


# ------------------------------------------------------------------------ character text
# A language model reads a text as one long stream. Training cuts it into `rows` parallel
# streams (one per batch row) and walks them window by window, so that row b of batch k+1
# continues row b of batch k: the model carries its hidden state from one batch to the next
# (detached, so gradients stop at the window's start: truncated back-propagation through time).
# Shuffled examples would break that, so a text split is a `Stream`, batched by `StreamData`.

CONLLU_TEXT = re.compile(r"#\s*text\s*=\s?(.*)")


def text_of(file: TextFile, fmt: str = "auto") -> str:
    """The characters a model learns from: the file as it is (`plain`), or the sentences of a
    CoNLL-U file's `# text = ` lines joined by newlines (`conllu`; `auto` picks it for
    *.conllu). Line endings become \\n (see `text_lines`)."""
    text = "\n".join(text_lines(file))
    if fmt == "conllu" or (fmt == "auto" and file.path.lower().endswith(".conllu")):
        found = [m.group(1) for m in map(CONLLU_TEXT.fullmatch, text.split("\n")) if m]
        if not found:
            raise file.error("no '# text = ' sentence lines (is it a CoNLL-U file?)")
        text = "\n".join(found) + "\n"
    if not text.strip():
        raise file.error("empty text file (no characters to learn from)")
    return text


def id_dtype(symbols: int) -> np.dtype:
    """The smallest unsigned integer type for ids below `symbols` (a byte a character for
    most texts): what a stream holds in memory and on disk."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if symbols <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class Stream(Sequence):
    """One split of a text as a 1-D numpy array of symbol ids (a torch tensor is accepted and
    converted). Its length counts `bptt` windows of (input, next character) pairs, which is
    what the trainer's steps-per-epoch arithmetic uses. The array may be a memory map (zoo's
    prepared-data cache): windows read only the characters they hold."""

    def __init__(self, ids: Any, bptt: int):
        if isinstance(ids, torch.Tensor):
            ids = ids.numpy()
        self.ids, self.bptt = ids, bptt

    def __len__(self) -> int:
        return math.ceil(self.pairs / self.bptt) if self.pairs > 0 else 0

    def __getitem__(self, i: Any) -> Any:
        raise TypeError("a text stream is read window by window through StreamData.batches")

    @property
    def pairs(self) -> int:
        return max(0, len(self.ids) - 1)

    def windows(self, rows: int, offset: int = 0) -> Iterator[dict[str, Any]]:
        """Batches of `rows` contiguous streams, `bptt` characters at a time; `reset` marks
        the first window, where a model starts from a fresh state. Every pair is predicted
        exactly once (the last row is padded: input 0, target -100). Each window gathers its
        own characters, so memory holds one window, not the split."""
        pairs = len(self.ids) - offset - 1
        if pairs <= 0:
            return
        rows = min(rows, pairs)
        length = math.ceil(pairs / rows)
        starts = offset + np.arange(rows, dtype=np.int64)[:, None] * length
        for k, start in enumerate(range(0, length, self.bptt)):
            steps = np.arange(start, min(start + self.bptt, length), dtype=np.int64)[None, :]
            inside = (starts - offset + steps) < pairs
            at = np.where(inside, starts + steps, 0)
            x = np.where(inside, self.ids[at].astype(np.int64), 0)
            y = np.where(inside, self.ids[at + 1].astype(np.int64), -100)
            yield {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "reset": k == 0}


@dataclass
class StreamData(Data):
    """Data whose splits are `Stream`s: batches are windows of contiguous streams, in order.
    Training still varies the windows: each epoch starts the text at a random offset below
    `bptt`, drawn from the trainer's seeded generator."""

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Iterator[dict[str, Any]]:
        stream = self.splits.get(split)
        if not stream:
            return
        assert isinstance(stream, Stream)
        offset = 0
        if shuffle and stream.pairs > 1:
            bound = min(stream.bptt, stream.pairs)
            offset = int(torch.randint(0, bound, (1,), generator=generator))
        for window in stream.windows(batch_size, offset):
            yield window if device is None else move(window, device)

    def shards(
        self,
        split: str,
        batch_size: int,
        part: Part,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[Shard]:
        """On several processes each takes the same rows of every window (its streams), so
        the state it carries continues its own rows. A process left without a row runs the
        first one with no weight."""
        for window in self.batches(split, batch_size, shuffle=shuffle, generator=generator):
            rows = list(range(window["x"].shape[0]))
            mine = list(part.of(rows))
            pick = mine or rows[:1]
            batch = {"x": window["x"][pick], "y": window["y"][pick], "reset": window["reset"]}
            yield Shard(batch, len(mine), len(rows))


def check_length(what: str, part: str, path: str | None, cut_by_fraction: bool = False) -> None:
    """A language model needs at least one (character, next character) pair per split."""
    if len(part) < 2:
        hint = (
            "; use a longer text or change valid_fraction/test_fraction" if cut_by_fraction else ""
        )
        raise DataError(
            f"{what} has {len(part)} character(s); a language model needs at least 2 "
            f"(a character and the next){hint}",
            path=path,
        )


def load_text(config: Any, state: dict[str, Any] | None) -> Data:
    """A character language-model dataset from a text file (or the embedded soliloquy). The
    text is cut in order (train | test | valid), never shuffled: see `Stream`. A large plain text
    is read in chunks, in bounded memory (`load_big_text`)."""
    if bigtext.wanted(config, state):
        return load_big_text(config, state)
    file = read_text(config.path) if config.path else embedded(__package__, "to_be.txt")
    text = text_of(file, config.format if config.path else "plain")
    parts = split(
        text,
        config,
        state=state,
        fingerprint=file.fingerprint,
        read=lambda path: text_of(read_text(path), config.format),
        contiguous=True,
    )
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    if state is not None:  # a trained model: any text of 2 characters or more can be scored
        check_length("the text", text, config.path)
    else:
        valid_f = 0.0 if config.dev_path else config.valid_fraction
        test_f = 0.0 if config.test_path else config.test_fraction
        check_length("the training part", train, config.path, True)
        if valid_f > 0 or config.dev_path:
            check_length("the validation part", valid, config.dev_path or config.path, valid_f > 0)
        if test_f > 0 or config.test_path:
            check_length("the test part", test, config.test_path or config.path, test_f > 0)
        vocab = Vocab.build([train], specials=(Vocab.UNK,), min_count=config.min_count)
        state = {"vocab": vocab.to_list(), "fingerprint": file.fingerprint}
    vocab = Vocab(state["vocab"])
    splits = {
        name: Stream(np.array(vocab.encode(part), dtype=id_dtype(len(vocab))), config.bptt)
        for name, part in parts.items()
    }
    unknown = sum(1 for ch in valid if ch not in vocab) if valid else 0
    source = config.path or "the embedded text (Hamlet, III.1)"
    return StreamData(
        state=state,
        splits=splits,
        collate=_no_collate,
        summary=text_summary(
            config, source, {n: len(p) for n, p in parts.items()}, len(vocab), unknown
        ),
    )


def load_big_text(config: Any, state: dict[str, Any] | None = None) -> Data:
    """`load_text` for a plain text of any size: the same splits, vocabulary, state, summary
    and errors, its ids written to flat files and mapped (`bigtext`). With a trained model's
    `state` (`zoo eval`), its vocabulary, and its file's split: the training file is split
    as in training, any other file scored whole."""
    reader = bigtext.TextChunks(config.path, bigtext.CHUNK)
    total, visible = bigtext.measure(reader)
    if not visible:
        raise DataError("empty text file (no characters to learn from)", path=config.path)
    own_file = state is None or state.get("fingerprint", reader.fingerprint) == reader.fingerprint
    valid_f = 0.0 if config.dev_path else config.valid_fraction
    test_f = 0.0 if config.test_path else config.test_fraction
    if valid_f + test_f > 1 + 1e-9 and own_file:
        split([], config, state=None)  # the one message for fractions above 1
    spans = bigtext.spans(total, valid_f, test_f) if own_file else bigtext.spans(total, 0, 1)
    files = {"valid": config.dev_path, "test": config.test_path} if own_file else {}
    texts = {n: text_of(read_text(p), config.format) for n, p in files.items() if p}
    if state is not None and not len(texts.get("test", spans["test"])):
        spans["test"] = range(total)  # training held nothing out: scored whole (`split`)
        texts.pop("test", None)
    if state is None:
        _check_parts(config, spans, texts, valid_f, test_f)
        vocab = bigtext.vocabulary(reader, len(spans["train"]), config.min_count)
        state = {"vocab": vocab.to_list(), "fingerprint": reader.fingerprint}
    else:
        check_length("the text", range(total), config.path)
        vocab = Vocab(state["vocab"])
    dtype = id_dtype(len(vocab))
    ids = bigtext.write_ids(reader, vocab, {n: spans[n] for n in SPLITS if n not in texts}, dtype)
    for name, text in texts.items():
        ids[name] = np.array(vocab.encode(text), dtype=dtype)
    lengths = {name: len(ids[name]) for name in SPLITS}
    unknown = int(np.count_nonzero(np.asarray(ids["valid"]) == vocab.unk_id))
    return StreamData(
        state=state,
        splits={name: Stream(ids[name], config.bptt) for name in SPLITS},
        collate=_no_collate,
        summary=text_summary(config, config.path, lengths, len(vocab), unknown),
    )


def _check_parts(
    config: Any, spans: dict[str, range], texts: dict[str, Any], valid_f: float, test_f: float
) -> None:
    """Training: each part long enough, as `load_text` checks it."""
    files = {"valid": config.dev_path, "test": config.test_path}
    check_length("the training part", spans["train"], config.path, True)
    for name, fraction, what in (("valid", valid_f, "validation"), ("test", test_f, "test")):
        if fraction > 0 or files[name]:
            part = texts.get(name, spans[name])
            check_length(f"the {what} part", part, files[name] or config.path, fraction > 0)


def text_summary(
    config: Any, source: str, lengths: dict[str, int], symbols: int, unknown: int
) -> str:
    """The line `zoo run` shows for a text."""
    return (
        f"text: {lengths['train']:,}/{lengths['valid']:,}/{lengths['test']:,} characters "
        f"from {source}"
        + (f" (validation: {config.dev_path})" if config.dev_path else "")
        + f"; {symbols} symbols"
        + (f"; {unknown} validation character(s) unknown" if unknown else "")
    )


def _no_collate(examples: Any) -> dict[str, Any]:
    raise TypeError("text streams are batched by StreamData.batches, not collated")
