"""The LSTM tagger network: one tag per word of a sentence.

    e_i = [Embedding(word_i) ; CharFeatures(form_i)]      (char CNN or char BiLSTM, optional)
    h_1 .. h_n = LSTM(e_1 .. e_n)                          (stacked, both directions)
    tag_i = argmax(W h_i + b)

With `char_encoder=none bidirectional=false num_layers=1` it is the seed's word-only,
left-to-right tagger. Training replaces words by the unknown word at random (`word_dropout`),
so the unknown word's embedding is learnt and unseen words are tagged from their characters
and context. With the dataset's `aux_columns` (XPOS, FEATS, DEPREL, ...), one more linear
layer per column reads the same h_i (`aux_out.xpos`, ...): the extra targets shape the BiLSTM
in training, and prediction fills the columns a CoNLL-U file can take from them (UPOS, XPOS,
FEATS; not DEPREL, which needs heads) beside the tags; evaluation scores each column learnt
(`xpos_accuracy`, ..., `alltags_accuracy`) as the CoNLL 2018 script would. Tensor names are
torch's own (`embedding.weight`, `char_embedding.weight`, `char_cnn.weight`,
`char_lstm.weight_ih_l0`, `lstm.weight_ih_l0`, `out.weight`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo.core import limits
from zoo.core.errors import SettingError, UsageError
from zoo.toolkit import padded
from zoo.toolkit.cells import recurrent_layer
from zoo.toolkit.data import map_in_length_order, move
from zoo.toolkit.metrics import Tally
from zoo.toolkit.textfile import TextFile
from zoo.toolkit.vocab import Vocab

from . import conllu
from .data import UNK_ID, input_encoder, match_keys

EMBEDDING_STD = 0.1
# What prediction needs beside the weights (LSTMTagger._predicting): the input encoder, and
# each predicted column's output layer and vocabulary. Held beside each network rather than
# on it, so that a network still pickles and copies as a plain module.
Predicting = tuple[
    Callable[[Sequence[Sequence[str]]], dict[str, torch.Tensor]],
    dict[str, nn.Module],
    dict[str, Vocab],
]
_PREDICTING: WeakKeyDictionary[LSTMTagger, Predicting] = WeakKeyDictionary()


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


def file_position(column: str) -> tuple[int, str]:
    """Where a CoNLL-U column comes in a line (a column of another name after them all)."""
    known = conllu.COLUMNS
    return (known.index(column) if column in known else len(known), column)


class LSTMTagger(zoo.Network):
    """Word embeddings and character features, a (Bi)LSTM, a linear tag layer per word. The
    state gives the vocabularies: `words`, `tags` and, for character features, `chars`."""

    input_unit = "words"  # a sentence; long words are cut to their ends (data.clip_form)
    max_input_length = 2_000

    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        reads_chars = config.char_encoder != "none"
        if reads_chars and not state.get("chars"):
            raise SettingError(
                f"char_encoder={config.char_encoder}: the data has no character vocabulary "
                "('chars' in its state); use char_encoder=none"
            )
        self.char_encoder = config.char_encoder
        self.embedding = _embedding(len(state["words"]), config.embedding_dim)
        features = config.embedding_dim
        if reads_chars:
            self.char_embedding = _embedding(len(state["chars"]), config.char_dim)
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
        directions = 2 if config.bidirectional else 1
        self.out = nn.Linear(config.hidden_size * directions, len(state["tags"]))
        aux_tags = state.get("aux_tags", {}) if config.aux_weight > 0 else {}
        if aux_tags:  # auxiliary tasks: trained beside the tags, and predicted (but DEPREL)
            # in file order, whatever the order of the state's keys (a model file's JSON sorts
            # them): a network rebuilt from a checkpoint must be the one that was training
            in_file_order = sorted(aux_tags, key=file_position)
            self.aux_out = nn.ModuleDict(
                {
                    name: nn.Linear(config.hidden_size * directions, len(aux_tags[name]))
                    for name in in_file_order
                }
            )

    # --------------------------------------------------------------------- the network
    def drop_words(self, words: torch.Tensor, counts: torch.Tensor | None) -> torch.Tensor:
        """Replace training words by the unknown word: each with chance `word_dropout`, or
        alpha / (alpha + count) when that is larger (rare words more often: they are the ones
        that look like the unknown words of new text)."""
        word_dropout, alpha = self.config.word_dropout, self.config.unk_alpha
        chance: torch.Tensor | float = word_dropout
        if alpha > 0 and counts is not None:
            chance = torch.clamp(alpha / (alpha + counts.float()), min=word_dropout)
        elif word_dropout <= 0:
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

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        """The inputs of `contexts` -> tag scores [batch, time, tags]."""
        return self.out(self.contexts(*inputs))  # type: ignore[arg-type]

    def contexts(
        self,
        words: torch.Tensor,
        lengths: torch.Tensor,
        chars: torch.Tensor | None = None,
        char_lengths: torch.Tensor | None = None,
        forms: torch.Tensor | None = None,
        counts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The BiLSTM's output for each word [batch, time, features] (after dropout)."""
        if self.training:
            words = self.drop_words(words, counts)
        x = self.embedding(words)
        if self.char_encoder != "none":
            if chars is None or char_lengths is None or forms is None:
                raise UsageError(
                    "this tagger reads characters but the batch has no `chars`: use a dataset "
                    "that gives them (toy-tags, conllu) or train with char_encoder=none"
                )
            x = torch.cat([x, self.char_features(chars, char_lengths)[forms]], dim=-1)
        x = self.dropout(x)
        if padded.supports(self.lstm):
            # faster than packing on CPU: see zoo/toolkit/padded.py
            out = padded.run(self.lstm, x, lengths)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=words.shape[1])
        return self.dropout(out)

    def scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tag scores [batch, time, tags] of a batch as data.py makes them."""
        return self.out(self.batch_contexts(batch))

    def batch_contexts(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.contexts(
            batch["words"],
            batch["lengths"],
            batch.get("chars"),
            batch.get("char_lengths"),
            batch.get("forms"),
            batch.get("counts"),
        )

    # ------------------------------------------------------------------ what zoo asks
    def initialise(self, data: zoo.Data) -> None:
        """Start the word embeddings from `pretrained_vectors` when given (at creation only)."""
        if not self.config.pretrained_vectors:
            return
        from .vectors import read_vectors

        state = data.state
        wanted = {w: i for i, w in enumerate(state["words"]) if i > UNK_ID}
        lowercase = bool(state.get("lowercase"))
        found = read_vectors(
            self.config.pretrained_vectors,
            wanted,
            self.config.embedding_dim,
            (lambda w: w.lower()) if lowercase else (lambda w: w),
        )
        if found:
            rows = torch.tensor(sorted(found))
            with torch.no_grad():
                self.embedding.weight[rows] = torch.tensor([found[int(r)] for r in rows])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the tags, plus `aux_weight` times that of each auxiliary column."""
        hidden = self.batch_contexts(batch)
        smoothing = self.config.label_smoothing
        loss = F.cross_entropy(
            self.out(hidden).flatten(0, 1),
            batch["tags"].flatten(),
            ignore_index=-100,
            label_smoothing=smoothing,
        )
        for name, head in getattr(self, "aux_out", {}).items():
            target = batch.get(f"aux/{name}")
            if target is not None:
                aux = F.cross_entropy(
                    head(hidden).flatten(0, 1), target.flatten(), label_smoothing=smoothing
                )
                loss = loss + self.config.aux_weight * aux
        return loss

    def tally(self, batches: Iterable[dict[str, torch.Tensor]]) -> Tally:
        """The counts `score` needs, batch by batch: the loss summed over scored words, words
        and unknown words (right or not), the tag confusion table, and each auxiliary
        column's right and scored words (ColumnScores). Sums, so that the shares of a split
        scored by several processes merge into the whole split's."""
        tally = Tally()
        confusion = tally.confusion("tags", self.state["tags"])
        columns = ColumnScores(self, tally)
        for batch in batches:
            hidden = self.batch_contexts(batch)
            scores, tags = self.out(hidden), batch["tags"]
            valid = tags != -100
            scored = tags >= 0  # not padding, and a tag the model knows (see data.UNSEEN_TAG)
            tally.add("loss_sum", F.cross_entropy(scores[scored], tags[scored], reduction="sum"))
            predicted = scores.argmax(-1)
            confusion.add(predicted, tags)
            columns.add(hidden, batch, predicted == tags)
            is_unknown = (batch["words"] == UNK_ID) & valid
            tally.add("words", valid.sum())
            tally.add("unknown", is_unknown.sum())
            tally.add("unknown_correct", ((predicted == tags) & is_unknown).sum())
        return tally

    def score(self, tally: Tally) -> dict[str, Any]:
        """Accuracy over all words, on words seen in training (known) and not (unknown), of
        each auxiliary column learnt (`xpos_accuracy`, `feats_accuracy`, ...: ColumnScores),
        and per tag (`recall/NOUN`: the share of the words tagged NOUN in the data that the
        model tagged NOUN; precision, F1 and the confusion matrix beside it)."""
        confusion = tally.confusion("tags", self.state["tags"])
        by_tag = confusion.metrics()
        total, unknown, unknown_correct = tally["words"], tally["unknown"], tally["unknown_correct"]
        correct, known = float(confusion.correct), total - unknown
        metrics: dict[str, Any] = {"loss": tally["loss_sum"] / total}
        metrics["accuracy"] = by_tag.pop("accuracy")
        if known:
            metrics["known_accuracy"] = (correct - unknown_correct) / known
        if unknown:
            metrics["unknown_accuracy"] = unknown_correct / unknown
        metrics.update(ColumnScores(self, tally).metrics())
        metrics["words"] = int(total)
        metrics["unknown_words"] = int(unknown)
        return {**metrics, **by_tag}

    @property
    def column(self) -> str:
        """The CoNLL-U column of the tags (`out`): UPOS unless the data said otherwise."""
        return str(self.state.get("column", "upos"))

    def predicted_columns(self) -> list[str]:
        """The columns this tagger predicts, in file order: its tag column and each auxiliary
        head's among UPOS, XPOS and FEATS (never DEPREL: conllu.PREDICTED_COLUMNS)."""
        heads = getattr(self, "aux_out", {})
        return [c for c in conllu.PREDICTED_COLUMNS if c == self.column or c in heads]

    def tag_columns(
        self, sentences: list[list[str]], batch_size: int = 256
    ) -> list[dict[str, list[str]]]:
        """Each sentence's values of every predicted column, by name in file order (one BiLSTM
        pass feeds all the output layers), batched by similar length, in input order."""
        encode, layers, vocabs = self._predicting()

        def run(group: list[list[str]]) -> list[dict[str, list[str]]]:
            hidden = self.batch_contexts(move(encode(group), self.device))
            best = {name: layer(hidden).argmax(-1).tolist() for name, layer in layers.items()}
            return [
                {name: vocabs[name].decode(best[name][k][: len(words)]) for name in layers}
                for k, words in enumerate(group)
            ]

        return map_in_length_order(run, sentences, batch_size)

    def _predicting(self) -> Predicting:
        """The input encoder, and each predicted column's output layer and values, built once
        per network: building the vocabularies' tables again for every call (EWT: 16,656
        words) took 1.6 ms, a third of the time to tag one sentence."""
        tools = _PREDICTING.get(self)
        if tools is None:
            encode = input_encoder(self.state, chars=self.char_encoder != "none")
            layers: dict[str, nn.Module] = {}
            vocabs: dict[str, Vocab] = {}
            for name in self.predicted_columns():
                main = name == self.column
                layers[name] = self.out if main else self.aux_out[name]
                values = self.state["tags"] if main else self.state["aux_tags"][name]
                vocabs[name] = Vocab(values, unk=None)
            tools = _PREDICTING[self] = (encode, layers, vocabs)
        return tools

    def tag(self, sentences: list[list[str]], batch_size: int = 256) -> list[list[str]]:
        """Tags (the tag column alone) for lists of words, in input order."""
        return [values[self.column] for values in self.tag_columns(sentences, batch_size)]

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        """Each input is a sentence, split on whitespace; returns word/TAG pairs (and, from
        the auxiliary heads, the other columns: `_result`)."""
        sentences = [s.split() for s in inputs]
        for i, words in enumerate(sentences):
            if not words:
                raise UsageError(f"input {i + 1} is empty: give a sentence of words")
        predicted = self.tag_columns(sentences, _batch_size(options))
        return [_result(words, values, self.column) for words, values in zip(sentences, predicted)]

    def export_spec(self) -> Any:
        """The ONNX graph and the runtime's `tagger` recipe (export.py)."""
        from .export import export_spec

        return export_spec(self)

    def predict_file(self, file: TextFile, options: Any) -> tuple[str, list[dict[str, Any]]]:
        """A CoNLL-U file comes back with every column the model predicts filled in (but those
        the `keep_gold` option names), every other byte kept; any other text is one sentence a
        line (zoo's default)."""
        if not conllu.looks_like_conllu(file.text):
            return super().predict_file(file, options)
        sentences = conllu.parse(file.text, file.path, self.column, require_tags=False)
        limits.check_inputs(
            [s.words for s in sentences],
            lambda i: f"{file.path}:{sentences[i].lines[0] + 1}",
            file.path,
        )
        predicted = self.tag_columns([s.words for s in sentences], _batch_size(options))
        kept = conllu.column_names(options.keep_gold if options is not None else "")
        written = {
            name: [values[name] for values in predicted]
            for name in self.predicted_columns()
            if name not in kept
        }
        text = conllu.with_columns(file, sentences, written)
        return text, [_result(s.words, v, self.column) for s, v in zip(sentences, predicted)]


