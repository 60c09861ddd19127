"""zoo.cells against PyTorch: same state dicts, same outputs, same gradients, same initial
weights; and the numpy teaching example's published numbers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from zoo.toolkit import cells

KINDS = ["rnn", "lstm", "gru"]
TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
OUR_CELLS = {"rnn": cells.ElmanCell, "lstm": cells.LSTMCell, "gru": cells.GRUCell}
TOL = {"atol": 1e-5, "rtol": 1e-5}


pytestmark = pytest.mark.usefixtures("one_thread")


def pair(kind: str, **kwargs):
    """The torch layer and the zoo.cells layer, built on the same seed."""
    torch.manual_seed(1234)
    ours = cells.recurrent_layer(kind, "cells", **kwargs)
    torch.manual_seed(1234)
    theirs = cells.recurrent_layer(kind, "torch", **kwargs)
    return theirs, ours


def states(h) -> tuple[torch.Tensor, ...]:
    return h if isinstance(h, tuple) else (h,)


def run(layer, x, lengths, hx, batch_first, packed):
    """Output (padded), final states, and the gradients of a loss touching all of them."""
    x = x.clone().requires_grad_()
    hx = tuple(s.clone().requires_grad_() for s in hx) if hx is not None else None
    inp = (
        pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
        if packed
        else x
    )
    initial = None if hx is None else (hx if len(hx) == 2 else hx[0])
    out, h = layer(inp, initial)
    if packed:
        out, _ = pad_packed_sequence(out, batch_first=batch_first)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * weights).sum() + sum((s**2).sum() for s in states(h))
    layer.zero_grad()
    loss.backward()
    grads = [x.grad] + ([s.grad for s in hx] if hx is not None else [])
    grads += [p.grad for p in layer.parameters()]
    return out.detach(), [s.detach() for s in states(h)], grads


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    kind=st.sampled_from(KINDS),
    nonlinearity=st.sampled_from(["tanh", "relu"]),
    input_size=st.integers(1, 6),
    hidden_size=st.integers(1, 7),
    num_layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    packed=st.booleans(),
    with_hx=st.booleans(),
    bias=st.booleans(),
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_layers_match_torch_outputs_states_and_gradients(
    kind,
    nonlinearity,
    input_size,
    hidden_size,
    num_layers,
    bidirectional,
    batch_first,
    packed,
    with_hx,
    bias,
    lengths,
    seed,
):
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    theirs, ours = pair(
        kind,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        **extra,
    )
    g = torch.Generator().manual_seed(seed)
    steps, batch = max(lengths), len(lengths)
    shape = (batch, steps, input_size) if batch_first else (steps, batch, input_size)
    x = torch.randn(*shape, generator=g)
    hx = None
    if with_hx:
        h_shape = (num_layers * (2 if bidirectional else 1), batch, hidden_size)
        hx = tuple(torch.randn(*h_shape, generator=g) for _ in range(2 if kind == "lstm" else 1))
    lengths_t = torch.tensor(lengths)
    out_t, h_t, g_t = run(theirs, x, lengths_t, hx, batch_first, packed)
    out_c, h_c, g_c = run(ours, x, lengths_t, hx, batch_first, packed)
    torch.testing.assert_close(out_c, out_t, **TOL)
    for a, b in zip(h_c, h_t):
        torch.testing.assert_close(a, b, **TOL)
    assert len(g_c) == len(g_t)
    for a, b in zip(g_c, g_t):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_same_state_dict_names_shapes_and_initial_weights(kind, bidirectional):
    theirs, ours = pair(
        kind, input_size=3, hidden_size=5, num_layers=3, bidirectional=bidirectional
    )
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)  # same names, same order
    assert "weight_hh_l2_reverse" in a if bidirectional else "weight_hh_l2" in a
    for name in a:
        assert torch.equal(a[name], b[name]), name  # same seed, same draws
    ours.load_state_dict(theirs.state_dict())  # and back: strict by default
    theirs.load_state_dict(ours.state_dict())
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [
        [w.shape for w in ws] for ws in theirs.all_weights
    ]
    ours.flatten_parameters()  # accepted, as code written for torch's layers calls it


@pytest.mark.parametrize("kind", KINDS)
def test_cells_match_torch_cells_and_share_state_dicts(kind):
    torch.manual_seed(0)
    theirs = TORCH_CELLS[kind](4, 6)
    ours = OUR_CELLS[kind](4, 6)
    ours.load_state_dict(theirs.state_dict())
    assert list(ours.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    x = torch.randn(3, 4)
    hx = (torch.randn(3, 6), torch.randn(3, 6)) if kind == "lstm" else torch.randn(3, 6)
    for state in (None, hx):
        a, b = theirs(x, state), ours(x, state)
        for u, v in zip(states(a), states(b)):
            torch.testing.assert_close(v, u, **TOL)
    # one example without a batch dimension, as nn.*Cell allow
    for u, v in zip(states(theirs(x[0])), states(ours(x[0]))):
        torch.testing.assert_close(v, u, **TOL)
        assert v.shape == (6,)
    # and the other way: our initialisation, loaded into torch's cell
    theirs.load_state_dict(OUR_CELLS[kind](4, 6).state_dict())


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_and_no_bias(kind):
    theirs, ours = pair(kind, input_size=2, hidden_size=3, num_layers=2, bias=False)
    assert not any("bias" in n for n in ours.state_dict())
    x = torch.randn(5, 2)
    (out_t, h_t), (out_c, h_c) = theirs(x), ours(x)
    torch.testing.assert_close(out_c, out_t, **TOL)
    for a, b in zip(states(h_c), states(h_t)):
        torch.testing.assert_close(a, b, **TOL)
        assert a.shape == (2, 3)


def test_dropout_between_layers_only_when_training():
    theirs, ours = pair("gru", input_size=3, hidden_size=4, num_layers=2, dropout=0.5)
    x = torch.randn(7, 2, 3)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], **TOL)
    ours.train()
    torch.manual_seed(0)
    first = ours(x)[0]
    torch.manual_seed(1)
    assert not torch.allclose(first, ours(x)[0])  # a different mask: dropout is on
    one_layer = cells.GRU(3, 4, num_layers=1)
    torch.testing.assert_close(one_layer.train()(x)[0], one_layer.eval()(x)[0])


def test_numpy_example_published_numbers():
    """The numpy simple-recurrent-network post: weights 1, biases 0, hidden size 2, inputs
    [1,1],[1,1],[2,2], and a read-out summing the hidden units."""
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    expected = {"identity": [4.0, 12.0, 32.0], "tanh": [1.9281, 1.9985, 2.0000]}
    for nonlinearity, values in expected.items():
        layer = cells.RNN(2, 2, nonlinearity=nonlinearity)
        cell = cells.ElmanCell(2, 2, nonlinearity=nonlinearity)
        for module in (layer, cell):
            with torch.no_grad():
                for name, p in module.named_parameters():
                    p.fill_(1.0 if name.startswith("weight") else 0.0)
        out, _ = layer(x)
        assert out.sum(-1).tolist() == pytest.approx(values, abs=5e-5)
        h, readouts = None, []
        with torch.no_grad():
            for step in x:
                h = cell(step, h)
                readouts.append(float(h.sum()))
        assert readouts == pytest.approx(values, abs=5e-5)


def test_factory_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="kind 'transformer'"):
        cells.recurrent_layer("transformer", "cells", 2, 3)
    with pytest.raises(ValueError, match="impl 'cuda'"):
        cells.recurrent_layer("gru", "cuda", 2, 3)
    with pytest.raises(ValueError, match="use impl='cells'"):
        cells.recurrent_layer("rnn", "torch", 2, 3, nonlinearity="identity")
    with pytest.raises(ValueError, match="proj_size"):
        cells.recurrent_layer("lstm", "cells", 2, 3, proj_size=2)
    assert isinstance(cells.recurrent_layer("elman", "cells", 2, 3), cells.RNN)
    assert isinstance(cells.recurrent_layer("LSTM", "torch", 2, 3), nn.LSTM)
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        cells.GRU(2, 3)(torch.randn(4, 1, 2), torch.zeros(1, 2, 3))


def test_builds_on_the_meta_device_as_zoo_does_when_loading():
    with torch.device("meta"):
        layer = cells.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert all(p.is_meta for p in layer.parameters())
    assert {k: v.shape for k, v in layer.state_dict().items()} == {
        k: v.shape for k, v in nn.LSTM(3, 4, num_layers=2, bidirectional=True).state_dict().items()
    }


def test_record_gates_per_step_in_batch_order():
    torch.manual_seed(0)
    model = nn.Sequential(cells.LSTM(2, 3, num_layers=2, bidirectional=True))
    x = torch.randn(5, 3, 2)  # time, batch, features
    lengths = torch.tensor([2, 5, 3])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    with cells.record_gates(model) as trace:
        (_, (h_n, c_n)) = model(packed)
    assert model[0].recording is None  # switched off again
    assert len(trace) == 4  # 2 layers x 2 directions
    first = trace[0]
    assert first["module"] == "0" and (first["layer"], first["direction"]) == (0, 0)
    gates = first["gates"]
    assert set(gates) == {"i", "f", "g", "o", "c"}
    assert gates["i"].shape == (5, 3, 3)  # time, batch, hidden
    for b, n in enumerate(lengths.tolist()):
        # the cell state at each sequence's own last step is its final c of layer 0
        torch.testing.assert_close(gates["c"][n - 1, b], c_n[0, b])
        h_last = gates["o"][n - 1, b] * torch.tanh(gates["c"][n - 1, b])
        torch.testing.assert_close(h_last, h_n[0, b])  # h' = o * tanh(c')
        assert bool((gates["i"][n:, b] == 0).all())  # nothing recorded past the end
    assert bool(((gates["i"] >= 0) & (gates["i"] <= 1)).all())
