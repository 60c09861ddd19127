"""Elman RNN: a multi-layer simple recurrent network that predicts one output per time step.

It serves three tasks: `step-regression` (a number per step: sin -> cos),
`step-classification` (a symbol per step: hello -> ohlol) and `char-lm` (the next character
of a text, trained by truncated back-propagation through time with the hidden state carried
across batches). `cell` swaps the Elman cell for a GRU or LSTM cell, for comparison; `impl`
picks torch's fused layers or zoo.cells, which step through the equations. This module only
registers; the networks (one per task, on one body) live in `model.py` and the data in
`data.py`, imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zoo import Architecture, Dataset, Fractions, HeldOut, hookimpl, impl_param, param


@dataclass
class ElmanConfig:
    hidden_size: int = param(32, "hidden units per layer", min=1, max=65536)
    num_layers: int = param(1, "stacked recurrent layers", min=1, max=64)
    nonlinearity: Literal["tanh", "relu"] = param("tanh", "activation of the recurrence")
    bidirectional: bool = param(False, "also read each sequence backwards")
    dropout: float = param(0.0, "dropout between stacked layers", min=0.0, max=0.99)
    embedding_dim: int = param(
        0, "symbol embedding size for symbol input (0: one-hot input)", min=0, max=65536
    )
    cell: Literal["elman", "gru", "lstm"] = param(
        "elman", "recurrent cell: elman (the simple RNN; see nonlinearity), gru or lstm"
    )
    impl: Literal["torch", "cells"] = impl_param()

    def check(self) -> None:
        if self.cell != "elman" and self.nonlinearity != "tanh":
            raise ValueError(f"nonlinearity applies to the elman cell only, not to {self.cell}")


@dataclass
class SineCosineConfig(Fractions):
    num_sequences: int = param(512, "sequences to generate", min=3, max=10_000_000)
    length: int = param(20, "time steps per sequence", min=1, max=100_000)
    step: float = param(0.3, "time between steps (radians)", min=0.0)


@dataclass
class CharPairsConfig(HeldOut):
    valid_fraction: float = param(0.0, "share of pairs for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.0, "share of pairs for the test", min=0.0, max=0.9)


@dataclass
class TextConfig(HeldOut):
    test_fraction: float = param(
        0.0,
        "share of the text, before the validation part (its end), for the test",
        min=0.0,
        max=0.9,
    )
    format: Literal["auto", "plain", "conllu"] = param(
        "auto",
        "plain: the file as it is; conllu: its '# text = ' sentence lines, one per line; "
        "auto: conllu for *.conllu files",
    )
    bptt: int = param(64, "characters per truncated back-propagation window", min=1, max=1_000_000)
    min_count: int = param(
        1, "characters seen fewer times in training map to <unk>", min=1, max=1_000_000
    )


@dataclass
class ElmanPredictOptions:
    length: int = param(
        200, "char-lm: characters to generate after the prompt", min=0, max=1_000_000
    )
    temperature: float = param(
        0.8, "char-lm: sampling temperature (0: always the likeliest character)", min=0.0, max=100.0
    )
    seed: int = param(0, "char-lm: seed of the sampling", min=0, max=2**63 - 1)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="elman-rnn",
            description="Multi-layer Elman RNN (or GRU/LSTM cell), one output per step; char LM",
            tasks=("step-regression", "step-classification", "char-lm"),
            config=ElmanConfig,
            default_dataset="sine-cosine",
            implementation={
                "step-regression": "zoo_plugins.elman_rnn.model:StepRegressor",
                "step-classification": "zoo_plugins.elman_rnn.model:StepClassifier",
                "char-lm": "zoo_plugins.elman_rnn.model:CharLM",
            },
            train_defaults={"lr": 0.01, "grad_clip": 1.0},
            dataset_defaults={
                "char-pairs": {"epochs": 60, "lr": 0.05},
                "text": {"hidden_size": 128, "lr": 0.005, "bptt": 32},
            },
            predict_config=ElmanPredictOptions,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="sine-cosine",
            description="sin(t) in, cos(t) out at every step, over random phases (generated)",
            task="step-regression",
            config=SineCosineConfig,
            loader="zoo_plugins.elman_rnn.data:load_sine_cosine",
            train_defaults={"epochs": 30, "batch_size": 32},
        )
    )
    register(
        Dataset(
            name="char-pairs",
            description=(
                "One symbol out per symbol in: 'hello' -> 'ohlol', or a file of "
                "'input<TAB>target' lines of equal length"
            ),
            task="step-classification",
            config=CharPairsConfig,
            loader="zoo_plugins.elman_rnn.data:load_char_pairs",
            train_defaults={"batch_size": 16},
        )
    )
    register(
        Dataset(
            name="text",
            description=(
                "Any UTF-8 text (or CoNLL-U sentences) for a character language model; "
                "without a file, a short embedded text"
            ),
            task="char-lm",
            config=TextConfig,
            loader="zoo_plugins.elman_rnn.data:load_text",
            train_defaults={"batch_size": 8, "epochs": 60},
        )
    )
