"""Recipe `seq2seq` (rnn-seq2seq): translate with greedy or beam search, in numpy, around the
file's two graphs: `encoder` (sources -> first decoder state, memory) and `decoder` (one step).

The searches are zoo's decode.py step for step: a batch of sources decodes together and stops
when every output has written </s> or at the length limit; beam search keeps `beam_size`
hypotheses per source in one batch of rows, a finished one frozen with its score, ranked by
log-probability / ((5 + length) / 6) ** length_penalty (GNMT). The tokeniser (characters or
words, lower-casing, punctuation split off) is zoo's, from the data state.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .model import INT64, Model, ModelError, Option, UsageError, Vocab, map_in_length_order, pad

_PUNCT = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = set(".,!?;:%)]}»…")
_NO_SPACE_AFTER = set("([{¿¡«")
TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


class Seq2Seq(Model):
    kind = "seq2seq"
    options = {  # noqa: RUF012  (zoo's PredictConfig)
        "beam_size": Option(1, 1, 1000),
        "length_penalty": Option(0.6, 0.0, 10.0),
        "max_length": Option(0, 0, 1_000_000),
        "batch_size": Option(256, 1, 1_000_000),
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.source = Vocab(self.state.strings("source"))
        self.target = self.state.strings("target")
        self.mode = self.state.text("tokens")
        if self.mode not in ("char", "word"):
            raise ModelError(f"{self.path}: metadata data_state.tokens must be char or word")
        if self.runtime.get("input_limit") is None:  # exported before limits: zoo's unit
            self.input_unit = "characters" if self.mode == "char" else "words"
        self.lowercase = self.state.boolean("lowercase")
        self.punctuation = self.state.boolean("punctuation")
        top = len(self.target) - 1
        self.pad, self.bos, self.eos = (
            self.settings.integer(k, 0, top) for k in ("pad", "bos", "eos")
        )
        self.limit = self.settings.integer("max_length", 1, 1_000_000)
        enc, dec = self.graphs.get("encoder"), self.graphs.get("decoder")
        if enc is None or dec is None:
            raise ModelError(f"{self.path}: a seq2seq file has an encoder and a decoder graph")
        self.states = [n for n in dec["inputs"][1:] if n.split(".")[-1] in ("h", "c")]
        self.memory = dec["inputs"][1 + len(self.states) :]
        self.idle = {
            i.name: np.zeros([d if isinstance(d, int) else 0 for d in i.shape], TYPES[i.type])
            for i in self.session.get_inputs()
            if i.type in TYPES
        }

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        found = {i.name: (i.type, len(i.shape)) for i in self.session.get_inputs()}
        names = ["graph", *self.graphs["encoder"]["inputs"], *self.graphs["decoder"]["inputs"]]
        fixed = {"graph": (INT64, 0), "encoder.src": (INT64, 2), "encoder.lengths": (INT64, 1)}
        fixed["decoder.tokens"] = (INT64, 1)
        return {n: fixed.get(n, found.get(n, ("missing", 0))) for n in names}

    # ----------------------------------------------------------------------- the graphs
    def _call(self, role: str, index: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.run(role, {**self.idle, **feeds, "graph": np.array(index, dtype=np.int64)})

    def encode(self, src: np.ndarray, lengths: np.ndarray) -> tuple[list, list]:
        """(decoder state, memory arrays) for a batch of sources."""
        out = self._call("encoder", 0, {"encoder.src": src, "encoder.lengths": lengths})
        return out[: len(self.states)], out[len(self.states) : len(self.states) + len(self.memory)]

    def step(self, tokens: np.ndarray, state: list, memory: list) -> tuple[np.ndarray, list]:
        feeds = {"decoder.tokens": tokens, **dict(zip(self.states, state))}
        feeds.update(zip(self.memory, memory))
        scores, *after = self._call("decoder", 1, feeds)
        if scores.ndim != 2 or scores.shape[-1] != len(self.target):
            raise ModelError(
                f"{self.path}: the decoder scores {scores.shape[-1:]} tokens, "
                f"the metadata names {len(self.target)}"
            )
        return scores, after

    # ---------------------------------------------------------------------- the searches
    def greedy(self, src: np.ndarray, lengths: np.ndarray, limit: int) -> list[list[int]]:
        state, memory = self.encode(src, lengths)
        batch = src.shape[0]
        tokens = np.full(batch, self.bos, dtype=np.int64)
        finished = np.zeros(batch, dtype=bool)
        steps = []
        for _ in range(limit):
            scores, state = self.step(tokens, state, memory)
            tokens = scores.argmax(-1).astype(np.int64)
            steps.append(tokens)
            finished |= tokens == self.eos
            if finished.all():
                break
        if not steps:
            return [[] for _ in range(batch)]
        return self._strip(np.stack(steps, 1).tolist())

    def beam(
        self, src: np.ndarray, lengths: np.ndarray, k: int, alpha: float, limit: int
    ) -> list[list[int]]:
        """decode.beam_search, in numpy."""
        batch = src.shape[0]
        state, memory = self.encode(src, lengths)
        memory = [m.repeat(k, axis=0) for m in memory]
        state = [s.repeat(k, axis=1) for s in state]
        tokens = np.full(batch * k, self.bos, dtype=np.int64)
        score = np.full((batch, k), -np.inf, dtype=np.float32)
        score[:, 0] = 0.0
        length = np.zeros((batch, k), dtype=np.int64)
        finished = np.zeros((batch, k), dtype=bool)
        history = np.zeros((batch, k, 0), dtype=np.int64)
        offsets = (np.arange(batch) * k)[:, None]
        for _ in range(limit):
            scores, state = self.step(tokens, state, memory)
            logp = _log_softmax(scores.astype(np.float32)).reshape(batch, k, -1)
            vocab = logp.shape[-1]
            frozen = np.full_like(logp, -np.inf)
            frozen[..., self.eos] = 0.0
            logp = np.where(finished[..., None], frozen, logp)
            total = score[..., None] + logp
            new_length = length + (~finished).astype(np.int64)
            normalised = total / _penalty(new_length, alpha)[..., None]
            index = _topk(normalised.reshape(batch, -1), k)
            beam, token = index // vocab, index % vocab
            score = np.take_along_axis(total.reshape(batch, -1), index, 1)
            length = np.take_along_axis(new_length, beam, 1)
            finished = np.take_along_axis(finished, beam, 1) | (token == self.eos)
            kept = np.take_along_axis(history, beam[..., None], 1)
            history = np.concatenate([kept, token[..., None]], axis=-1)
            rows = (beam + offsets).reshape(-1)
            state = [s[:, rows] for s in state]
            tokens = token.reshape(-1).astype(np.int64)
            if finished.all():
                break
        final = score / _penalty(np.maximum(length, 1), alpha)
        choice = final.argmax(axis=1)
        return self._strip(history[np.arange(batch), choice].tolist())

    def _strip(self, rows: list[list[int]]) -> list[list[int]]:
        return [row[: row.index(self.eos)] if self.eos in row else row for row in rows]

    # --------------------------------------------------------------------- text in, out
    def tokens(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.mode == "char":
            return list(" ".join(text.split()))
        return _PUNCT.findall(text) if self.punctuation else text.split()

    def detokenize(self, tokens: list[str]) -> str:
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

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        o = self.resolve(options)
        sources = []
        for i, text in enumerate(inputs):
            tokens = self.tokens(text)
            if not tokens:
                raise UsageError(f"input {i + 1} is empty: give a sequence to translate")
            sources.append(self.source.encode(tokens))
        limit = o["max_length"] or self.limit

        def run(batch: list[list[int]]) -> list[list[int]]:
            src = pad(batch, self.pad)
            lengths = np.array([len(s) for s in batch], dtype=np.int64)
            if o["beam_size"] > 1:
                return self.beam(src, lengths, o["beam_size"], o["length_penalty"], limit)
            return self.greedy(src, lengths, limit)

        results = []
        for text, ids in zip(inputs, map_in_length_order(run, sources, o["batch_size"])):
            output = self.detokenize([self.target[i] for i in ids])
            results.append({"input": text, "output": output, "text": output})
        return results


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _penalty(length: np.ndarray, alpha: float) -> np.ndarray:
    return ((5.0 + length.astype(np.float32)) / np.float32(6.0)) ** np.float32(alpha)


def _topk(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k largest values, largest first (ties: the lower index)."""
    return np.argsort(-x, axis=1, kind="stable")[:, :k]
