"""The LSTM tagger network and what zoo asks of it: build, loss, evaluate, predict.

    e_i = [Embedding(word_i) ; CharFeatures(form_i)]      (char CNN or char BiLSTM, optional)
    h_1 .. h_n = LSTM(e_1 .. e_n)                          (stacked, both directions, packed)
    tag_i = argmax(W h_i + b)

With `char_encoder=none bidirectional=false num_layers=1` it is the seed's word-only,
left-to-right tagger. Training replaces words by the unknown word at random (`word_dropout`),
so the unknown word's embedding is learnt and unseen words are tagged from their characters
and context. Tensor names are torch's own (`embedding.weight`, `char_embedding.weight`,
`char_cnn.weight`, `char_lstm.weight_ih_l0`, `lstm.weight_ih_l0`, `out.weight`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo import padded
from zoo.cells import recurrent_layer
from zoo.data import Vocab, pad
from zoo.errors import UsageError, reading_input

from .data import CharEncoder

UNK_ID = 1  # Vocab.build puts <pad>, <unk> first
EMBEDDING_STD = 0.1


def _embedding(num: int, dim: int) -> nn.Embedding:
    """An embedding table (row 0 the zero padding) starting at N(0, 0.1), not torch's N(0, 1):
    N(0, 1) makes every rare word a loud random input that Adam takes epochs to quieten (EWT
    dev after 3 epochs: 90.3% with N(0, 1), 93.7% with N(0, 0.1)). On the meta device (zoo
    checks a file's shapes that way) nothing is drawn: normal_ there imports torch._dynamo,
    which costs seconds."""
    weight = torch.empty(num, dim)
    if not weight.is_meta:
        with torch.no_grad():
            weight.normal_(0.0, EMBEDDING_STD)
            weight[0].zero_()
    return nn.Embedding(num, dim, padding_idx=0, _weight=weight)


class LSTMTagger(nn.Module):
    def __init__(self, config: Any, num_words: int, num_tags: int, num_chars: int = 0):
        super().__init__()
        self.word_dropout = config.word_dropout
        self.unk_alpha = config.unk_alpha
        self.label_smoothing = config.label_smoothing
        self.char_encoder = config.char_encoder if num_chars else "none"
        self.embedding = _embedding(num_words, config.embedding_dim)
        features = config.embedding_dim
        if self.char_encoder != "none":
            self.char_embedding = _embedding(num_chars, config.char_dim)
            if self.char_encoder == "cnn":
                self.char_cnn = nn.Conv1d(
                    config.char_dim,
                    config.char_hidden,
                    config.char_kernel,
                    padding=config.char_kernel // 2,
                )
                features += config.char_hidden
            else:
                self.char_lstm = recurrent_layer(
                    "lstm",
                    config.impl,
                    config.char_dim,
                    config.char_hidden,
                    bidirectional=True,
                    batch_first=True,
                )
                features += 2 * config.char_hidden
        self.lstm = recurrent_layer(
            "lstm",
            config.impl,
            features,
            config.hidden_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), num_tags)

    def drop_words(self, words: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
        """Replace training words by the unknown word: each with chance `word_dropout`, or
        alpha / (alpha + count) when that is larger (rare words more often: they are the ones
        that look like the unknown words of new text)."""
        chance: torch.Tensor | float = self.word_dropout
        if self.unk_alpha > 0 and counts is not None:
            chance = torch.clamp(
                self.unk_alpha / (self.unk_alpha + counts.float()), min=self.word_dropout
            )
        elif self.word_dropout <= 0:
            return words
        drop = (torch.rand(words.shape, device=words.device) < chance) & (words > UNK_ID)
        return words.masked_fill(drop, UNK_ID)

    def char_features(self, chars: torch.Tensor, char_lengths: torch.Tensor) -> torch.Tensor:
        """chars: [U, L] ids of U distinct forms -> [U, features]."""
        x = self.char_embedding(chars)
        if self.char_encoder == "cnn":
            # The convolution as windows @ weights: same numbers as self.char_cnn(x), but plain
            # matrix products, whereas oneDNN's convolution caches a kernel per input shape and
            # the shapes change with every batch (peak RSS on EWT 1.8 GB instead of < 1 GB).
            k = self.char_cnn.kernel_size[0]
            windows = F.pad(x, (0, 0, k // 2, k // 2)).unfold(1, k, 1)  # [U, L, C, k]
            weight = self.char_cnn.weight.flatten(1)  # [F, C*k], C-major as the windows
            h = F.linear(windows.flatten(2), weight, self.char_cnn.bias)  # [U, L, F]
            h = h.masked_fill((chars == 0).unsqueeze(2), float("-inf"))
            return torch.tanh(h.amax(dim=1))
        packed = pack_padded_sequence(x, char_lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.char_lstm(packed)  # h: [2, U, H]
        return torch.cat([h[0], h[1]], dim=-1)

    def forward(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        chars: torch.Tensor | None = None,
        char_lengths: torch.Tensor | None = None,
        forms: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """words: [batch, time] ids, lengths: [batch] -> tag scores [batch, time, tags]."""
        if self.training:
            words = self.drop_words(words, counts)
        x = self.embedding(words)
        if self.char_encoder != "none":
            if chars is None or char_lengths is None or forms is None:
                raise UsageError(
                    "this tagger reads characters but the batch has no `chars`: use a dataset "
                    "that gives them (toy-tags, conllu) or train with --set char_encoder=none"
                )
            x = torch.cat([x, self.char_features(chars, char_lengths)[forms]], dim=-1)
        x = self.dropout(x)
        if padded.supports(self.lstm):
            out = padded.run(self.lstm, x, lengths)  # faster than packing on CPU: see zoo/padded.py
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        return self.out(self.dropout(out))


def build(config: Any, state: dict[str, Any], task: str) -> LSTMTagger:
    chars = len(state["chars"]) if config.char_encoder != "none" and state.get("chars") else 0
    if config.char_encoder != "none" and not chars:
        raise UsageError(
            f"char_encoder={config.char_encoder}: the data has no character vocabulary "
            "('chars' in its state); use --set char_encoder=none"
        )
    return LSTMTagger(config, len(state["words"]), len(state["tags"]), chars)


def initialise(module: LSTMTagger, config: Any, data: Any, task: str) -> None:
    """Start the word embeddings from `pretrained_vectors` when given (at creation only)."""
    if not config.pretrained_vectors:
        return
    from .vectors import read_vectors

    state = data.state
    wanted = {w: i for i, w in enumerate(state["words"]) if i > UNK_ID}
    lowercase = bool(state.get("lowercase"))
    found = read_vectors(
        config.pretrained_vectors,
        wanted,
        config.embedding_dim,
        (lambda w: w.lower()) if lowercase else (lambda w: w),
    )
    if found:
        rows = torch.tensor(sorted(found))
        with torch.no_grad():
            module.embedding.weight[rows] = torch.tensor([found[int(r)] for r in rows])
    module.pretrained_coverage = len(found) / max(1, len(wanted))


def scores_of(module: LSTMTagger, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return module(
        batch["words"],
        batch["lengths"],
        batch.get("chars"),
        batch.get("char_lengths"),
        batch.get("forms"),
        batch.get("counts"),
    )


def loss(module: LSTMTagger, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    scores = scores_of(module, batch)
    return F.cross_entropy(
        scores.flatten(0, 1),
        batch["tags"].flatten(),
        ignore_index=-100,
        label_smoothing=module.label_smoothing,
    )


def evaluate(
    module: LSTMTagger, batches: Iterable[dict[str, torch.Tensor]], state: dict[str, Any], task: str
) -> dict[str, float]:
    """Accuracy over all words, on words seen in training (known) and not (unknown), and per
    gold tag (`accuracy/NOUN`: the share of the words tagged NOUN in the data that the model
    tagged NOUN)."""
    num_tags = len(state["tags"])
    total = correct = loss_sum = unknown = unknown_correct = 0.0
    per_tag = torch.zeros(num_tags, dtype=torch.long)
    per_tag_hit = torch.zeros(num_tags, dtype=torch.long)
    for batch in batches:
        scores = scores_of(module, batch)
        tags = batch["tags"]
        valid = tags != -100
        scored = tags >= 0  # not padding, and a tag the model knows (see data.UNSEEN_TAG)
        loss_sum += float(F.cross_entropy(scores[scored], tags[scored], reduction="sum"))
        hit = (scores.argmax(-1) == tags) & valid
        is_unknown = (batch["words"] == UNK_ID) & valid
        total += float(valid.sum())
        correct += float(hit.sum())
        unknown += float(is_unknown.sum())
        unknown_correct += float((hit & is_unknown).sum())
        per_tag += torch.bincount(tags[scored].cpu(), minlength=num_tags)
        per_tag_hit += torch.bincount(tags[hit].cpu(), minlength=num_tags)
    known = total - unknown
    metrics: dict[str, float] = {"loss": loss_sum / total, "accuracy": correct / total}
    if known:
        metrics["known_accuracy"] = (correct - unknown_correct) / known
    if unknown:
        metrics["unknown_accuracy"] = unknown_correct / unknown
    metrics["words"] = int(total)
    metrics["unknown_words"] = int(unknown)
    for i, tag in enumerate(state["tags"]):
        if per_tag[i]:
            metrics[f"accuracy/{tag}"] = float(per_tag_hit[i]) / float(per_tag[i])
    return metrics


def tag_sentences(
    module: LSTMTagger, sentences: list[list[str]], state: dict[str, Any], batch_size: int = 256
) -> list[list[str]]:
    """Tags for whitespace-free word lists, batched by similar length (order kept)."""
    words_vocab, tags = Vocab(state["words"]), Vocab(state["tags"], unk=None)
    lowercase = bool(state.get("lowercase"))
    chars = CharEncoder(state.get("chars")) if module.char_encoder != "none" else None
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    result: list[list[str]] = [[] for _ in sentences]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        group = [sentences[i] for i in idx]
        batch = {
            "words": pad(
                [words_vocab.encode(w.lower() if lowercase else w for w in ws) for ws in group], 0
            ),
            "lengths": torch.tensor([len(ws) for ws in group]),
        }
        if chars is not None:
            batch.update(chars.batch(group))
        device = next(module.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        best = scores_of(module, batch).argmax(-1).tolist()
        for i, ws, ids in zip(idx, group, best):
            result[i] = tags.decode(ids[: len(ws)])
    return result


def predict(
    module: LSTMTagger, inputs: list[str], state: dict[str, Any], task: str, options: Any
) -> list[dict[str, Any]]:
    """Each input is a sentence, split on whitespace; returns word/TAG pairs."""
    sentences = [s.split() for s in inputs]
    for i, words in enumerate(sentences):
        if not words:
            raise UsageError(f"input {i + 1} is empty: give a sentence of words")
    batch_size = options.batch_size if options is not None else 256
    predicted = tag_sentences(module, sentences, state, batch_size)
    return [_result(words, tags) for words, tags in zip(sentences, predicted)]


def _result(words: list[str], tags: list[str]) -> dict[str, Any]:
    pairs = list(zip(words, tags))
    return {
        "input": " ".join(words),
        "output": [list(p) for p in pairs],
        "text": " ".join(f"{w}/{t}" for w, t in pairs),
    }


def predict_file(
    module: LSTMTagger, path: str, state: dict[str, Any], task: str, options: Any
) -> tuple[str, list[dict[str, Any]]]:
    """Tag a CoNLL-U file (fill the column the model was trained on, every other byte kept) or
    plain text (one sentence a line, whitespace-tokenised; blank lines stay blank)."""
    from . import conllu

    with reading_input(path):
        text = conllu.read_text(path)
    batch_size = options.batch_size if options is not None else 256
    if conllu.looks_like_conllu(text):
        column = state.get("column", "upos")
        sentences = conllu.parse(text, path, column, require_tags=False)
        tags = tag_sentences(module, [s.words for s in sentences], state, batch_size)
        out = conllu.with_tags(text, sentences, tags, column)
        return out, [_result(s.words, t) for s, t in zip(sentences, tags)]
    lines = conllu.split_lines(text)
    words = [line.split() for line in lines]
    filled = [i for i, ws in enumerate(words) if ws]
    tags = tag_sentences(module, [words[i] for i in filled], state, batch_size)
    results = [_result(words[i], t) for i, t in zip(filled, tags)]
    rendered = [""] * len(lines)
    for i, r in zip(filled, results):
        rendered[i] = r["text"]
    return "".join(line + "\n" for line in rendered), results
