"""Recipes of the Elman networks (elman-rnn): `step-regression` (numbers per step),
`step-classification` (a symbol per step) and `char-lm` (continue a text).

The language model reads the prompt, then writes one character at a time, feeding each back in
with the state the graph returned, as zoo's `CharLM.generate` does; `<unk>` is never written.
With temperature 0 (the likeliest character) the text is zoo's; above 0 it is sampled with
numpy's generator, so it differs from zoo's (torch's) samples for the same seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .model import (
    FLOAT,
    INT64,
    Model,
    ModelError,
    Option,
    UsageError,
    Vocab,
    float32,
    windows_of,
)


class StepRegressor(Model):
    kind = "step-regression"
    input_unit = "steps"
    options = {  # noqa: RUF012  (zoo's elman predict options; only char-lm uses them)
        "length": Option(200, 0, 1_000_000),
        "temperature": Option(0.8, 0.0, 100.0),
        "seed": Option(0, 0, 2**63 - 1),
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.size = self.state.integer("input_size", 1, 100_000)

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        return {"x": (FLOAT, 3)}

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        self.resolve(options)
        results = []
        for seq in windows_of(inputs, "sequence"):
            if not seq:
                raise UsageError("empty input: give numbers, one per time step")
            if any(len(step) != self.size for step in seq):
                raise UsageError(f"each step needs {self.size} comma-separated value(s)")
            (out,) = self.run("model", {"x": float32([seq])})
            values = [[round(v, 6) for v in row] for row in out[0].tolist()]
            flat = [v[0] if len(v) == 1 else v for v in values]
            results.append(
                {
                    "input": [s[0] if len(s) == 1 else s for s in seq],
                    "output": flat,
                    "text": " ".join(
                        f"{v:.4f}" if isinstance(v, float) else ",".join(f"{u:.4f}" for u in v)
                        for v in flat
                    ),
                }
            )
        return results


class StepClassifier(Model):
    kind = "step-classification"
    options = StepRegressor.options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inputs = Vocab(self.state.strings("input_vocab"))
        self.outputs = self.state.strings("output_vocab")

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        return {"ids": (INT64, 2)}

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        self.resolve(options)
        results = []
        for text in inputs:
            if not text:
                raise UsageError("empty input: give a string of symbols, e.g. hello")
            ids = np.array([self.inputs.encode(list(text))], dtype=np.int64)
            (scores,) = self.run("model", {"ids": ids})
            if scores.shape[-1] != len(self.outputs):
                raise ModelError(
                    f"{self.path}: the graph scores {scores.shape[-1]} symbols, "
                    f"the metadata names {len(self.outputs)}"
                )
            predicted = "".join(self.outputs[i] for i in scores[0].argmax(-1))
            results.append({"input": text, "output": predicted, "text": f"{text} -> {predicted}"})
        return results


class CharLM(Model):
    kind = "char-lm"
    options = StepRegressor.options

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.vocab = Vocab(self.state.strings("vocab"))
        self.state_names = [n for n in self.graphs["model"]["inputs"] if n != "ids"]
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self.state_shape = [d if isinstance(d, int) else 1 for d in shapes[self.state_names[0]]]

    def expected_inputs(self) -> dict[str, tuple[str, int]]:
        names = self.graphs["model"]["inputs"]
        if names not in (["ids", "h"], ["ids", "h", "c"]):
            raise ModelError(f"{self.path}: a char-lm graph reads ids and h (and c), not {names}")
        return {"ids": (INT64, 2), **{n: (FLOAT, 3) for n in names[1:]}}

    def step(self, ids: list[int], state: list[np.ndarray]) -> tuple[np.ndarray, list]:
        feeds = {"ids": np.array([ids], dtype=np.int64), **dict(zip(self.state_names, state))}
        scores, *after = self.run("model", feeds)
        if scores.shape[-1] != len(self.vocab):
            raise ModelError(
                f"{self.path}: the graph scores {scores.shape[-1]} characters, "
                f"the metadata names {len(self.vocab)}"
            )
        return scores[0, -1], after

    def generate(self, prompt: str, length: int, temperature: float, rng: Any) -> str:
        zeros = np.zeros(self.state_shape, dtype=np.float32)
        scores, state = self.step(self.vocab.encode(list(prompt)), [zeros] * len(self.state_names))
        out = []
        for _ in range(length):
            scores = scores.astype(np.float64)
            if self.vocab.unk_id is not None and len(self.vocab) > 1:
                scores[self.vocab.unk_id] = -math.inf
            if temperature == 0:
                nxt = int(scores.argmax())
            else:
                z = scores / temperature
                p = np.exp(z - z.max())
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(self.vocab.tokens[nxt])
            scores, state = self.step([nxt], state)
        return "".join(out)

    def predict(self, inputs: list[str], **options: Any) -> list[dict[str, Any]]:
        o = self.resolve(options)
        rng = np.random.default_rng(o["seed"])
        results = []
        for prompt in inputs:
            if not prompt:
                raise UsageError('empty prompt: give some text to continue, e.g. "To be"')
            text = self.generate(prompt, o["length"], o["temperature"], rng)
            results.append({"input": prompt, "output": text, "text": prompt + text})
        return results