class ColumnScores:
    """Accuracy of each auxiliary output layer against evaluation batches' `gold/NAME` (data.py:
    FEATS compared by universal features, as the CoNLL 2018 script's UFeats), and AllTags, the
    share of words with UPOS, XPOS and FEATS all right, when the tagger learnt all three.
    Counted into a Tally (`right/NAME`, `words/NAME`) so that shares merge."""

    ALL_TAGS = ("upos", "xpos", "feats")

    def __init__(self, tagger: LSTMTagger, tally: Tally):
        self.main = tagger.column
        heads = getattr(tagger, "aux_out", {})
        self.heads = {n: heads[n] for n in sorted(heads, key=conllu.COLUMNS.index)}  # file order
        vocabs = tagger.state.get("aux_tags", {})
        self.keys = {  # a head's value id -> the id of its match key, as gold/NAME holds them
            name: torch.tensor(match_keys(name, vocabs[name])[1], device=tagger.device)
            for name in self.heads
        }
        self.tally = tally

    def add(
        self, hidden: torch.Tensor, batch: dict[str, torch.Tensor], tags_right: torch.Tensor
    ) -> None:
        """Count one batch: `hidden` the BiLSTM's output, `tags_right` where the tags are."""
        right = {self.main: tags_right}
        valid = batch["tags"] != -100
        for name, head in self.heads.items():
            gold = batch.get(f"gold/{name}")
            if gold is not None:
                right[name] = self.keys[name][head(hidden).argmax(-1)] == gold
                self._count(name, right[name] & valid, valid)
        if all(name in right for name in self.ALL_TAGS):
            every = valid & right["upos"] & right["xpos"] & right["feats"]
            self._count("alltags", every, valid)

    def _count(self, name: str, right: torch.Tensor, valid: torch.Tensor) -> None:
        self.tally.add(f"right/{name}", right.sum())
        self.tally.add(f"words/{name}", valid.sum())

    def metrics(self) -> dict[str, float]:
        """`NAME_accuracy` for each column scored, in file order, `alltags_accuracy` last."""
        names = [*self.heads, "alltags"]
        return {
            f"{k}_accuracy": self.tally.ratio(f"right/{k}", f"words/{k}")
            for k in names
            if self.tally[f"words/{k}"]
        }


def _batch_size(options: Any) -> int:
    return options.batch_size if options is not None else 256


def _result(words: list[str], values: dict[str, list[str]], column: str) -> dict[str, Any]:
    """One sentence's prediction: `output` the word/tag pairs of the tag column; for a
    tagger that predicts more columns, `columns` (each column's values by name, in file order)
    and a `text` of word/UPOS/XPOS/FEATS fields (those predicted, in that order)."""
    pairs = list(zip(words, values[column]))
    result: dict[str, Any] = {
        "input": " ".join(words),
        "output": [list(p) for p in pairs],
        "text": " ".join(f"{w}/{t}" for w, t in pairs),
    }
    if len(values) > 1:
        result["columns"] = values
        fields = zip(words, *values.values())
        result["text"] = " ".join("/".join(f) for f in fields)
    return result
