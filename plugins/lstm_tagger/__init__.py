"""LSTM tagger: word embeddings, an LSTM over the sentence, a linear tag layer per word.

Task `tagging`: a sentence (whitespace-separated words) in, one tag per word out. The built-in
data grows the PyTorch tutorial's "The dog ate the apple" into fifty tagged sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo import Architecture, Dataset, hookimpl, param


@dataclass
class TaggerConfig:
    embedding_dim: int = param(64, "word embedding size", min=1, max=65536)
    hidden_size: int = param(64, "LSTM hidden units per direction", min=1, max=65536)
    num_layers: int = param(1, "stacked LSTM layers", min=1, max=64)
    bidirectional: bool = param(True, "read the sentence in both directions")
    dropout: float = param(0.1, "dropout on embeddings and LSTM outputs", min=0.0, max=0.99)
    word_dropout: float = param(
        0.1,
        "chance a training word is replaced by the unknown word, so unknown words are learnt",
        min=0.0,
        max=1.0,
    )


@dataclass
class ToyTagsConfig:
    lowercase: bool = param(True, "lower-case words before looking them up")
    valid_fraction: float = param(0.1, "share of sentences for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.1, "share of sentences for the test", min=0.0, max=0.9)
    split_seed: int = param(0, "seed of the split", min=0)


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="lstm-tagger",
            description="Word embeddings + (bi)LSTM + linear layer: one tag per word",
            tasks=("tagging",),
            config=TaggerConfig,
            default_dataset="toy-tags",
            implementation="zoo_plugins.lstm_tagger.model",
            train_defaults={"lr": 0.01},
            monitor=("accuracy", "max"),
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="toy-tags",
            description="Fifty tagged English sentences (DET NN V ADJ ADP PRON ADV CONJ), built in",
            task="tagging",
            config=ToyTagsConfig,
            loader="zoo_plugins.lstm_tagger.data:load_toy_tags",
            train_defaults={"epochs": 80, "batch_size": 8},
        )
    )
