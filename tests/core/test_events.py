"""What a run leaves behind besides its weights: the history (in `--json`, `--metrics-out` and
the model file), training events for logger plugins (a TensorBoard one built in), and the
progress display's time left."""

from __future__ import annotations

import itertools
import types

import pytest

import zoo
from tests.conftest import scripted_registry
from zoo import hookimpl
from zoo.core.modelfile import read_info
from zoo.training.progress import Progress
from zoo.training.trainer import TrainingDiverged, thinned


class Recorder:
    """A logger plugin that writes down every training event it hears."""

    def __init__(self):
        self.heard: list[tuple] = []
        recorder = self

        @hookimpl
        def training_started(run):
            recorder.heard.append(("started", run["architecture"], run["total_steps"]))

        @hookimpl
        def training_epoch_ended(epoch, train_loss, lr):
            recorder.heard.append(("epoch", epoch, lr))

        @hookimpl
        def training_validated(step, scores, improved):
            recorder.heard.append(("validated", step, scores["loss"], improved))

        @hookimpl
        def training_ended(status, result):
            recorder.heard.append(("ended", status, result["steps"]))

        self.plugin = types.SimpleNamespace(
            training_started=training_started,
            training_epoch_ended=training_epoch_ended,
            training_validated=training_validated,
            training_ended=training_ended,
        )


def with_loggers(use_registry, *loggers, **script):
    reg, _ = scripted_registry(**script)
    for i, logger in enumerate(loggers):
        reg.add_plugin(logger, f"logger{i}", "test-loggers", "1")
    use_registry(reg)
    return reg


def test_loggers_hear_the_start_each_epoch_and_validation_and_the_end(use_registry):
    recorder = Recorder()
    with_loggers(use_registry, recorder.plugin, scores=[3.0, 1.0, 2.0])
    zoo.train(zoo.create("scripted", epochs=3, batch_size=4, lr=0.5))
    assert recorder.heard == [
        ("started", "scripted", 6),
        ("validated", 2, 3.0, True),
        ("epoch", 1, 0.5),
        ("validated", 4, 1.0, True),
        ("epoch", 2, 0.5),
        ("validated", 6, 2.0, False),
        ("epoch", 3, 0.5),
        ("ended", "finished", 6),
    ]


def test_a_divergence_ends_as_diverged(use_registry):
    recorder = Recorder()
    with_loggers(use_registry, recorder.plugin, scores=[1.0], nan_at=3)
    with pytest.raises(TrainingDiverged):
        zoo.train(zoo.create("scripted", epochs=5, batch_size=4))
    assert recorder.heard[-1] == ("ended", "diverged", 2)


def test_a_logger_that_raises_is_reported_once_and_training_goes_on(use_registry, capsys):
    recorder = Recorder()
    broken = types.SimpleNamespace()

    @hookimpl
    def training_validated(step):
        raise ValueError("tracker unreachable")

    broken.training_validated = training_validated
    with_loggers(use_registry, broken, recorder.plugin, scores=[3.0, 1.0, 2.0])
    result = zoo.train(zoo.create("scripted", epochs=3, batch_size=4))
    assert result.steps == 6
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert warnings == [
        "warning: plugin 'logger0': training_validated failed (ValueError: tracker "
        "unreachable); it logs nothing more of this run"
    ]
    assert recorder.heard[-1] == ("ended", "finished", 6)  # the other logger heard it all


def test_the_history_reaches_the_result_and_the_model_file(tmp_path):
    out = tmp_path / "m.safetensors"
    run = zoo.run("lstm-tagger", out=out, epochs=3, lr_schedule="linear")
    history = run.as_dict()["training"]["history"]
    epochs = [h for h in history if "epoch" in h]
    validations = [h for h in history if "valid" in h]
    assert [h["epoch"] for h in epochs] == [1, 2, 3] and len(validations) == 3
    assert epochs[0]["lr"] > epochs[1]["lr"] > epochs[2]["lr"]  # the schedule, as it went
    assert all(a["seconds"] <= b["seconds"] for a, b in itertools.pairwise(history))
    assert {"loss", "accuracy"} <= validations[0]["valid"].keys()
    assert not any("/" in k or k == "confusion" for v in validations for k in v["valid"])
    assert read_info(out)["metrics"]["training"]["history"] == history


def test_a_long_history_is_thinned_evenly_keeping_the_ends():
    kept = thinned(list(range(1000)), 50)
    assert len(kept) == 50 and kept[0] == 0 and kept[-1] == 999
    gaps = {b - a for a, b in itertools.pairwise(kept)}
    assert max(gaps) - min(gaps) <= 1
    assert thinned([1, 2, 3], 50) == [1, 2, 3]


def test_time_left_is_the_pace_so_far_over_the_steps_to_go():
    progress = Progress(enabled=False)
    progress.start(total_steps=100, epochs=1)
    progress.t0 = 0.0
    assert progress.time_left(25, now=10.0) == ", 30s left"
    assert progress.time_left(0, now=10.0) == "" and progress.time_left(100, now=9.0) == ""
    progress.start(total_steps=100, epochs=1, at_step=20)  # resumed at step 20
    progress.t0 = 0.0
    assert progress.time_left(25, now=10.0) == ", 2m30s left"
    progress.start(total_steps=10_000, epochs=1)
    progress.t0 = 0.0
    assert progress.time_left(10, now=7.5) == ", 2h04m left"


def test_tensorboard_logger_writes_curves_that_tensorboard_reads(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("ZOO_TENSORBOARD_DIR", str(tmp_path / "tb"))
    zoo.run("gru-regressor", out=tmp_path / "m.safetensors", epochs=2)
    (run_folder,) = (tmp_path / "tb").iterdir()
    assert run_folder.name.startswith("gru-regressor-sine-windows-")
    events = EventAccumulator(str(run_folder))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "valid/loss", "valid/mse"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == [50, 100]
    assert len(events.Scalars("valid/mse")) == 2
