"""Plugin code that raises or returns the wrong thing: one line naming the plugin, exit 1.

A plugin misbehaves in its network's methods (or in what builds the network, or in its
dataset's loader); `ZOO_DEBUG=1` brings the original traceback back, for the plugin's author.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import ScriptedConfig, scripted_registry
from zoo.core.errors import PluginError
from zoo.training.guard import Checked


def shaky(**misbehaviour):
    """The scripted plugin as distribution zoo-shaky 0.3, misbehaving as asked."""
    registry, _ = scripted_registry(
        name="shaky", distribution="zoo-shaky", version="0.3", **misbehaviour
    )
    return registry


def boom(*args, **kwargs):
    raise ValueError("plugin bug")


CASES = [
    ({"implementation": boom}, "failed in building the network: ValueError: plugin bug"),
    ({"__init__": boom}, "failed in building the network: ValueError: plugin bug"),
    (
        {"implementation": lambda config, state: "not a module"},
        "building the network returned str, not a zoo.Network",
    ),
    (
        {"implementation": lambda config, state: torch.nn.Linear(1, 1)},
        "building the network returned Linear, a torch.nn.Module but not a zoo.Network",
    ),
    ({"loss": boom}, "failed in loss: ValueError: plugin bug"),
    ({"loss": lambda self, batch: 1.5}, "loss returned float, not a one-element tensor"),
    (
        {"loss": lambda self, batch: self.layer(batch["x"]).sum().detach()},
        "does not require grad",
    ),
    ({"evaluate": boom}, "failed in evaluate: ValueError: plugin bug"),
    ({"evaluate": lambda self, batches: [1, 2]}, "evaluate returned list, not a dict of metrics"),
    (
        {"evaluate": lambda self, batches: {"loss": "low"}},
        "metric 'loss' = str, not a number",
    ),
    (
        {"initialise": boom},
        "failed in initialise: ValueError: plugin bug",
    ),
    ({"loader": boom}, "dataset 'toy' (zoo-shaky 0.3) failed in load: ValueError: plugin bug"),
    ({"loader": lambda c, s: [1, 2]}, "loader returned list, expected zoo.data.Data"),
]


@pytest.mark.parametrize(("misbehaviour", "message"), CASES)
def test_run_names_the_plugin_and_what_went_wrong(zoo, use_registry, misbehaviour, message):
    use_registry(shaky(**misbehaviour))
    r = zoo("run", "shaky", "--epochs", "1", "-q")
    assert r.code == 1, r.stdout
    line = r.error_line()
    assert message in line
    if "loader" not in misbehaviour:
        assert "architecture 'shaky' (zoo-shaky 0.3)" in line


@pytest.mark.parametrize(
    ("misbehaviour", "message"),
    [
        ({"predict": lambda self, inputs, options: {"not": "a list"}}, "predict returned dict"),
        ({"predict": lambda self, inputs, options: ["text"]}, "predict returned list, not a list"),
        ({"predict": boom}, "failed in predict: ValueError: plugin bug"),
    ],
)
def test_predict_misbehaving(zoo, use_registry, tmp_path, misbehaviour, message):
    use_registry(shaky(**misbehaviour))
    model = tmp_path / "m.safetensors"
    assert zoo("run", "shaky", "--epochs", "1", "-q", "--out", model).code == 0
    r = zoo("predict", model, "1")
    assert r.code == 1 and message in r.error_line()
    assert "architecture 'shaky' (zoo-shaky 0.3)" in r.error_line()


def test_predict_file_returning_the_wrong_type(zoo, use_registry, tmp_path):
    use_registry(shaky(predict_file=lambda self, file, options: ["not", "a pair"]))
    model = tmp_path / "m.safetensors"
    assert zoo("run", "shaky", "--epochs", "1", "-q", "--out", model).code == 0
    inputs = tmp_path / "in.txt"
    inputs.write_text("1\n2\n")
    r = zoo("predict", model, "--input", inputs)
    assert r.code == 1
    assert "predict_file returned list, not (text, predictions)" in r.error_line()
    assert "architecture 'shaky' (zoo-shaky 0.3)" in r.error_line()


def test_a_model_file_whose_network_no_longer_builds(zoo, use_registry, tmp_path):
    """The plugin was fine when the model was saved; a newer version breaks in building."""
    use_registry(shaky())
    model = tmp_path / "m.safetensors"
    assert zoo("run", "shaky", "--epochs", "1", "-q", "--out", model).code == 0
    use_registry(shaky(implementation=boom))
    r = zoo("predict", model, "1")
    assert r.code == 1
    assert f"{model}: cannot rebuild the network" in r.error_line()
    assert "architecture 'shaky' (zoo-shaky 0.3) failed in building the network" in r.error_line()


def test_zoo_debug_shows_the_original_exception(zoo, use_registry, monkeypatch):
    use_registry(shaky(implementation=boom))
    r = zoo("run", "shaky", "-q")
    assert "ZOO_DEBUG=1 shows the traceback" in r.error_line()
    monkeypatch.setenv("ZOO_DEBUG", "1")
    with pytest.raises(Exception, match="plugin bug"):
        zoo("run", "shaky", "-q")


def test_a_loss_computed_under_no_grad_is_not_called_detached():
    """Benchmarks and evaluation code call loss under torch.no_grad: that is not a plugin bug."""
    network = shaky().network_class("shaky", "toy")(ScriptedConfig(), {})
    batch = {"x": torch.ones(2, 1), "y": torch.zeros(2, 1)}
    with torch.no_grad():
        assert Checked(network, "shaky").loss(batch).requires_grad is False
    detached = shaky(loss=lambda self, batch: self.layer(batch["x"]).sum().detach())
    network = detached.network_class("shaky", "toy")(ScriptedConfig(), {})
    with pytest.raises(PluginError, match="does not require grad"):
        Checked(network, "shaky").loss(batch)


def too_big(*args, **kwargs):
    """torch's own allocator refusing, as on a machine out of memory: 4 EiB at once, more
    than any address space holds, whatever the kernel's overcommit policy."""
    return torch.empty(1 << 62, dtype=torch.uint8)


def test_running_out_of_memory_is_said_as_such_not_as_a_bug(zoo, use_registry, monkeypatch):
    """Out of memory in a plugin's method, or in zoo's own step, is one line saying so and
    what to change, exit 1: not `failed in loss` nor `internal error ... a bug`."""
    use_registry(shaky(loss=too_big))
    r = zoo("run", "shaky", "--epochs", "1")
    assert r.code == 1
    line = r.error_line()
    assert line.startswith(
        "Error: out of memory: could not allocate 4,611,686,018,427,387,904 bytes more; lower the "
        "batch size (--batch-size)"
    ), line
    use_registry(shaky())
    from zoo.training import trainer

    monkeypatch.setattr(trainer, "make_optimizer", too_big)  # zoo's code, not the plugin's
    r = zoo("run", "shaky", "--epochs", "1")
    assert r.code == 1 and r.error_line().startswith("Error: out of memory: could not allocate")


def test_what_counts_as_out_of_memory():
    from zoo.core.errors import out_of_memory

    cuda = RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total)")
    assert "CUDA out of memory" in str(out_of_memory(cuda))
    assert "Python could not allocate memory" in str(out_of_memory(MemoryError()))
    assert out_of_memory(RuntimeError("shape mismatch")) is None
    assert out_of_memory(ValueError("can't allocate memory")) is None
