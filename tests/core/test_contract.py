"""The plugin contract's lifecycle, as docs/plugins.md ("The lifecycle") states it.

A small window anomaly detector, written as a third party would (an architecture for a task
zoo has no built-in of, generated data seeded from `split_seed`, a threshold computed from the
training data after training), checks each promise that docs/plugins.md makes:
- `calibrate(data)` runs once after training with the final weights in place, in eval mode
  without gradients, and before the final evaluation, so the saved metrics use its state;
- state kept in a buffer survives the model file, and `zoo run --resume` ends with the same
  buffer as an uninterrupted run (the checkpoint keeps buffers; calibrate runs again);
- `initialise` runs for a new training only, never on resume or load;
- best-weight restoring and the weight average keep buffers;
- `Data.batches(split, n, device=...)` yields the split's collated batches on that device;
- an architecture's `headline` metrics (`f1/anomaly` included) are what `zoo run`, the
  history and `zoo compare` show;
- parameter counts leave buffers out, whatever reads them.
"""

from __future__ import annotations

import dataclasses
import random
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import zoo
from tests.conftest import REPO, InterruptAt, plugin_of
from zoo.core.formatting import scores_line
from zoo.core.registry import Registry
from zoo.toolkit.data import Data
from zoo.toolkit.metrics import Confusion
from zoo.toolkit.network import Network
from zoo.toolkit.splits import Fractions, split
from zoo.training.checkpoint import default_path
from zoo.training.trainer import TrainingInterrupted

EVENTS: list[tuple[str, Any]] = []  # what the network saw, in order


@dataclass
class DetectorConfig:
    hidden: int = zoo.param(4, "units of the bottleneck", min=1, max=64)


@dataclass
class WindowsConfig(Fractions):
    windows: int = zoo.param(160, "windows generated", min=8, max=10_000)


def generated(config: WindowsConfig, state: dict[str, Any] | None) -> Data:
    """Windows of 4 numbers, one in four anomalous; drawn from `split_seed`, so a trained
    model that reloads its data gets the very same windows."""
    rng = random.Random(config.split_seed)
    examples = []
    for i in range(config.windows):
        anomalous = i % 4 == 0
        base = rng.uniform(-1, 1)
        window = [base + (3.0 if anomalous and j == 2 else 0.0) for j in range(4)]
        examples.append((window, int(anomalous)))
    parts = split(examples, config, state=state)
    return Data(
        state={"labels": ["normal", "anomaly"]} if state is None else state,
        splits=parts,
        collate=lambda batch: {
            "x": torch.tensor([w for w, _ in batch]),
            "label": torch.tensor([y for _, y in batch]),
        },
    )


class Detector(Network):
    """An autoencoder: a window is anomalous when its reconstruction error passes a threshold
    computed from the training windows (`calibrate`)."""

    def __init__(self, config: DetectorConfig, state: dict[str, Any]):
        super().__init__(config, state)
        self.encode = nn.Linear(4, config.hidden)
        self.decode = nn.Linear(config.hidden, 4)
        self.register_buffer("threshold", torch.tensor(0.0))

    def errors(self, x: torch.Tensor) -> torch.Tensor:
        return (self.decode(torch.tanh(self.encode(x))) - x).pow(2).mean(-1)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.errors(batch["x"]).mean()

    def calibrate(self, data: Data) -> None:
        batches = data.batches("train", 16, device=self.device)
        errors = torch.cat([self.errors(batch["x"]) for batch in batches])
        self.threshold.fill_(float(errors.quantile(0.75)))

    def evaluate(self, batches: Any) -> dict[str, Any]:
        confusion, total, count = Confusion(self.state["labels"]), 0.0, 0
        for batch in batches:
            errors = self.errors(batch["x"])
            total, count = total + float(errors.sum()), count + len(errors)
            confusion.add((errors > self.threshold).long(), batch["label"])
        return {"loss": total / max(1, count), **confusion.metrics()}

    def predict(self, inputs: list[str], options: Any) -> list[dict[str, Any]]:
        x = torch.tensor([[float(v) for v in text.split()] for text in inputs])
        flags = (self.errors(x) > self.threshold).tolist()
        return [{"input": t, "output": f, "text": str(f)} for t, f in zip(inputs, flags)]


