"""The tagger as an ONNX graph (`zoo export`, docs/export.md): word ids and character ids in,
tag scores out, for any batch and sentence length.

The graph computes what `LSTMTagger.forward` does in evaluation (output `scores`, the tag
column's) and, for a tagger with auxiliary output layers among UPOS, XPOS and FEATS (the EWT
recipe's XPOS and FEATS), each of those columns' scores from the same BiLSTM output
(`xpos_scores`, `feats_scores`), so the runtime fills the columns `zoo predict` fills. The
settings name them: `column`, the tag column, and `columns`, `[{"column": "upos", "output":
"scores"}, {"column": "xpos", "output": "xpos_scores"}, ...]` in file order; a column's tags
are the data state's `tags` for the tag column, its `aux_tags.COLUMN` for the others. A plain
tagger's file has `scores` alone and neither setting, as before.

It is written with operations that export as they are: the character CNN as a convolution
(forward's windows-times-weights form is the same numbers, chosen there for memory in
training), the character BiLSTM and the main LSTM through `zoo.padded` (exact on right-padded
batches, no packing). What turns words into ids (lower-casing, the vocabularies,
begin/end-of-word symbols, clipping long forms) is the runtime's recipe `tagger`, reading the
data state the file carries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.toolkit import padded
from zoo.toolkit.exportspec import ExportSpec, Graph

from .data import BOW, EOW, MAX_WORD_CHARS, input_encoder


class TaggerGraph(nn.Module):
    """forward(words, lengths[, chars, char_lengths, forms]) -> scores [batch, time, tags],
    then one [batch, time, values] per auxiliary column of `aux` (names of `aux_out` layers)."""

    def __init__(self, tagger: Any, aux: list[str]):
        super().__init__()
        self.tagger = tagger
        self.aux = aux

    def char_features(self, chars: torch.Tensor, char_lengths: torch.Tensor | None) -> torch.Tensor:
        """chars [U, L] -> [U, features], as LSTMTagger.char_features."""
        net = self.tagger
        x = net.char_embedding(chars)
        if net.char_encoder == "cnn":
            cnn = net.char_cnn
            h = F.conv1d(x.transpose(1, 2), cnn.weight, cnn.bias, padding=cnn.padding)
            h = h.transpose(1, 2).masked_fill((chars == 0).unsqueeze(2), float("-inf"))
            return torch.tanh(h.amax(dim=1))
        out = padded.run(net.char_lstm, x, char_lengths)  # [U, L, 2H]
        hidden = net.char_lstm.hidden_size
        last = (char_lengths - 1).view(-1, 1, 1).expand(-1, 1, hidden)
        forward = out[:, :, :hidden].gather(1, last).squeeze(1)  # at each form's last character
        return torch.cat([forward, out[:, 0, hidden:]], dim=-1)  # backward ends at the first

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, *chars: torch.Tensor):
        """chars: (chars, char_lengths, forms) for a char LSTM, (chars, forms) for a CNN."""
        net = self.tagger
        x = net.embedding(words)
        if chars:
            ids, forms = chars[0], chars[-1]
            features = self.char_features(ids, chars[1] if len(chars) == 3 else None)
            x = torch.cat([x, features[forms]], dim=-1)
        hidden = padded.run(net.lstm, x, lengths)
        if not self.aux:
            return net.out(hidden)
        return (net.out(hidden), *(net.aux_out[name](hidden) for name in self.aux))


def export_spec(tagger: Any) -> ExportSpec:
    """The tagger's graph, traced on two sentences of different lengths."""
    reads_chars = tagger.char_encoder != "none"
    encode = input_encoder(tagger.state, chars=reads_chars)
    words = tagger.state["words"]
    example = [words[2:7] or ["a"] * 5, words[7:10] or ["b"] * 3]
    batch = encode(example)
    names = ["words", "lengths"]
    if reads_chars:  # the CNN reads no lengths: its padding is masked by character id 0
        names += ["chars", "char_lengths", "forms"] if tagger.char_encoder == "lstm" else []
        names += ["chars", "forms"] if tagger.char_encoder == "cnn" else []
    inputs = {name: batch[name] for name in names}
    aux = [c for c in tagger.predicted_columns() if c != tagger.column]
    outputs = ["scores", *(f"{name}_scores" for name in aux)]
    dynamic = {
        "words": {0: "batch", 1: "time"},
        "lengths": {0: "batch"},
        "chars": {0: "forms", 1: "characters"},
        "char_lengths": {0: "forms"},
        "forms": {0: "batch", 1: "time"},
        **{name: {0: "batch", 1: "time"} for name in outputs},
    }
    settings: dict[str, Any] = {
        "chars": reads_chars,
        "begin_word": BOW,
        "end_word": EOW,
        "max_word_chars": MAX_WORD_CHARS,
        "batch_size": 256,
    }
    if aux:  # only then: a file of a plain tagger stays as it was
        settings["column"] = tagger.column
        settings["columns"] = [  # a list: the metadata's JSON sorts the keys of objects
            {"column": name, "output": "scores" if name == tagger.column else f"{name}_scores"}
            for name in tagger.predicted_columns()
        ]
    graph = Graph(
        TaggerGraph(tagger, aux),
        inputs,
        outputs,
        {k: v for k, v in dynamic.items() if k in [*names, *outputs]},
    )
    return ExportSpec("tagger", [graph], settings)
