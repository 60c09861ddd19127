"""The Python API: the same verbs as the command line, which is a thin layer over them.

    import zoo
    zoo.list_architectures()                       # ['elman-rnn', 'gru-regressor', ...]
    model = zoo.create("lstm-tagger", hidden_size=128)
    zoo.train(model, epochs=5)
    zoo.save(model, "tagger.safetensors")
    tagger = zoo.load("tagger.safetensors")
    tagger.predict("The dog ate the apple .")
    zoo.predict_file(tagger, "sentences.txt", output="tagged.txt")

Settings are one flat namespace over the model, data and training configs (see
`zoo.settings`); a name in two of them takes a prefix (`model.dropout`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo import config as cfg
from zoo import distributed, guard, trainer
from zoo import settings as settings_mod
from zoo.data import Data
from zoo.errors import DataError, PluginError, SettingError, UsageError, ZooError
from zoo.events import TrainingEvents
from zoo.fileio import atomic_write_text, check_writable
from zoo.model import Model, load, reconfigure, save
from zoo.progress import Progress
from zoo.registry import Registry, get_registry
from zoo.textfile import TextFile, file_errors, read_text

__all__ = [
    "RunResult",
    "count_parameters",
    "create",
    "evaluate",
    "list_architectures",
    "list_datasets",
    "load",
    "load_data",
    "predict",
    "predict_file",
    "resume",
    "run",
    "save",
    "train",
]


def list_architectures(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Installed architecture names, filtered by glob `pattern` and `task` when given."""
    return get_registry().list_architectures(pattern, task)


def list_datasets(pattern: str | None = None, task: str | None = None) -> list[str]:
    """Installed dataset names, filtered by glob `pattern` and `task` when given."""
    return get_registry().list_datasets(pattern, task)