class Observed(Detector):
    """The detector, recording what zoo calls and how (in `EVENTS`)."""

    def initialise(self, data: Data) -> None:
        EVENTS.append(("initialise", data.size("train")))

    def calibrate(self, data: Data) -> None:
        batches, before = list(data.batches("train", 16, device=self.device)), float(self.threshold)
        super().calibrate(data)
        seen = (self.training, torch.is_grad_enabled(), batches, before, float(self.threshold))
        EVENTS.append(("calibrate", *seen))

    def evaluate(self, batches: Any) -> dict[str, Any]:
        scores = super().evaluate(batches)
        EVENTS.append(("evaluate", float(self.threshold), scores["loss"]))
        return scores


HEADLINE = ("f1/anomaly", "precision/anomaly", "recall/anomaly")  # ARCHITECTURE's


ARCHITECTURE = zoo.Architecture(
    name="window-detector",
    description="flags anomalous windows",
    tasks=("window-anomaly",),
    config=DetectorConfig,
    default_dataset="noisy-windows",
    implementation=Detector,
    train_defaults={"epochs": 4, "batch_size": 8, "lr": 0.01},
    headline=("f1/anomaly", "precision/anomaly", "recall/anomaly"),
)
DATASET = zoo.Dataset(
    name="noisy-windows",
    description="generated windows",
    task="window-anomaly",
    config=WindowsConfig,
    loader=generated,
)


@pytest.fixture
def registry(use_registry) -> Registry:
    architecture = dataclasses.replace(ARCHITECTURE, implementation=Observed)
    plugin = plugin_of([architecture], [DATASET])
    EVENTS.clear()
    return use_registry(Registry.from_plugins([(plugin, "detector", "zoo-anomaly", "0.3")]))


def names(kind: str) -> list[tuple[str, Any]]:
    return [e for e in EVENTS if e[0] == kind]


