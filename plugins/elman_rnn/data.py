"""Data for the Elman RNN: generated sine/cosine sequences, symbol-to-symbol pairs, and
character text for a language model."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from zoo.data import Data, Vocab, pad, split_by_fraction
from zoo.errors import DataError

HELLO = [("hello", "ohlol")]


def load_sine_cosine(config: Any, state: dict[str, Any] | None) -> Data:
    """Sequences x_t = sin(phi + t*step), y_t = cos(phi + t*step), phi uniform in [0, 2pi)."""
    rng = random.Random(config.split_seed)
    examples = []
    for _ in range(config.num_sequences):
        phi = rng.uniform(0.0, 2.0 * math.pi)
        ts = [phi + k * config.step for k in range(config.length)]
        examples.append(([[math.sin(t)] for t in ts], [[math.cos(t)] for t in ts]))
    valid_f, test_f = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(
        examples, [1 - valid_f - test_f, valid_f, test_f], config.split_seed
    )
    return Data(
        state=state or {"input_size": 1, "output_size": 1},
        splits={"train": train, "valid": valid, "test": test},
        collate=collate_regression,
        summary=f"sine-cosine: {len(train)}/{len(valid)}/{len(test)} sequences of {config.length} steps",
    )


def collate_regression(
    examples: list[tuple[list[list[float]], list[list[float]]]],
) -> dict[str, torch.Tensor]:
    longest = max(len(x) for x, _ in examples)
    n_in, n_out = len(examples[0][0][0]), len(examples[0][1][0])
    x = torch.zeros(len(examples), longest, n_in)
    y = torch.zeros(len(examples), longest, n_out)
    mask = torch.zeros(len(examples), longest, dtype=torch.bool)
    for i, (xs, ys) in enumerate(examples):
        x[i, : len(xs)] = torch.tensor(xs)
        y[i, : len(ys)] = torch.tensor(ys)
        mask[i, : len(xs)] = True
    return {"x": x, "y": y, "mask": mask, "lengths": mask.sum(1)}


def read_pairs(path: str) -> list[tuple[str, str]]:
    """'input<TAB>target' lines; blank lines skipped; lengths must agree per line.

    The file is decoded whole (not line by line in text mode), so a byte that is not UTF-8 is
    reported with its line and its offset in the file."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})",
            path=path,
            line=raw[: e.start].count(b"\n") + 1,
        ) from None
    pairs = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # as text mode does
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError("expected 'input<TAB>target'", path=path, line=lineno)
        source, target = parts[0], parts[1]
        if len(source) != len(target) or not source:
            raise DataError(
                f"input and target must have the same non-zero length "
                f"({len(source)} vs {len(target)})",
                path=path,
                line=lineno,
            )
        pairs.append((source, target))
    if not pairs:
        raise DataError("no pairs found (empty file?)", path=path)
    return pairs


