"""Vocabularies and tokenising: symbols to ids and back, text to tokens and back.

A `Vocab` is saved in a model file as a plain list of strings (special symbols first), so a
trained model encodes new input with nothing else at hand. A `Tokenizer` is plain settings
(characters or words, lower-casing, punctuation split off words), saved in the data state as
`tokens`, `lowercase` and `punctuation`, so prediction tokenises exactly as training did.
No torch here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal


class Vocab:
    """A token <-> index table with special symbols first, saved as a plain list of strings."""

    PAD = "<pad>"
    UNK = "<unk>"
    BOS = "<s>"
    EOS = "</s>"

    def __init__(self, tokens: Sequence[str], unk: str | None = UNK):
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")
        self.unk_id = self.index[unk] if unk is not None and unk in self.index else None

    @classmethod
    def build(
        cls,
        sequences: Iterable[Iterable[str]],
        *,
        specials: Sequence[str] = (PAD, UNK),
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Specials first, then tokens by falling frequency (ties by first appearance)."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        return cls.from_counts(counts, specials=specials, min_count=min_count, max_size=max_size)

    @classmethod
    def from_counts(
        cls,
        counts: Counter[str],
        *,
        specials: Sequence[str] = (PAD, UNK),
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """`build` from counts already made (in order of first appearance, as a Counter fed
        the sequences in turn keeps them): a reader that counts several vocabularies in one
        pass over data too large to read twice."""
        ranked = [t for t, c in counts.most_common() if c >= min_count and t not in specials]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(specials))]
        return cls([*specials, *ranked], unk=cls.UNK if cls.UNK in specials else None)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def id(self, token: str) -> int:
        i = self.index.get(token)
        if i is not None:
            return i
        if self.unk_id is None:
            raise KeyError(token)
        return self.unk_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.id(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[i] for i in ids]

    def to_list(self) -> list[str]:
        return list(self.tokens)


# Punctuation split off words in "punctuation" mode, and how it is glued back.
_PUNCT = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…")
_NO_SPACE_AFTER = set("([{¿¡«")


@dataclass(frozen=True)
class Tokenizer:
    """Text to tokens and back: `char` (every character, runs of white space as one space) or
    `word` (split on white space, and punctuation split off words when `punctuation`)."""

    mode: Literal["char", "word"] = "word"
    lowercase: bool = False
    punctuation: bool = False

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tokenizer:
        """The tokeniser a data state records (keys `tokens`, `lowercase`, `punctuation`)."""
        return cls(state["tokens"], bool(state.get("lowercase")), bool(state.get("punctuation")))

    def to_state(self) -> dict[str, Any]:
        return {"tokens": self.mode, "lowercase": self.lowercase, "punctuation": self.punctuation}

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.mode == "char":
            return list(" ".join(text.split()))
        return _PUNCT.findall(text) if self.punctuation else text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Tokens back to text; with split punctuation, marks rejoin the word they followed."""
        if self.mode == "char":
            return "".join(tokens)
        if not self.punctuation:
            return " ".join(tokens)
        out = ""
        for token in tokens:
            if out and not (token in _NO_SPACE_BEFORE or out[-1] in _NO_SPACE_AFTER):
                out += " "
            out += token
        return out
