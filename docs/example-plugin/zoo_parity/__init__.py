"""zoo-parity: an example third-party zoo plugin.

This module is what the entry point names. It only registers specs: it imports neither torch
nor the network, so `zoo list` stays fast. The network is in `model.py`, the data in `data.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from zoo import Architecture, Dataset, hookimpl, param


@dataclass
class ClassifierConfig:
    embedding_dim: int = param(8, "symbol embedding size", min=1, max=4096)
    hidden_size: int = param(32, "LSTM hidden units", min=1, max=4096)
    num_layers: int = param(1, "stacked LSTM layers", min=1, max=8)


@dataclass
class ParityConfig:
    path: str | None = param(None, "file of 'bits<TAB>label' lines (default: generate)")
    num_examples: int = param(2000, "strings to generate", min=3, max=1_000_000)
    max_length: int = param(8, "longest generated string", min=1, max=1000)
    valid_fraction: float = param(0.1, "share for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.1, "share for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of generation and split", min=0)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="lstm-classifier",
            description="LSTM over a symbol sequence, one class from its final state",
            tasks=("sequence-classification",),
            config=ClassifierConfig,
            default_dataset="parity",
            implementation="zoo_parity.model",
            train_defaults={"lr": 0.01, "epochs": 15, "batch_size": 32},
            monitor=("accuracy", "max"),
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="parity",
            description="Bit strings labelled even/odd by their number of ones",
            task="sequence-classification",
            config=ParityConfig,
            loader="zoo_parity.data:load_parity",
        )
    )


@click.command("parity-data")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--count", default=1000, show_default=True, help="How many strings.")
@click.option("--max-length", default=8, show_default=True, help="Longest string.")
@click.option("--seed", default=0, show_default=True)
def parity_data(out: str, count: int, max_length: int, seed: int) -> None:
    """Write a parity dataset file (bits<TAB>label per line) for `--data`."""
    from zoo_parity.data import generate

    with open(out, "w", encoding="utf-8") as f:
        for bits, label in generate(count, max_length, seed):
            f.write(f"{bits}\t{label}\n")
    click.echo(f"wrote {count} strings to {out}")


@hookimpl
def register_commands(cli):
    cli.add_command(parity_data)