def test_calibrate_runs_before_each_validation_and_once_more_at_the_end(registry, tmp_path):
    """Validation (four epochs, four validations), best-weight selection and the final
    evaluation all score a calibrated network; the final calibration sees the final weights."""
    result = zoo.run("window-detector", out=tmp_path / "d.safetensors", registry=registry)
    kinds = [e[0] for e in EVENTS]
    assert kinds == ["initialise", *["calibrate", "evaluate"] * 4, "calibrate", *["evaluate"] * 2]
    assert all(e[1] > 0 for e in names("evaluate"))  # every score with a threshold
    for _, training, grad, batches, _, _ in names("calibrate"):
        assert training is False and grad is False
        assert sum(len(b["x"]) for b in batches) == result.model.data.size("train")
    # the saved model holds the final threshold, and its file's metrics were scored with it
    saved = load_file(tmp_path / "d.safetensors")
    final = names("calibrate")[-1][-1]
    assert float(saved["threshold"]) == final == names("evaluate")[-1][1]
    assert zoo.load(tmp_path / "d.safetensors").module.threshold == saved["threshold"]


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_resumed_run_ends_with_the_uninterrupted_runs_weights_and_threshold(
    registry, tmp_path, ema
):
    whole = tmp_path / "whole.safetensors"
    zoo.run("window-detector", out=whole, ema_decay=ema, registry=registry)
    EVENTS.clear()
    out = tmp_path / "resumed.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run(
            "window-detector", out=out, ema_decay=ema, progress=InterruptAt(9), registry=registry
        )
    EVENTS.clear()
    zoo.resume(default_path(out), registry=registry)
    assert names("initialise") == [] and names("calibrate")  # calibrated, not initialised
    a, b = load_file(whole), load_file(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert float(b["threshold"]) > 0


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_best_weights_and_the_average_keep_buffers(registry, ema):
    """The weights kept for the best validation (of the weight average, with `ema_decay`)
    are whole state dicts: the final weights come back with the threshold calibrated for
    them at that validation, buffers included."""
    model = zoo.create("window-detector", registry=registry)
    model.fit(epochs=6, ema_decay=ema, lr=0.1)  # a rate whose validation loss turns up
    validations = names("evaluate")[:6]
    best = min(range(6), key=lambda i: validations[i][2])
    assert best < 5  # the last epoch is not the best: the kept weights are put back
    calibrations = names("calibrate")
    restored = calibrations[-1][4]  # the threshold the final weights came back with
    assert restored == calibrations[best][5] == validations[best][1]


def test_what_the_loader_says_it_read_is_in_the_result(tmp_path):
    """`Data.summary` and `Data.info` reach `zoo run --json` (here the built-in CSV reader's
    row borders)."""
    csv = tmp_path / "s.csv"
    csv.write_text("v\n" + "".join(f"{i % 7}\n" for i in range(60)), encoding="utf-8")
    settings = {"input_length": 4, "horizon": 2, "split": "0.6,0.2,0.2", "epochs": 1}
    result = zoo.run("gru-regressor", "csv", csv, out=tmp_path / "g.safetensors", **settings)
    doc = result.as_dict()["data"]
    assert doc["info"] == {"rows": 60, "borders": [36, 48, 60]}
    assert "s.csv" in doc["summary"]


def test_batches_come_on_the_device_asked_for(registry):
    data = zoo.create("window-detector", registry=registry).data
    on_meta = next(data.batches("valid", 4, device="meta"))
    assert on_meta["x"].device.type == "meta" and on_meta["label"].shape == (4,)
    assert next(data.batches("valid", 4))["x"].device.type == "cpu"


def test_headline_metrics_are_shown_recorded_and_compared(registry, tmp_path, zoo):
    result = zoo_run_json(zoo, tmp_path)
    test_scores = result["metrics"]["test"]
    assert set(HEADLINE) <= set(test_scores)
    shown = scores_line(test_scores, registry.headline("window-detector"))
    assert shown.split()[::2] == ["loss", *HEADLINE]  # the monitor first, then the headline
    history = result["training"]["history"]
    assert all(set(HEADLINE) <= set(h["valid"]) for h in history if "valid" in h)
    compared = zoo("compare", tmp_path / "d.safetensors", "--json").json()
    assert [m for _, m in compared["metrics"]] == ["loss", *HEADLINE, "loss", *HEADLINE]


def zoo_run_json(zoo, tmp_path) -> dict[str, Any]:
    r = zoo("run", "window-detector", "--out", tmp_path / "d.safetensors", "--json", "-q")
    assert r.code == 0, r.stderr
    return r.json()


def test_parameter_counts_leave_buffers_out_everywhere(registry, tmp_path, zoo):
    run = zoo_run_json(zoo, tmp_path)
    path = tmp_path / "d.safetensors"
    expected = 4 * 4 + 4 + 4 * 4 + 4  # two linear layers (40); the threshold is a buffer
    assert run["parameters"] == expected
    assert zoo("compare", path, "--json").json()["rows"][0]["parameters"]["mean"] == expected
    assert "parameters:   40 (buffers not counted)" in zoo("inspect", path).stdout
    assert "; 40 weights in 5 tensors" in zoo("card", path).stdout


def test_the_card_of_a_third_party_model_says_what_to_install_and_how_to_run_it(
    registry, tmp_path, zoo
):
    """The card names the plugin's distribution, and for a task the runtime has no recipe
    for it shows what works (the graph's raw arrays), not `zoo-runtime FILE INPUT`."""
    zoo_run_json(zoo, tmp_path)
    card = zoo("card", tmp_path / "d.safetensors").stdout
    assert "`pip install rnn-zoo 'zoo-anomaly==0.3'`" in card
    assert "zoo-runtime d.onnx" not in card
    assert 'zoo_runtime.load("d.onnx").run_arrays(' in card
    assert "no recipe for the task `window-anomaly`" in card


def test_the_guide_quotes_this_detector_as_it_is():
    """docs/plugins.md answers plugin authors' questions with this file's code: every block
    of it the guide quotes is here, word for word."""
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    ours = [b for b in blocks if re.search(r"Detector|WindowsConfig|threshold|window-", b)]
    assert len(ours) >= 4
    source = textwrap.dedent(Path(__file__).read_text(encoding="utf-8"))
    lines = {line.strip() for line in source.splitlines()}
    for block in ours:
        missing = [line for line in block.splitlines() if line.strip() not in lines]
        assert not missing, missing
