"""zoo.padded against pack_padded_sequence: the same outputs and gradients for every torch
recurrent layer, direction and depth, whatever the lengths; and the tagger gives the same tag
scores whichever way its BiLSTM runs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import zoo
from zoo.toolkit import cells, padded

pytestmark = pytest.mark.usefixtures("one_thread")


def through_packing(layer: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(layer(packed)[0], batch_first=True, total_length=x.shape[1])
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["LSTM", "GRU", "RNN"]),
    bidirectional=st.booleans(),
    num_layers=st.integers(1, 3),
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5),
    bias=st.booleans(),
)
def test_padded_run_equals_packed(kind, bidirectional, num_layers, lengths, bias):
    torch.manual_seed(len(lengths) * 7 + num_layers)
    layer = getattr(nn, kind)(
        4, 3, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=True
    ).double()
    lengths_t = torch.tensor(lengths)
    x = torch.randn(len(lengths), max(lengths), 4, dtype=torch.double)
    # Padding that is not zero: it must not leak into any real position either way.
    x[torch.arange(max(lengths)).unsqueeze(0) >= lengths_t.unsqueeze(1)] = 5.0
    weights = torch.randn(len(lengths), max(lengths), 3 * (2 if bidirectional else 1)).double()
    results = []
    for run in (through_packing, padded.run):
        xi = x.clone().requires_grad_()
        out = run(layer, xi, lengths_t)
        grads = torch.autograd.grad((out * weights).sum(), [xi, *layer.parameters()])
        results.append((out, grads))
    (a, grads_a), (b, grads_b) = results
    assert a.shape == b.shape
    torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-10)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(gb, ga, atol=1e-12, rtol=1e-10)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    layer = nn.LSTM(4, 3, num_layers=2, dropout=0.5, bidirectional=True, batch_first=True)
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 2, 4])
    layer.eval()
    torch.testing.assert_close(padded.run(layer, x, lengths), through_packing(layer, x, lengths))
    layer.train()
    first, second = padded.run(layer, x, lengths), padded.run(layer, x, lengths)
    assert not torch.equal(first, second)  # a different dropout mask each call
    assert torch.all(first[1, 2:] == 0)  # padding stays zero


def test_supports_torch_layers_only():
    assert padded.supports(nn.LSTM(2, 3, batch_first=True))
    assert padded.supports(nn.GRU(2, 3, batch_first=True))
    assert not padded.supports(nn.LSTM(2, 3, proj_size=2, batch_first=True))
    assert not padded.supports(cells.recurrent_layer("lstm", "cells", 2, 3, batch_first=True))
    with pytest.raises(ValueError, match="batch_first"):
        padded.run(nn.LSTM(2, 3), torch.randn(4, 1, 2), torch.tensor([4]))


def test_reverse_index_keeps_padding_in_place():
    index = padded.reverse_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]


def test_tagger_scores_do_not_depend_on_the_path():
    """The tagger's BiLSTM runs through padded.run; the same weights through packing (the
    zoo.cells implementation, which packs) give the same tag scores."""
    fast = zoo.create("lstm-tagger", num_layers=2, hidden_size=8, embedding_dim=8, seed=3)
    slow = zoo.create(
        "lstm-tagger", num_layers=2, hidden_size=8, embedding_dim=8, seed=3, impl="cells"
    )
    slow.module.load_state_dict(fast.module.state_dict())
    fast.module.eval(), slow.module.eval()
    batch = fast.data.collate(list(fast.data.splits["train"][:6]))
    assert len(set(batch["lengths"].tolist())) > 1  # rows of different lengths
    with torch.no_grad():
        a = fast.module.scores(batch)
        b = slow.module.scores(batch)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def lstm_through_onednn(layer: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor):
    """padded.run with each layer and direction through torch.lstm (oneDNN reordering the
    weights at each call), as before weights were packed once."""
    real = padded._packable
    padded._packable = lambda *args: False
    try:
        return padded.run(layer, x, lengths)
    finally:
        padded._packable = real


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
@pytest.mark.parametrize("batch", [1, 5, 33])
def test_inference_with_packed_lstm_weights_is_bit_identical(batch):
    """Eval mode without autograd: the weights go to oneDNN packed once, and every output is
    the very number torch's own LSTM call gives, whatever the batch, lengths and depth."""
    torch.manual_seed(batch)
    layer = nn.LSTM(12, 24, num_layers=2, bidirectional=True, batch_first=True).eval()
    for steps in (1, 7, 30):
        lengths = torch.randint(1, steps + 1, (batch,))
        lengths[0] = steps
        x = torch.randn(batch, steps, 12)
        with torch.no_grad():
            assert torch.equal(
                padded.run(layer, x, lengths), lstm_through_onednn(layer, x, lengths)
            )
    assert layer in padded._PACKED


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_packed_weights_follow_the_weights():
    """Weights changed in place (an optimizer step, load_state_dict) or replaced are packed
    again; training and autograd never use the packed copy."""
    torch.manual_seed(0)
    layer = nn.LSTM(6, 8, bidirectional=True, batch_first=True).eval()
    x, lengths = torch.randn(3, 5, 6), torch.tensor([5, 3, 1])
    with torch.no_grad():
        before = padded.run(layer, x, lengths)
        layer.weight_hh_l0_reverse.add_(0.5)
        changed = padded.run(layer, x, lengths)
        assert not torch.equal(changed, before)
        assert torch.equal(changed, lstm_through_onednn(layer, x, lengths))
        layer.weight_ih_l0 = nn.Parameter(layer.weight_ih_l0 * 2)
        assert torch.equal(padded.run(layer, x, lengths), lstm_through_onednn(layer, x, lengths))
    padded._PACKED.pop(layer)
    out = padded.run(layer, x.requires_grad_(), lengths)  # autograd: torch's own call
    assert out.requires_grad and layer not in padded._PACKED
