"""Recipe `tagger` (lstm-tagger): sentences in, one tag per word out (and, for a tagger with
auxiliary output layers, a value of each other column it predicts: XPOS, FEATS).

As zoo's tagger: words split on white space, lower-cased when the model was trained so, looked
up in the word vocabulary (`<unk>` for unseen words); each distinct form of a batch spelt in
characters between begin/end-of-word symbols, long forms clipped to their first and last
characters; batches of similar length; the value with the highest score, for every column.

The columns come from the export's settings: `column` (the tag column) and `columns`, a list
of `{"column": NAME, "output": GRAPH OUTPUT}` in file order; a column's values are the data
state's `tags` for the tag column, its `aux_tags.NAME` for the others. A file without
`columns` (a plain tagger, or one exported before zoo wrote them) has one column, scored by
the graph's first output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .model import INT64, Model, Option, UsageError, Vocab, map_in_length_order, pad
from .onnxfile import ModelError
from .schema import Fields

MAX_COLUMNS = 16  # UPOS, XPOS, FEATS today: a file naming far more is not zoo's


@dataclass(frozen=True)
class Column:
    """One predicted column: its name, the graph output that scores it (and that output's
    position among the graph's outputs, which is where `run` returns it) and its values."""

    name: str
    output: str
    position: int
    values: list[str]


class Tagger(Model):
    kind = "tagger"
    input_unit = "words"
    options = {"batch_size": Option(256, 1, 1_000_000)}  # noqa: RUF012

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.words = Vocab(self.state.strings("words"))
        self.tags = self.state.strings("tags")  # the tag column's: `column` below
        self.lowercase = self.state.boolean("lowercase")
        self.chars: Vocab | None = None
        if "chars" in self.graphs["model"]["inputs"]:
            self.chars = Vocab(self.state.strings("chars"))
            marks = [self.settings.text(k) for k in ("begin_word", "end_word")]
            if not all(m in self.chars.index for m in marks):
                raise ModelError(f"{self.path}: metadata data_state.chars lacks {marks}")
            self.begin, self.end = (self.chars.index[m] for m in marks)
            self.clip = self.settings.integer("max_word_chars", 2, 100_000)
        self.column, entries = self._column_entries()
        self.columns = [self._column(name, output) for name, output in entries]

    def _column_entries(self) -> tuple[str, list[tuple[str, str]]]:
        """(the tag column, [(column, graph output)] in file order), as the settings name
        them; checked here so that a malformed entry is one ModelError line, not a KeyError
        in the middle of tagging."""
        outputs = self.graphs["model"]["outputs"]
        entries = self.settings.get("columns")
        if entries is None:  # a plain tagger: its tags, scored by the first output
            main = self.settings.text("column", "upos")
            return main, [(main, outputs[0])]
        shape = '[{"column": NAME, "output": OUTPUT}, ...] of distinct columns'
        if (
            not isinstance(entries, list)
            or not 1 <= len(entries) <= MAX_COLUMNS
            or not all(
                isinstance(e, dict)
                and isinstance(e.get("column"), str)
                and isinstance(e.get("output"), str)
                for e in entries
            )
            or len({e["column"] for e in entries}) != len(entries)
        ):
            raise ModelError(f"{self.path}: metadata runtime.settings.columns must be {shape}")
        main = self.settings.text("column")
        pairs = [(e["column"], e["output"]) for e in entries]
        if main not in (name for name, _ in pairs):
            raise ModelError(
                f"{self.path}: metadata runtime.settings.columns lacks the tag column {main!r}"
            )
        return main, pairs

    def _column(self, name: str, output: str) -> Column:
        """A column with its vocabulary, checked against the graph: its output must be one the
        graph gives, scoring as many values as the vocabulary holds (where the graph says)."""
        outputs = self.graphs["model"]["outputs"]
        if output not in outputs:
            raise ModelError(
                f"{self.path}: metadata runtime.settings.columns names output {output!r} for "
                f"column {name!r}, not among the graph's outputs {outputs}"
            )
        if name == self.column:
            values = self.tags
        else:
            aux = Fields(self.state.get("aux_tags"), "data_state.aux_tags", self.path)
            values = aux.strings(name)
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        last = (shapes.get(output) or [None])[-1]
        if isinstance(last, int) and last != len(values):
            raise ModelError(
                f"{self.path}: the graph scores {last} tags of column {name!r} (output "
                f"{output!r}), the metadata names {len(values)}"
            )
        return Column(name, output, outputs.index(output), values)

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

    def tag_columns(
        self, sentences: list[list[str]], batch_size: int
    ) -> list[dict[str, list[str]]]:
        """Each sentence's values of every column, by name in file order (one graph run
        gives every output), as zoo's LSTMTagger.tag_columns: batched by length, in input
        order."""

        def run(group: list[list[str]]) -> list[dict[str, list[str]]]:
            outputs = self.run("model", self.feeds(group))
            best = {c.name: self.best(c, outputs[c.position], group) for c in self.columns}
            return [
                {c.name: [c.values[i] for i in best[c.name][k, : len(ws)]] for c in self.columns}
                for k, ws in enumerate(group)
            ]

        return map_in_length_order(run, sentences, batch_size)

    def best(self, column: Column, scores: np.ndarray, group: list[list[str]]) -> np.ndarray:
        """The best value's id of each word, [batch, time]; scores of another shape than
        [batch, time, values] are the graph's fault, said in one line rather than a wrong
        tag or an IndexError."""
        longest = max(len(ws) for ws in group)
        if scores.ndim != 3 or scores.shape[0] != len(group) or scores.shape[1] < longest:
            raise ModelError(
                f"{self.path}: the graph's output {column.output!r} has shape "
                f"{list(scores.shape)} for {len(group)} sentences of up to {longest} words"
            )
        if scores.shape[-1] != len(column.values):
            raise ModelError(
                f"{self.path}: the graph scores {scores.shape[-1]} tags of column "
                f"{column.name!r} (output {column.output!r}), the metadata names "
                f"{len(column.values)}"
            )
        return scores.argmax(-1)

    def tag(self, sentences: list[list[str]], batch_size: int) -> list[list[str]]:
        """The tags (the tag column alone) of lists of words, in input order."""
        return [values[self.column] for values in self.tag_columns(sentences, batch_size)]

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        batch_size = self.resolve(options)["batch_size"]
        sentences = [s.split() for s in inputs]
        for i, words in enumerate(sentences):
            if not words:
                raise UsageError(f"input {i + 1} is empty: give a sentence of words")
        predicted = self.tag_columns(sentences, batch_size)
        return [self.result(words, values) for words, values in zip(sentences, predicted)]

    def result(self, words: list[str], values: dict[str, list[str]]) -> dict[str, Any]:
        """One sentence's answer, as zoo's (lstm_tagger's `_result`): `output` the word/tag
        pairs of the tag column; with more columns, `columns` (each column's values by name,
        in file order) and a `text` of word/value/value... fields."""
        pairs = list(zip(words, values[self.column]))
        result: dict[str, Any] = {
            "input": " ".join(words),
            "output": [list(p) for p in pairs],
            "text": " ".join(f"{w}/{t}" for w, t in pairs),
        }
        if len(values) > 1:
            result["columns"] = values
            result["text"] = " ".join("/".join(f) for f in zip(words, *values.values()))
        return result
