"""RNN seq2seq: an encoder RNN reads the source, a decoder RNN writes the target.

Task `seq2seq`: a token sequence in (characters or words), a token sequence out, with start,
end and padding symbols. The built-in data: English -> Spanish words, hello -> hola,
cat -> gato, good -> bueno and forty more, read character by character.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zoo import Architecture, Dataset, hookimpl, param


@dataclass
class Seq2SeqConfig:
    embedding_dim: int = param(32, "token embedding size (source and target)", min=1, max=65536)
    hidden_size: int = param(128, "hidden units of encoder and decoder", min=1, max=65536)
    num_layers: int = param(1, "stacked layers in encoder and decoder", min=1, max=64)
    dropout: float = param(0.0, "dropout on embeddings and between layers", min=0.0, max=0.99)
    max_length: int = param(
        0,
        "longest output when decoding, in tokens (0: twice the longest training target + 10)",
        min=0,
        max=100_000,
    )


@dataclass
class WordPairsConfig:
    path: str | None = param(
        None,
        "tab-separated 'source<TAB>target' file, extra columns ignored (default: built-in words)",
    )
    tokens: Literal["char", "word"] = param("char", "split sequences into characters or words")
    valid_fraction: float = param(0.0, "share of pairs for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.0, "share of pairs for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of the split", min=0)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="rnn-seq2seq",
            description="RNN encoder-decoder with start/end symbols and greedy decoding",
            tasks=("seq2seq",),
            config=Seq2SeqConfig,
            default_dataset="word-pairs",
            implementation="zoo_plugins.rnn_seq2seq.model",
            train_defaults={"lr": 0.005, "grad_clip": 1.0},
            monitor=("exact_match", "max"),
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="word-pairs",
            description="English -> Spanish words (hello -> hola, ...), or a tab-separated file of pairs",
            task="seq2seq",
            config=WordPairsConfig,
            loader="zoo_plugins.rnn_seq2seq.data:load_word_pairs",
            train_defaults={"epochs": 150, "batch_size": 8},
        )
    )
