"""RNN seq2seq: an encoder RNN reads the source, a decoder RNN writes the target.

Task `seq2seq`: a token sequence in (characters or words), a token sequence out, with start,
end and padding symbols. Datasets: `word-pairs` (built in: English -> Spanish words, hello ->
hola, read character by character), `scan` (SCAN's `IN: ... OUT: ...` files) and
`sentence-pairs` (tab-separated sentence pairs such as the Tatoeba/Anki exports).

This module only registers; the network is in `model.py` (greedy and beam search in
`decode.py`), the data in `data.py`, imported when used. The recipe for SCAN lives in
`dataset_defaults["scan"]`, so that `zoo run rnn-seq2seq --dataset scan --data
tasks_train_simple.txt` alone reaches 100% on the simple split's test file (README,
"Sequence to sequence").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zoo import Architecture, Dataset, HeldOut, hookimpl, impl_param, param


@dataclass
class Seq2SeqConfig:
    cell: Literal["rnn", "gru", "lstm"] = param("lstm", "recurrent cell of encoder and decoder")
    embedding_dim: int = param(32, "token embedding size (source and target)", min=1, max=65536)
    hidden_size: int = param(128, "hidden units of encoder and decoder", min=1, max=65536)
    num_layers: int = param(1, "stacked layers in encoder and decoder", min=1, max=64)
    dropout: float = param(
        0.0, "dropout on embeddings, between layers and before the output", min=0.0, max=0.99
    )
    bidirectional: bool = param(False, "bidirectional encoder (hidden_size/2 units per direction)")
    attention: Literal["none", "luong", "bahdanau"] = param(
        "luong", "attention over the encoder outputs: none, multiplicative or additive"
    )
    tie_embeddings: Literal["none", "output", "all"] = param(
        "none",
        "share the target embedding with the output layer (output), and with the source "
        "embedding too (all; needs shared_vocab)",
    )
    teacher_forcing: float = param(
        1.0,
        "share of decoder inputs in training that are the true previous token; the rest are the "
        "model's own guess (scheduled sampling)",
        min=0.0,
        max=1.0,
    )
    max_length: int = param(
        0,
        "longest output when decoding, in tokens (0: twice the longest training target + 10, "
        "at least 100)",
        min=0,
        max=100_000,
    )
    impl: Literal["torch", "cells"] = impl_param()

    def check(self) -> None:
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError("bidirectional needs an even hidden_size (half per direction)")


@dataclass
class PredictConfig:
    beam_size: int = param(1, "beam width (1: greedy decoding)", min=1, max=1000)
    length_penalty: float = param(
        0.6,
        "beam search ranks by log-probability / ((5 + length) / 6) ** this (0: no normalisation)",
        min=0.0,
        max=10.0,
    )
    max_length: int = param(0, "longest output in tokens (0: the model's own limit)", min=0)
    batch_size: int = param(256, "inputs decoded together", min=1, max=1_000_000)


@dataclass
class WordPairsConfig(HeldOut):
    tokens: Literal["char", "word"] = param("char", "split sequences into characters or words")
    valid_fraction: float = param(0.0, "share of pairs for validation", min=0.0, max=0.9)
    test_fraction: float = param(0.0, "share of pairs for the test", min=0.0, max=0.9)


@dataclass
class ScanConfig(HeldOut):
    valid_fraction: float = param(
        0.0, "share of the training file held out for validation", min=0.0, max=0.9
    )
    test_fraction: float = param(
        0.0, "share of the training file held out for testing", min=0.0, max=0.9
    )
    max_source_length: int = param(
        0, "drop training pairs with longer commands (0: keep all)", min=0
    )
    max_target_length: int = param(
        0, "drop training pairs with longer action sequences (0: keep all)", min=0
    )
    concat_pairs: float = param(
        0.0,
        "add this share of extra training pairs, each two random pairs (drawn by split_seed) "
        "joined end to end (longer outputs than the data has; 0: off)",
        min=0.0,
        max=10.0,
    )
    valid_min_target_length: int = param(
        0,
        "move the training pairs with at least this many actions to the validation split, so "
        "its score measures generalisation to longer outputs than trained on (0: off)",
        min=0,
    )


@dataclass
class SentencePairsConfig(HeldOut):
    tokens: Literal["char", "word"] = param("word", "split sentences into characters or words")
    split_punctuation: bool = param(True, "word tokens: split punctuation off words")
    lowercase: bool = param(False, "lowercase both sides")
    vocab_size: int = param(
        0, "largest vocabulary per side, 4 special symbols included (0: no limit)", min=0
    )
    min_count: int = param(1, "drop tokens seen fewer times in training (they become <unk>)", min=1)
    shared_vocab: bool = param(False, "one vocabulary for both sides (for tie_embeddings=all)")
    max_source_length: int = param(
        0, "drop training pairs with longer sources (0: keep all)", min=0
    )
    max_target_length: int = param(
        0, "drop training pairs with longer targets (0: keep all)", min=0
    )
    valid_fraction: float = param(
        0.05, "share of the pairs held out for validation (unless --dev)", min=0.0, max=0.9
    )
    test_fraction: float = param(
        0.05, "share of the pairs held out for testing (unless --test)", min=0.0, max=0.9
    )
    concat_pairs: float = param(
        0.0,
        "add this share of extra training pairs, each two random pairs (drawn by split_seed) "
        "joined end to end (longer outputs than the data has; 0: off)",
        min=0.0,
        max=10.0,
    )


# The SCAN recipe: see benchmarks/seq2seq_scan.py for how it was chosen and what it reaches.
SCAN_RECIPE = {
    "cell": "lstm",
    "embedding_dim": 32,
    "hidden_size": 128,
    "attention": "luong",
    "dropout": 0.1,
    "lr": 0.002,
    "lr_schedule": "cosine",
}


@hookimpl
def register_architectures(register):
    register(
        Architecture(
            name="rnn-seq2seq",
            description="RNN/GRU/LSTM encoder-decoder with attention, greedy and beam decoding",
            tasks=("seq2seq",),
            config=Seq2SeqConfig,
            default_dataset="word-pairs",
            implementation="zoo_plugins.rnn_seq2seq.model:Seq2Seq",
            train_defaults={"lr": 0.005, "grad_clip": 1.0},
            dataset_defaults={"scan": SCAN_RECIPE},
            monitor=("exact_match", "max"),
            predict_config=PredictConfig,
        )
    )


@hookimpl
def register_datasets(register):
    register(
        Dataset(
            name="word-pairs",
            description=(
                "English -> Spanish words (hello -> hola, ...), or a file of "
                "'source<TAB>target' lines (extra columns ignored)"
            ),
            task="seq2seq",
            config=WordPairsConfig,
            loader="zoo_plugins.rnn_seq2seq.data:load_word_pairs",
            train_defaults={"epochs": 80, "batch_size": 8},
        )
    )
    register(
        Dataset(
            name="scan",
            description="SCAN commands -> actions (Lake and Baroni 2018), 'IN: ... OUT: ...' lines",
            task="seq2seq",
            config=ScanConfig,
            loader="zoo_plugins.rnn_seq2seq.data:load_scan",
            train_defaults={"epochs": 40, "batch_size": 64},
        )
    )
    register(
        Dataset(
            name="sentence-pairs",
            description=(
                "Tab-separated 'source<TAB>target[<TAB>...]' sentence pairs (a Tatoeba/Anki "
                "export), BLEU in evaluation"
            ),
            task="seq2seq",
            config=SentencePairsConfig,
            loader="zoo_plugins.rnn_seq2seq.data:load_sentence_pairs",
            train_defaults={"epochs": 20, "batch_size": 64, "lr": 0.002},
        )
    )
