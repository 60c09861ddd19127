"""`--set impl=torch|cells` on the tagger, the seq2seq model and the regressor: same seed, same
weights after training; a file saved with one implementation loads and predicts with the other.
(The Elman RNN has its own, fuller, tests in test_cells_elman.py.)"""

from __future__ import annotations

import pytest
import torch

import zoo
from zoo.toolkit import cells

# Small trainings: a few steps are enough to show that the two implementations follow the
# same trajectory (a wrong gate or gradient shows up at the first step).
CASES = {
    "lstm-tagger": ({"epochs": 3}, "the dog ate the apple"),
    "rnn-seq2seq": ({"epochs": 3}, "hello"),
    "gru-regressor": ({"epochs": 2, "num_windows": 200}, "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9"),
}
VARIANTS = {
    "lstm-tagger": {"char_encoder": "lstm"},
    "rnn-seq2seq": {"cell": "gru", "attention": "bahdanau", "bidirectional": True},
    "gru-regressor": {"decoder": "seq2seq", "num_layers": 2},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def recurrent_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, (torch.nn.RNNBase, cells.Recurrent))]


@pytest.mark.parametrize("variant", [False, True], ids=["default", "variant"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_both_implementations_train_to_the_same_model(name, variant):
    settings, _ = CASES[name]
    settings = {**settings, **(VARIANTS[name] if variant else {})}
    models = {}
    for impl in ("torch", "cells"):
        model = zoo.create(name, impl=impl, seed=3, **settings)
        kinds = {type(m) for m in recurrent_layers(model.module)}
        expected = cells.Recurrent if impl == "cells" else torch.nn.RNNBase
        assert kinds and all(issubclass(k, expected) for k in kinds), kinds
        result = zoo.train(model)
        assert result.steps > 0
        models[impl] = model
    a, b = models["torch"].module.state_dict(), models["cells"].module.state_dict()
    assert list(a) == list(b)
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, atol=2e-4, rtol=1e-3, msg=key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_file_saved_with_torch_layers_predicts_the_same_through_cells(tmp_path, name):
    settings, example = CASES[name]
    model = zoo.create(name, **settings)
    zoo.train(model)
    path = tmp_path / "m.safetensors"
    zoo.save(model, path)
    fused, stepped = zoo.load(path), zoo.load(path, config={"impl": "cells"})
    assert stepped.config.impl == "cells" and recurrent_layers(stepped.module)
    assert all(isinstance(m, cells.Recurrent) for m in recurrent_layers(stepped.module))
    out_fused, out_stepped = zoo.predict(fused, example), zoo.predict(stepped, example)
    if name == "gru-regressor":
        values = [v for row in out_fused for v in row["output"]]
        others = [v for row in out_stepped for v in row["output"]]
        assert values == pytest.approx(others, abs=1e-4)
    else:
        assert out_fused == out_stepped
