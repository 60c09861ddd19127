"""Recipe `tagger` (lstm-tagger): sentences in, one tag per word out.

As zoo's tagger: words split on white space, lower-cased when the model was trained so, looked
up in the word vocabulary (`<unk>` for unseen words); each distinct form of a batch spelt in
characters between begin/end-of-word symbols, long forms clipped to their first and last
characters; batches of similar length; the tag with the highest score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import INT64, Model, Option, UsageError, Vocab, map_in_length_order, pad
from .onnxfile import ModelError


class Tagger(Model):
    kind = "tagger"
    input_unit = "words"
    options = {"batch_size": Option(256, 1, 1_000_000)}  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.words = Vocab(self.state.strings("words"))
        self.tags = self.state.strings("tags")
        self.lowercase = self.state.boolean("lowercase")
        self.chars: Vocab | None = None
        if "chars" in self.graphs["model"]["inputs"]:
            self.chars = Vocab(self.state.strings("chars"))
            marks = [self.settings.text(k) for k in ("begin_word", "end_word")]
            if not all(m in self.chars.index for m in marks):
                raise ModelError(f"{self.path}: metadata data_state.chars lacks {marks}")
            self.begin, self.end = (self.chars.index[m] for m in marks)
            self.clip = self.settings.integer("max_word_chars", 2, 100_000)
        scores = self.session.get_outputs()[0].shape
        if isinstance(scores[-1], int) and scores[-1] != len(self.tags):
            raise ModelError(
                f"{self.path}: the graph scores {scores[-1]} tags, the metadata names "
                f"{len(self.tags)}"
            )

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        ranks = {"words": 2, "lengths": 1, "chars": 2, "char_lengths": 1, "forms": 2}
        names = self.graphs["model"]["inputs"]
        if not {"words", "lengths"} <= set(names) or not set(names) <= set(ranks):
            raise ModelError(f"{self.path}: metadata names unexpected tagger inputs {names}")
        return {n: (INT64, ranks[n]) for n in names}

    def spell(self, form: str) -> list[int]:
        if len(form) > self.clip:
            half = self.clip // 2
            form = form[:half] + form[-half:]
        assert self.chars is not None
        return [self.begin, *(self.chars.id(c) for c in form), self.end]

    def feeds(self, sentences: list[list[str]]) -> dict[str, np.ndarray]:
        """The graph inputs of one batch of sentences."""
        normal = [[w.lower() if self.lowercase else w for w in ws] for ws in sentences]
        out = {
            "words": pad([self.words.encode(ws) for ws in normal]),
            "lengths": np.array([len(ws) for ws in sentences], dtype=np.int64),
        }
        if self.chars is not None:
            rows: dict[str, int] = {}
            index = [[rows.setdefault(f, len(rows)) for f in forms] for forms in sentences]
            spelt = [self.spell(f) for f in rows]
            out["chars"] = pad(spelt)
            out["char_lengths"] = np.array([len(c) for c in spelt], dtype=np.int64)
            out["forms"] = pad(index)
        wanted = self.graphs["model"]["inputs"]
        return {k: v for k, v in out.items() if k in wanted}

    def tag(self, sentences: list[list[str]], batch_size: int) -> list[list[str]]:
        def run(group: list[list[str]]) -> list[list[str]]:
            (scores,) = self.run("model", self.feeds(group))
            if scores.shape[-1] != len(self.tags):
                raise ModelError(
                    f"{self.path}: the graph scores {scores.shape[-1]} tags, "
                    f"the metadata names {len(self.tags)}"
                )
            best = scores.argmax(-1)
            return [[self.tags[i] for i in best[k, : len(ws)]] for k, ws in enumerate(group)]

        return map_in_length_order(run, sentences, batch_size)

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        batch_size = self.resolve(options)["batch_size"]
        sentences = [s.split() for s in inputs]
        for i, words in enumerate(sentences):
            if not words:
                raise UsageError(f"input {i + 1} is empty: give a sentence of words")
        results = []
        for words, tags in zip(sentences, self.tag(sentences, batch_size)):
            pairs = list(zip(words, tags))
            results.append(
                {
                    "input": " ".join(words),
                    "output": [list(p) for p in pairs],
                    "text": " ".join(f"{w}/{t}" for w, t in pairs),
                }
            )
        return results
