"""zoo-sentences: a sentence classifier and its dataset, shipped as a third party would.

This module is what the entry point names: the configs and the hooks, nothing more. It imports
no torch, so `zoo list` stays fast; zoo imports `model.py` and `data.py` when they are used.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import click

from zoo import Architecture, Dataset, HeldOut, hookimpl, impl_param, param


@dataclass
class ClassifierConfig:
    embedding_dim: int = param(32, "word embedding size", min=1, max=4096)
    hidden_size: int = param(32, "GRU units in each direction", min=1, max=4096)
    dropout: float = param(0.2, "dropout on the embeddings and the final states", min=0.0, max=0.9)
    impl: Literal["torch", "cells"] = impl_param()


@dataclass
class PredictOptions:  # `zoo predict --set batch_size=64`, or --batch-size 64
    batch_size: int = param(256, "sentences classified at once", min=1, max=65536)


@dataclass
class SentencesConfig(HeldOut):  # path (--data), dev_path, test_path and the held-out shares
    lowercase: bool = param(True, "lower-case the words")


@hookimpl
def register_architectures(register: Callable[[Architecture], None]) -> None:
    register(
        Architecture(
            name="gru-classifier",
            description="Bidirectional GRU over the words of a sentence, one label for it",
            tasks=("text-classification",),
            config=ClassifierConfig,
            default_dataset="labelled-sentences",
            implementation="zoo_sentences.model:GRUClassifier",
            train_defaults={"lr": 0.01, "epochs": 15, "batch_size": 8},
            monitor=("accuracy", "max"),
            headline=("accuracy", "macro_f1"),
            predict_config=PredictOptions,
        )
    )


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="labelled-sentences",
            description="Sentences with a label, text<TAB>label a line (built in: film reviews)",
            task="text-classification",
            config=SentencesConfig,
            loader="zoo_sentences.data:load",
        )
    )


@click.command("sentences-sample")
@click.argument("out", type=click.Path(dir_okay=False))
def sentences_sample(out: str) -> None:
    """Write the built-in labelled sentences to OUT, to start a --data file from."""
    from zoo.core.fileio import atomic_write_text
    from zoo.toolkit.textfile import embedded

    sample = embedded(__name__, "sentences.tsv")
    atomic_write_text(out, sample.text)
    click.echo(f"wrote {len(sample.lines())} labelled sentences to {out}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(sentences_sample)