def load_data(
    registry: Registry, name: str, data_config: Any, state: dict[str, Any] | None
) -> Data:
    """Call a dataset's loader: file-system trouble becomes one DataError line, a failure
    inside the loader a PluginError naming the plugin."""
    loader = registry.loader(name)
    path = getattr(data_config, "path", None) or name
    try:
        with file_errors(path):
            data = loader(data_config, state)
    except ZooError:
        raise
    except UnicodeDecodeError as e:  # a plugin reader that decodes by itself
        raise DataError(f"not UTF-8 text ({e.reason} at byte {e.start})", path=path) from None
    except Exception as e:
        plugin = registry.dataset(name).plugin
        raise PluginError(
            f"dataset {name!r} ({plugin.label}) failed in load: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(data, Data):
        plugin = registry.dataset(name).plugin
        raise PluginError(
            f"dataset {name!r} from {plugin.label}: loader returned "
            f"{type(data).__name__}, expected zoo.data.Data"
        )
    return data


# Command-line options that fill a dataset's path fields, when the dataset has them.
PATH_OPTIONS = {"--data": "path", "--dev": "dev_path", "--test": "test_path"}


def with_paths(settings: dict[str, Any], paths: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Route `--data/--dev/--test` to the dataset's `path/dev_path/test_path` fields."""
    names = cfg.field_names(spec.config)
    out = dict(settings)
    for option, value in paths.items():
        if value is None:
            continue
        field_name = PATH_OPTIONS[option]
        if field_name not in names:
            what = (
                "is built in and reads no files" if field_name == "path" else f"takes no {option}"
            )
            raise UsageError(
                f"{option}: dataset {spec.name!r} {what}; `zoo info {spec.name}` lists its settings"
            )
        out[f"data.{field_name}"] = os.fspath(value)
    return out


def create(
    name: str,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    dev: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    **settings: Any,
) -> Model:
    """Build architecture `name` for `dataset` (default: the architecture's own), loading the
    data (from `data`, a path, when the dataset reads files; `dev` and `test` for datasets that
    take separate files) to size vocabularies and layers.

    `settings` may be any model, data or training setting (`hidden_size=128`, `epochs=5`).
    """
    reg = registry or get_registry()
    entry = reg.architecture(name)
    spec = entry.spec
    dataset = dataset or spec.default_dataset
    ds_spec = reg.dataset(dataset).spec
    reg.check_compatible(name, dataset)
    paths = {"--data": data, "--dev": dev, "--test": test}
    resolved = settings_mod.resolve(spec, ds_spec, with_paths(settings, paths, ds_spec))
    trainer.resolve_device(resolved.train.device)  # no GPU: say so before loading any data
    factory = reg.network_class(name, ds_spec.task)
    loaded = load_data(reg, dataset, resolved.data, None)
    if not loaded.has("train"):
        raise DataError("the training split is empty", path=getattr(resolved.data, "path", None))
    what = f"architecture {name!r} ({entry.plugin.label})"
    torch.manual_seed(resolved.train.seed)
    network = guard.build(what, factory, resolved.model, loaded.state)
    guard.Checked(network, what).initialise(loaded)  # e.g. pretrained vectors: never at load
    return Model(
        architecture=spec,
        dataset=dataset,
        task=ds_spec.task,
        config=resolved.model,
        data_config=resolved.data,
        train_config=resolved.train,
        state=loaded.state,
        module=network,
        plugin=entry.plugin,
        data=loaded,
    )


def count_parameters(
    name: str, dataset: str | None = None, *, registry: Registry | None = None, **settings: Any
) -> int:
    """The parameter count of architecture `name` built for `dataset` with `settings`."""
    return create(name, dataset, registry=registry, **settings).num_parameters()


def train(
    model: Model,
    *,
    progress: bool | Progress = False,
    resume: trainer.Checkpoint | None = None,
    checkpoint: Callable[[trainer.Checkpoint], None] | None = None,
    checkpoint_every: int = 0,
    **settings: Any,
) -> trainer.TrainResult:
    """Train `model` on the data it was created with; `settings` override training settings
    (`epochs`, `lr`, ...). Returns what happened (steps, time, best validation scores).

    Ctrl-C stops training cleanly after the current step (TrainingInterrupted), keeping the
    weights in memory; `checkpoint`, when given, is called then and every `checkpoint_every`
    steps with a `trainer.Checkpoint` that `resume` continues from.
    """
    if model.data is None:
        raise UsageError(
            "this model has no training data attached (it was loaded from a file); "
            "create it with zoo.create(...) to train"
        )
    if settings:
        model.train_config = cfg.replace(model.train_config, settings)
    shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    result = trainer.fit(
        model.checked,
        model.data,
        model.train_config,
        monitor=model.architecture.monitor,
        progress=shown,
        resume=resume,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        events=TrainingEvents(get_registry(), _run_description(model)),
    )
    model.metrics["training"] = {
        **result.as_dict(),
        "threads": torch.get_num_threads(),
        "device": str(trainer.resolve_device(model.train_config.device)),
    }
    return result


def _run_description(model: Model) -> dict[str, Any]:
    """What training-event hooks are told a run is: plain data (see zoo/hookspecs.py)."""
    return {
        "architecture": model.name,
        "dataset": model.dataset,
        "task": model.task,
        "settings": {
            "model": cfg.to_dict(model.config),
            "data": cfg.to_dict(model.data_config),
            "train": cfg.to_dict(model.train_config),
        },
    }


def _saved(model: Model | str | os.PathLike[str], key: str) -> str | None:
    """A name (`architecture`, `dataset`) a model or model file records, None if unreadable
    (loading the file then says what is wrong with it)."""
    if isinstance(model, Model):
        return model.name if key == "architecture" else model.dataset
    from zoo.modelfile import read_header

    try:
        return read_header(model)[0].get(key)
    except ZooError:
        return None


def _split_settings(
    reg: Registry,
    model: Model | str | os.PathLike[str],
    settings: dict[str, Any],
    kind: str,
    names: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model settings, the rest) of `settings` given to a trained model. The rest are of
    `kind` (data settings or predict options, named `names`) and take unprefixed names that
    the model's config shares; `model.KEY` and `KIND.KEY` say which is meant."""
    arch = _saved(model, "architecture")
    model_names = []
    if arch in reg.architectures:
        model_names = cfg.field_names(reg.architecture(arch).spec.config)
    changes: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in settings.items():
        prefix, dot, bare = key.partition(".")
        if dot and prefix == "model":
            changes[bare] = value
        elif dot and prefix == kind:
            rest[bare] = value
        elif key in model_names and key not in names:
            changes[key] = value
        else:
            rest[key] = value
    return changes, rest


def _loaded(model: Model | str | os.PathLike[str], reg: Registry, changes: dict[str, Any]) -> Model:
    """A trained model with `changes` to its settings (those that keep its tensors: impl)."""
    if isinstance(model, Model):
        return reconfigure(model, changes, registry=reg)
    return load(model, registry=reg, config=changes or None)


def evaluate(
    model: Model | str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    *,
    dataset: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "cpu",
    registry: Registry | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Metrics of a model on a split of a dataset.

    Without `data`, the model's own data (attached, or reloaded as it was configured for
    training, with the same held-out split) is used; with it, the dataset reads that path
    using the model's saved vocabularies and normalisation, and a file other than the
    training file is evaluated whole. `dataset` names another dataset of the same task.
    `settings` are data settings, or model settings that keep the tensors (`impl="cells"`).
    """
    reg = registry or get_registry()
    name = dataset or _saved(model, "dataset")
    names = cfg.field_names(reg.dataset(name).spec.config) if name in reg.datasets else []
    changes, settings = _split_settings(reg, model, settings, "data", names)
    model = _loaded(model, reg, changes)
    loaded = evaluation_data(reg, model, data, dataset, settings)
    if not loaded.has(split):
        available = [s for s in loaded.splits if loaded.has(s)]
        raise UsageError(
            f"split {split!r}: the data has no such examples; it has: {', '.join(available)}"
        )
    dev = trainer.resolve_device(device)
    model.module.to(dev)
    size = batch_size or model.train_config.batch_size
    return trainer.evaluate(model.checked, loaded, split, size, dev)


def evaluation_data(
    reg: Registry, model: Model, data: Any, dataset: str | None, data_settings: dict[str, Any]
) -> Data:
    if model.data is not None and data is None and dataset is None and not data_settings:
        return model.data
    name = dataset or model.dataset
    spec = reg.dataset(name).spec
    reg.check_compatible(model.name, name)
    base: dict[str, Any] = {}
    if name == model.dataset and not isinstance(model.data_config, dict):
        base = cfg.to_dict(model.data_config)
    if data is not None:  # new data replaces the training files, --dev/--test ones included
        base = {k: v for k, v in base.items() if k not in PATH_OPTIONS.values()}
    values = {**base, **{k.removeprefix("data."): v for k, v in data_settings.items()}}
    if data is not None:
        if "path" not in cfg.field_names(spec.config):
            raise UsageError(f"--data: dataset {name!r} is built in and reads no files")
        values["path"] = os.fspath(data)
    data_config = cfg.build(spec.config, values)
    return load_data(reg, name, data_config, model.state)


def predict_options(model: Model, options: dict[str, Any]) -> Any:
    spec = model.architecture
    if spec.predict_config is not None:
        return cfg.build(spec.predict_config, options)
    if options:
        raise SettingError(f"{', '.join(options)}: {model.name} takes no predict options")
    return None


def _predicting(
    model: Model | str | os.PathLike[str], registry: Registry | None, settings: dict[str, Any]
) -> tuple[Model, Any]:
    """The model (with any model settings applied) and its predict options, ready to run."""
    reg = registry or get_registry()
    arch = _saved(model, "architecture")
    spec = reg.architecture(arch).spec if arch in reg.architectures else None
    names = cfg.field_names(spec.predict_config) if spec and spec.predict_config else []
    changes, options = _split_settings(reg, model, settings, "predict", names)
    model = _loaded(model, reg, changes)
    model.module.eval()
    return model, predict_options(model, options)


def predict(
    model: Model | str | os.PathLike[str],
    inputs: str | list[str],
    *,
    registry: Registry | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Predictions for raw inputs (sentences, sequences, numbers as text), from the model alone.

    Each prediction is a dict with at least `input`, `output` and `text`, a one-line
    rendering. `settings` are the architecture's predict options (e.g. `beam_size=5`), or
    model settings that keep the tensors (`impl="cells"`).
    """
    model, options = _predicting(model, registry, settings)
    with torch.no_grad():
        return model.checked.predict([inputs] if isinstance(inputs, str) else list(inputs), options)


def predict_file(
    model: Model | str | os.PathLike[str],
    path: str | os.PathLike[str] | TextFile,
    output: str | os.PathLike[str] | None = None,
    *,
    registry: Registry | None = None,
    **settings: Any,
) -> tuple[str, list[dict[str, Any]]]:
    """Predict from a file: by default one input a line, one output line each, blank lines
    kept so the output lines up with the input; architectures that read a structured format
    (CoNLL-U, CSV) fill it in instead. Returns (output text, predictions) and, with
    `output`, writes the text there atomically."""
    if output is not None:
        check_writable(output, option="output")
    model, options = _predicting(model, registry, settings)
    file = path if isinstance(path, TextFile) else read_text(path)
    with torch.no_grad():
        text, predictions = model.checked.predict_file(file, options)
    if output is not None:
        atomic_write_text(output, text)
    return text, predictions


@dataclass
class RunResult:
    """What `zoo run` did: the model, where it was saved, its metrics and the training facts."""

    model: Model
    path: Path
    metrics: dict[str, Any]
    training: trainer.TrainResult
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The result document (`zoo run --json`, `--metrics-out`)."""
        model = self.model
        return {
            "architecture": model.name,
            "dataset": model.dataset,
            "task": model.task,
            "path": str(self.path),
            "parameters": model.num_parameters(),
            "metrics": {k: v for k, v in self.metrics.items() if k != "training"},
            "training": self.metrics.get("training", {}),
            "timings": self.timings,
            "settings": {
                "model": cfg.to_dict(model.config),
                "data": cfg.to_dict(model.data_config),
                "train": cfg.to_dict(model.train_config),
            },
        }


def final_metrics(model: Model) -> dict[str, dict[str, Any]]:
    """Metrics on the held-out splits the data has (on train only if it has none)."""
    assert model.data is not None
    held_out = [s for s in ("valid", "test") if model.data.has(s)]
    device = str(next(model.module.parameters()).device)
    return {split: evaluate(model, split=split, device=device) for split in held_out or ["train"]}


def run(
    name: str | None = None,
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    dev: str | os.PathLike[str] | None = None,
    test: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool | Progress = False,
    registry: Registry | None = None,
    **settings: Any,
) -> RunResult:
    """Create, train, evaluate and save in one call, as `zoo run` does.

    A checkpoint (`<out>.ckpt.safetensors`) is written every `checkpoint_every` steps and when
    Ctrl-C stops training, and removed once the model file is saved; `resume=CHECKPOINT`
    continues such a run (then the architecture and data come from the checkpoint).
    """
    reg = registry or get_registry()
    if resume is not None:
        return _resume_run(
            name, resume, (dataset, data, dev, test), out, checkpoint_every, progress, reg, settings
        )
    if name is None:
        raise UsageError(
            "give the architecture NAME to run (`zoo list`), or a checkpoint to resume"
        )
    spec = reg.architecture(name).spec
    path = (
        Path(out)
        if out is not None
        else Path(f"{name}-{dataset or spec.default_dataset}.safetensors")
    )
    check_writable(path)
    restarted = _checkpoint_of_this_job(path, checkpoint_every)
    if restarted is not None:
        return _continue_restarted(restarted, path, checkpoint_every, progress, reg)
    t0 = time.perf_counter()
    model = create(name, dataset, data, dev=dev, test=test, registry=reg, **settings)
    return _train_and_save(model, path, None, checkpoint_every or 0, progress, t0)


def _checkpoint_of_this_job(path: Path, checkpoint_every: int | None) -> Path | None:
    """After torchrun restarted the processes (`--max-restarts`, a process having died), the
    checkpoint that this same job wrote before, if any: the restarted processes run the same
    command again, and continue from it instead of starting over. A checkpoint of another
    job (another torchrun job id) is never taken."""
    from zoo.checkpoint import default_path, job_of

    if not checkpoint_every or not distributed.restart_count() or not distributed.job_id():
        return None
    ckpt = default_path(path)
    if not ckpt.exists() or job_of(ckpt) != distributed.job_id():
        return None
    return ckpt


def _continue_restarted(
    checkpoint: Path, out: Path, checkpoint_every: int | None, progress: Any, reg: Registry
) -> RunResult:
    """Continue this job's own checkpoint after torchrun restarted its processes."""
    shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    if distributed.from_environment().writer:
        shown.info(f"restart {distributed.restart_count()}: continuing from {checkpoint}")
    return resume(
        checkpoint, out=out, checkpoint_every=checkpoint_every, progress=shown, registry=reg
    )


def _resume_run(
    name: str | None,
    checkpoint: str | os.PathLike[str],
    data_options: tuple[Any, ...],
    out: Any,
    checkpoint_every: int | None,
    progress: bool | Progress,
    reg: Registry,
    settings: dict[str, Any],
) -> RunResult:
    """`run(resume=...)`: the checkpoint names the architecture and the data."""
    from zoo.modelfile import read_info

    if any(value is not None for value in data_options):
        raise UsageError(
            "the data comes from the checkpoint when resuming: give no dataset, data, dev or "
            "test (--dataset, --data, --dev, --test)"
        )
    saved = read_info(checkpoint)["architecture"]
    if name is not None and name != saved:
        raise UsageError(f"resume {checkpoint}: the checkpoint is of {saved}, not {name}")
    return resume(
        checkpoint,
        out=out,
        checkpoint_every=checkpoint_every,
        progress=progress,
        registry=reg,
        **settings,
    )


def resume(
    checkpoint: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool | Progress = False,
    registry: Registry | None = None,
    **train_settings: Any,
) -> RunResult:
    """Continue an interrupted `run` from its checkpoint: same step, optimizer and RNG state,
    so the final weights equal those of a run that was never interrupted.

    Only training settings may change (`lr=...` after a divergence, say); the model and its
    data come from the checkpoint. The data is reloaded and must give the same vocabularies
    or statistics as when the checkpoint was written.
    """
    from zoo.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    reg = registry or get_registry()
    model, ckpt, info = load_checkpoint(checkpoint, registry=reg)
    train_names = cfg.field_names(settings_mod.TrainConfig)
    for key in train_settings:
        if key.removeprefix("train.") not in train_names:
            raise SettingError(
                f"{key}: only training settings can change when resuming; the model "
                "and data settings come from the checkpoint"
            )
    if train_settings:
        overrides = {k.removeprefix("train."): v for k, v in train_settings.items()}
        model.train_config = cfg.replace(model.train_config, overrides)
    path = Path(out) if out is not None else Path(info["out"])
    check_writable(path)
    model.data = load_data(reg, model.dataset, model.data_config, None)
    if model.data.state != model.state:
        raise DataError(
            "the data differs from when the checkpoint was written (its vocabulary or "
            "statistics changed); resume needs the same data",
            path=getattr(model.data_config, "path", None),
        )
    every = info["checkpoint_every"] if checkpoint_every is None else checkpoint_every
    return _train_and_save(model, path, (ckpt, Path(checkpoint)), every, progress, t0)


def _train_and_save(
    model: Model,
    path: Path,
    resuming: tuple[trainer.Checkpoint, Path] | None,
    checkpoint_every: int,
    progress: bool | Progress,
    t0: float,
) -> RunResult:
    """Train (resuming a checkpoint, writing checkpoints), then evaluate the held-out splits
    and save. On several processes all train; rank 0 alone evaluates, saves and writes."""
    from zoo.checkpoint import default_path

    ckpt_path = resuming[1] if resuming else default_path(path)
    t1 = time.perf_counter()
    shown = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    if model.data is not None and model.data.summary and distributed.from_environment().writer:
        shown.info(model.data.summary)
    try:
        result, written = _train_checkpointed(
            model, path, ckpt_path, resuming, checkpoint_every, shown
        )
        t2 = time.perf_counter()
        if distributed.from_environment().writer:
            model.metrics.update(final_metrics(model))
            t3 = time.perf_counter()
            save(model, path)
            if written or resuming:
                ckpt_path.unlink(missing_ok=True)  # the model file supersedes it
        else:
            t3 = t2
    finally:
        distributed.finish()
    timings = {
        "load": t1 - t0,
        "train": t2 - t1,
        "evaluate": t3 - t2,
        "save": time.perf_counter() - t3,
    }
    return RunResult(
        model, path, model.metrics, result, {k: round(v, 3) for k, v in timings.items()}
    )


def _train_checkpointed(
    model: Model,
    path: Path,
    ckpt_path: Path,
    resuming: tuple[trainer.Checkpoint, Path] | None,
    checkpoint_every: int,
    progress: Progress,
) -> tuple[trainer.TrainResult, list[int]]:
    """Train, keeping checkpoints; an interruption or a divergence says where the last
    checkpoint is and how to continue from it."""
    from zoo.checkpoint import save_checkpoint

    written: list[int] = []

    def keep(ckpt: trainer.Checkpoint) -> None:
        save_checkpoint(model, ckpt, ckpt_path, out=path, checkpoint_every=checkpoint_every)
        written.append(ckpt.loop.step)

    try:
        result = train(
            model,
            progress=progress,
            resume=resuming[0] if resuming else None,
            checkpoint=keep,
            checkpoint_every=checkpoint_every,
        )
    except trainer.TrainingInterrupted as e:
        raise trainer.TrainingInterrupted(
            f"{e}; checkpoint saved to {ckpt_path}; continue with: zoo run --resume {ckpt_path}",
            e.exit_code - 128,
        ) from None
    except trainer.TrainingDiverged as e:
        if written or resuming:
            step = written[-1] if written else resuming[0].loop.step  # type: ignore[index]
            raise trainer.TrainingDiverged(
                f"{e}. The last good checkpoint (step {step}) is {ckpt_path}: "
                f"zoo run --resume {ckpt_path} --lr <lower>"
            ) from None
        raise
    return result, written
