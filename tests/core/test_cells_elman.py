"""`elman-rnn --set impl=torch|cells`: the same weights, the same training, one model file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo.toolkit import cells

pytestmark = pytest.mark.usefixtures("one_thread")


def trained(impl: str, **settings):
    model = zoo.create("elman-rnn", impl=impl, **settings)
    result = zoo.train(model)
    return model, result


@pytest.mark.parametrize(
    ("dataset", "settings"),
    [
        ("sine-cosine", {"epochs": 3, "num_sequences": 64, "hidden_size": 8, "num_layers": 2}),
        ("char-pairs", {}),
        ("text", {"cell": "gru", "epochs": 4, "hidden_size": 16}),
        ("text", {"cell": "lstm", "epochs": 4, "hidden_size": 16, "bptt": 16}),
    ],
)
def test_both_implementations_train_to_the_same_model(dataset, settings):
    (a, ra), (b, rb) = (trained(impl, dataset=dataset, **settings) for impl in ("torch", "cells"))
    assert isinstance(a.module.rnn, nn.RNNBase) and isinstance(b.module.rnn, cells.Recurrent)
    assert ra.steps == rb.steps > 0
    for name, value in a.module.state_dict().items():
        torch.testing.assert_close(b.module.state_dict()[name], value, atol=2e-4, rtol=1e-3)
    split = "valid" if a.data.has("valid") else "train"
    scores_a, scores_b = zoo.evaluate(a, split=split), zoo.evaluate(b, split=split)
    assert scores_a["loss"] == pytest.approx(scores_b["loss"], rel=1e-3, abs=1e-4)
    if dataset == "char-pairs":
        assert a.predict("hello")[0]["output"] == b.predict("hello")[0]["output"] == "ohlol"


@pytest.mark.parametrize("saved_with", ["torch", "cells"])
def test_a_file_saved_with_one_implementation_loads_with_the_other(tmp_path, saved_with):
    other = "cells" if saved_with == "torch" else "torch"
    model = zoo.create("elman-rnn", "text", impl=saved_with, cell="lstm", hidden_size=12, steps=2)
    zoo.train(model)
    path = tmp_path / "lm.safetensors"
    zoo.save(model, path)
    as_saved = zoo.load(path)
    switched = zoo.load(path, config={"impl": other})
    assert as_saved.config.impl == saved_with and switched.config.impl == other
    assert isinstance(switched.module.rnn, cells.Recurrent) == (other == "cells")
    assert list(as_saved.module.state_dict()) == list(switched.module.state_dict())
    options = {"length": 30, "seed": 1}
    assert zoo.predict(as_saved, "To be", **options) == zoo.predict(switched, "To be", **options)
    x = torch.randint(1, len(model.state["vocab"]), (2, 9))
    torch.testing.assert_close(switched.module.run(x)[0], as_saved.module.run(x)[0])


def test_impl_is_a_checked_setting():
    with pytest.raises(zoo.UsageError, match="impl"):
        zoo.create("elman-rnn", impl="numpy")