def load_char_pairs(config: Any, state: dict[str, Any] | None) -> Data:
    """Symbol-per-symbol pairs; vocabularies come from the training pairs (or the saved state)."""
    pairs = read_pairs(config.path) if config.path else list(HELLO)
    valid_f, test_f = config.valid_fraction, config.test_fraction
    train, valid, test = split_by_fraction(
        pairs, [1 - valid_f - test_f, valid_f, test_f], config.split_seed
    )
    if state is None:
        state = {
            "input_vocab": Vocab.build([s for s, _ in train]).to_list(),
            "output_vocab": Vocab.build([t for _, t in train], specials=(Vocab.UNK,)).to_list(),
        }
    inputs, outputs = Vocab(state["input_vocab"]), Vocab(state["output_vocab"])
    encoded = {
        name: [(inputs.encode(s), outputs.encode(t)) for s, t in split]
        for name, split in (("train", train), ("valid", valid), ("test", test))
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


def read_text(path: str, fmt: str = "auto") -> str:
    """The text of a UTF-8 file (`plain`), or the sentences of a CoNLL-U file's `# text = `
    lines joined by newlines (`conllu`; `auto` picks it for *.conllu). Line endings become \\n."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a text file", path=path) from None
    except PermissionError:
        raise DataError("permission denied", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})", path=path, line=line
        ) from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if fmt == "conllu" or (fmt == "auto" and path.lower().endswith(".conllu")):
        found = [m.group(1) for m in map(CONLLU_TEXT.fullmatch, text.split("\n")) if m]
        if not found:
            raise DataError("no '# text = ' sentence lines (is it a CoNLL-U file?)", path=path)
        text = "\n".join(found) + "\n"
    if not text.strip():
        raise DataError("empty text file (no characters to learn from)", path=path)
    return text


def embedded_text() -> str:
    return resources.files(__package__).joinpath("to_be.txt").read_text(encoding="utf-8")


class Stream(Sequence):
    """One split of a text as a 1-D tensor of symbol ids. Its length counts `bptt` windows of
    (input, next character) pairs, which is what the trainer's steps-per-epoch arithmetic uses."""

    def __init__(self, ids: torch.Tensor, bptt: int):
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
        exactly once (the last row is padded: input 0, target -100)."""
        ids = self.ids[offset:]
        pairs = len(ids) - 1
        if pairs <= 0:
            return
        rows = min(rows, pairs)
        length = math.ceil(pairs / rows)
        x = torch.zeros(rows * length, dtype=torch.long)
        y = torch.full((rows * length,), -100, dtype=torch.long)
        x[:pairs], y[:pairs] = ids[:-1], ids[1:]
        x, y = x.view(rows, length), y.view(rows, length)
        for k, start in enumerate(range(0, length, self.bptt)):
            end = start + self.bptt
            yield {"x": x[:, start:end], "y": y[:, start:end], "reset": k == 0}


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
    ) -> Iterator[dict[str, Any]]:
        stream = self.splits.get(split)
        if not stream:
            return
        assert isinstance(stream, Stream)
        offset = 0
        if shuffle and stream.pairs > 1:
            bound = min(stream.bptt, stream.pairs)
            offset = int(torch.randint(0, bound, (1,), generator=generator))
        yield from stream.windows(batch_size, offset)


def cut(text: str, valid_fraction: float, test_fraction: float) -> tuple[str, str, str]:
    """(train, valid, test): contiguous parts, laid out train | test | valid, so that the
    validation text is the end of the file."""
    n_valid = round(len(text) * valid_fraction)
    n_test = round(len(text) * test_fraction)
    n_train = len(text) - n_valid - n_test
    return text[:n_train], text[n_train + n_test :], text[n_train : n_train + n_test]


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
    """A character language-model dataset from a text file (or the embedded soliloquy)."""
    source = config.path or "the embedded text (Hamlet, III.1)"
    text = read_text(config.path, config.format) if config.path else embedded_text()
    valid_f = 0.0 if config.dev_path else config.valid_fraction
    test_f = 0.0 if config.test_path else config.test_fraction
    if valid_f + test_f >= 1.0:
        raise DataError(
            f"valid_fraction + test_fraction = {valid_f + test_f:g} leaves no training text",
            path=config.path,
        )
    train, valid, test = cut(text, valid_f, test_f)
    if config.dev_path:
        valid = read_text(config.dev_path, config.format)
    if config.test_path:
        test = read_text(config.test_path, config.format)
    evaluating = state is not None
    if evaluating:  # a trained model: any text of 2 characters or more can be scored
        check_length("the text", text, config.path)
    else:
        check_length("the training part", train, config.path, True)
        if valid_f > 0 or config.dev_path:
            check_length("the validation part", valid, config.dev_path or config.path, valid_f > 0)
        if test_f > 0 or config.test_path:
            check_length("the test part", test, config.test_path or config.path, test_f > 0)
    if state is None:
        vocab = Vocab.build([train], specials=(Vocab.UNK,), min_count=config.min_count)
        state = {"vocab": vocab.to_list()}
    vocab = Vocab(state["vocab"])
    if evaluating and len(test) < 2:
        test = text  # `zoo eval FILE --data PATH`: score the whole text
    splits = {
        name: Stream(torch.tensor(vocab.encode(part), dtype=torch.long), config.bptt)
        for name, part in (("train", train), ("valid", valid), ("test", test))
    }
    unknown = sum(1 for ch in valid if ch not in vocab) if valid else 0
    return StreamData(
        state=state,
        splits=splits,
        collate=_no_collate,
        summary=(
            f"text: {len(train):,}/{len(valid):,}/{len(test):,} characters from {source}"
            + (f" (validation: {config.dev_path})" if config.dev_path else "")
            + f"; {len(vocab)} symbols"
            + (f"; {unknown} validation character(s) unknown" if unknown else "")
        ),
    )


def _no_collate(examples: Any) -> dict[str, Any]:
    raise TypeError("text streams are batched by StreamData.batches, not collated")
