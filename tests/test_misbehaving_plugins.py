"""Plugin code that raises or returns the wrong thing: one line naming the plugin, exit 1.

`ZOO_DEBUG=1` brings the original traceback back, for the plugin's author.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest
import torch

from zoo import Architecture, Dataset, hookimpl, param
from zoo.data import Data
from zoo.errors import PluginError
from zoo.registry import Registry


@dataclass
class Cfg:
    width: int = param(1, "width")


def good_impl():
    def build(config, state, task):
        return torch.nn.Linear(1, 1)

    def loss(module, batch):
        return module(batch["x"]).pow(2).mean()

    def evaluate(module, batches, state, task):
        return {"loss": float(sum(module(b["x"]).pow(2).mean() for b in batches))}

    def predict(module, inputs, state, task, options):
        return [{"input": i, "output": 0.0, "text": "0"} for i in inputs]

    return dict(build=build, loss=loss, evaluate=evaluate, predict=predict)


def good_loader(config, state):
    xs = [[float(i)] for i in range(6)]
    return Data(
        state={}, splits={"train": xs, "test": xs}, collate=lambda ex: {"x": torch.tensor(ex)}
    )


def registry_with(loader=good_loader, **overrides):
    impl = types.SimpleNamespace(**{**good_impl(), **overrides})
    plugin = types.SimpleNamespace()

    @hookimpl
    def register_architectures(register):
        register(
            Architecture(
                name="shaky",
                description="",
                tasks=("toy",),
                config=Cfg,
                default_dataset="toy",
                implementation=impl,
            )
        )

    @hookimpl
    def register_datasets(register):
        register(Dataset(name="toy", description="", task="toy", config=Cfg, loader=loader))

    plugin.register_architectures, plugin.register_datasets = (
        register_architectures,
        register_datasets,
    )
    return Registry.from_plugins([(plugin, "shaky", "zoo-shaky", "0.3")])


def boom(*args, **kwargs):
    raise ValueError("plugin bug")


CASES = [
    ({"build": boom}, "failed in build: ValueError: plugin bug"),
    ({"build": lambda c, s, t: "not a module"}, "build returned str, not a torch.nn.Module"),
    ({"loss": boom}, "failed in loss: ValueError: plugin bug"),
    ({"loss": lambda m, b: 1.5}, "loss returned float, not a one-element tensor"),
    ({"loss": lambda m, b: m(b["x"]).sum().detach()}, "does not require grad"),
    ({"evaluate": lambda m, b, s, t: [1, 2]}, "evaluate returned list, not a dict of metrics"),
    ({"evaluate": lambda m, b, s, t: {"loss": "low"}}, "metric 'loss' = str, not a number"),
    ({"loader": boom}, "dataset 'toy' (zoo-shaky 0.3) failed in load: ValueError: plugin bug"),
    ({"loader": lambda c, s: [1, 2]}, "loader returned list, expected zoo.data.Data"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_run_names_the_plugin_and_what_went_wrong(zoo, use_registry, overrides, message):
    use_registry(registry_with(**overrides))
    r = zoo("run", "shaky", "--epochs", "1", "-q")
    assert r.code == 1, r.stdout
    line = r.error_line()
    assert message in line
    if "loader" not in overrides:
        assert "architecture 'shaky' (zoo-shaky 0.3)" in line


def test_predict_returning_the_wrong_type(zoo, use_registry, tmp_path):
    use_registry(registry_with(predict=lambda m, i, s, t, o: {"not": "a list"}))
    assert zoo("run", "shaky", "--epochs", "1", "-q", "--out", tmp_path / "m.safetensors").code == 0
    r = zoo("predict", tmp_path / "m.safetensors", "1")
    assert r.code == 1 and "predict returned dict, not a list of dicts" in r.error_line()


def test_zoo_debug_shows_the_original_exception(zoo, use_registry, monkeypatch):
    use_registry(registry_with(build=boom))
    r = zoo("run", "shaky", "-q")
    assert "ZOO_DEBUG=1 shows the traceback" in r.error_line()
    monkeypatch.setenv("ZOO_DEBUG", "1")
    with pytest.raises(Exception, match="plugin bug"):
        zoo("run", "shaky", "-q")


def test_a_loss_computed_under_no_grad_is_not_called_detached():
    """Benchmarks and evaluation code call loss under torch.no_grad: that is not a plugin bug."""
    registry = registry_with()
    impl = registry.implementation("shaky")
    module = impl.build(Cfg(), {}, "toy")
    batch = {"x": torch.ones(2, 1), "y": torch.zeros(2, 1)}
    with torch.no_grad():
        assert impl.loss(module, batch).requires_grad is False
    detached = registry_with(loss=lambda m, b: m(b["x"]).sum().detach()).implementation("shaky")
    with pytest.raises(PluginError, match="does not require grad"):
        detached.loss(module, batch)
