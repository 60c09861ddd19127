"""zoo.Network: the default predict_file (one input a line, blank lines kept aligned), the
`device` property, zoo.api.predict_file's atomic output, and a network lacking a method
failing through the API as a PluginError that names the plugin."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import zoo
from tests.conftest import write
from zoo import Architecture, Dataset, hookimpl, param
from zoo.core.errors import PluginError, UsageError
from zoo.core.registry import Registry
from zoo.toolkit.data import Data
from zoo.toolkit.network import Network
from zoo.toolkit.textfile import read_text


class Upper(Network):
    """Predicts each input upper-cased, and remembers what it was asked."""

    def __init__(self, config: Any = None, state: dict[str, Any] | None = None):
        super().__init__(config, state or {})
        self.asked: list[list[str]] = []

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        self.asked.append(list(inputs))
        return [{"input": i, "output": i.upper(), "text": i.upper()} for i in inputs]


class Summing(Upper):
    """Reads all its lines as one input (numbers, one a line): one prediction in all."""

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        self.asked.append(list(inputs))
        total = sum(float(i) for i in inputs)
        return [{"input": inputs, "output": total, "text": f"{total:g}"}]


def predict_file(network: Network, tmp_path: Path, content: str) -> tuple[str, list[Any]]:
    return network.predict_file(read_text(write(tmp_path, "in.txt", content)), None)


# ------------------------------------------------------------------- default predict_file
def test_blank_lines_stay_aligned(tmp_path: Path) -> None:
    network = Upper()
    text, predictions = predict_file(network, tmp_path, "one\n\ntwo\n   \n\nthree\n")
    assert text == "ONE\n\nTWO\n\n\nTHREE\n"
    assert network.asked == [["one", "two", "three"]]  # one call, blank lines left out
    assert [p["output"] for p in predictions] == ["ONE", "TWO", "THREE"]


def test_leading_blank_lines_crlf_and_a_missing_last_newline(tmp_path: Path) -> None:
    network = Upper()
    text, _ = predict_file(network, tmp_path, "\r\n\r\nab\r\ncd")
    assert text == "\n\nAB\nCD\n"
    assert network.asked == [["ab", "cd"]]
    assert len(text.splitlines()) == 4


def test_an_empty_file_gives_empty_output(tmp_path: Path) -> None:
    network = Upper()
    assert predict_file(network, tmp_path, "") == ("", [])
    assert predict_file(network, tmp_path, "\n\n  \n") == ("\n\n\n", [])
    assert network.asked == []


def test_lines_read_as_one_input_give_their_predictions_one_a_line(tmp_path: Path) -> None:
    network = Summing()
    text, predictions = predict_file(network, tmp_path, "1\n2\n\n3.5\n")
    assert text == "6.5\n"
    assert len(predictions) == 1


# ------------------------------------------------------------------------------ device
def test_device_is_where_the_weights_are() -> None:
    class Weighted(Upper):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 2)

    assert Upper().device == torch.device("cpu")  # no weights: inputs are built on the CPU
    assert Weighted().device == torch.device("cpu")
    with torch.device("meta"):
        assert Weighted().device.type == "meta"
    assert Weighted().to("meta").device.type == "meta"


# ------------------------------------------------------------------- through the API
@dataclass
class UpperConfig:
    width: int = param(2, "size of the one layer", min=1)


class Trainable(Upper):
    def __init__(self, config: Any, state: dict[str, Any]):
        super().__init__(config, state)
        self.layer = nn.Linear(1, config.width)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.layer(batch["x"]).pow(2).mean()

    def evaluate(self, batches: Any) -> dict[str, Any]:
        return {"loss": float(sum(self.loss(b) for b in batches))}


class NoLoss(Trainable):
    loss = Network.loss  # what a plugin that forgot to define loss has


class Failing(Trainable):
    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        raise RuntimeError("predict broke")


def words(config: Any, state: dict[str, Any] | None) -> Data:
    examples = [[float(i)] for i in range(6)]
    return Data(
        state={"n": 6},
        splits={"train": examples, "valid": examples[:2], "test": examples[:2]},
        collate=lambda batch: {"x": torch.tensor(batch)},
    )


def plugin_registry(network: type) -> Registry:
    """A registry with one plugin ("p" from distribution "upper-dist" 1.2) whose
    architecture "upper" is `network`."""
    plugin = types.SimpleNamespace()

    @hookimpl
    def register_architectures(register: Any) -> None:
        register(
            Architecture(
                name="upper",
                description="upper-cases",
                tasks=("echo",),
                config=UpperConfig,
                default_dataset="words",
                implementation=network,
            )
        )

    @hookimpl
    def register_datasets(register: Any) -> None:
        register(
            Dataset(name="words", description="", task="echo", config=UpperConfig, loader=words)
        )

    plugin.register_architectures = register_architectures
    plugin.register_datasets = register_datasets
    registry = Registry.from_plugins([(plugin, "p", "upper-dist", "1.2")])
    assert registry.problems() == []
    return registry


def test_api_predict_file_writes_the_output_and_returns_it(tmp_path: Path, use_registry) -> None:
    use_registry(plugin_registry(Trainable))
    model = zoo.create("upper")
    source = write(tmp_path, "in.txt", "hi\n\nthere\n")
    out = write(tmp_path, "out.txt", "an older, longer output file\n" * 10)
    text, predictions = zoo.predict_file(model, source, output=out)
    assert text == "HI\n\nTHERE\n"
    assert [p["input"] for p in predictions] == ["hi", "there"]
    assert out.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no temp left
    # a TextFile is as good as a path, and no output leaves no file
    assert zoo.predict_file(model, read_text(source)) == (text, predictions)


def test_api_predict_file_leaves_the_output_alone_when_predict_fails(
    tmp_path: Path, use_registry
) -> None:
    use_registry(plugin_registry(Failing))
    model = zoo.create("upper")
    out = write(tmp_path, "out.txt", "previous\n")
    with pytest.raises(PluginError, match="upper-dist 1.2.*predict broke"):
        zoo.predict_file(model, write(tmp_path, "in.txt", "x\n"), output=out)
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_api_predict_file_checks_the_output_before_predicting(tmp_path: Path, use_registry) -> None:
    use_registry(plugin_registry(Trainable))
    model = zoo.create("upper")
    source = write(tmp_path, "in.txt", "x\n")
    with pytest.raises(UsageError, match="does not exist"):
        zoo.predict_file(model, source, output=tmp_path / "no" / "out.txt")
    with pytest.raises(UsageError, match="folder"):
        zoo.predict_file(model, source, output=tmp_path)
    assert model.module.asked == []


def test_a_network_without_loss_fails_training_naming_the_plugin(use_registry) -> None:
    use_registry(plugin_registry(NoLoss))
    model = zoo.create("upper")
    with pytest.raises(PluginError) as info:
        zoo.train(model, epochs=1)
    message = str(info.value)
    assert "'upper'" in message and "upper-dist 1.2" in message
    assert "loss" in message and "NotImplementedError" in message
    assert isinstance(info.value.__cause__, NotImplementedError)


def test_the_same_plugin_trains_when_loss_is_there(use_registry) -> None:
    """The control for the test above: the failure is the missing method, nothing else."""
    use_registry(plugin_registry(Trainable))
    model = zoo.create("upper")
    before = model.module.layer.weight.detach().clone()
    result = zoo.train(model, epochs=1)
    assert result.steps > 0
    assert not torch.equal(before, model.module.layer.weight)
