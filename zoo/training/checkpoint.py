"""Training checkpoints: one `.safetensors` file from which `zoo run --resume` continues exactly.

A checkpoint is a model file (same container, checksum and model metadata, so it needs nothing
else to rebuild the network and reload the data) with format "zoo.checkpoint" and, in addition:

| where | what |
|---|---|
| tensors `optimizer/<parameter>/<key>` | the optimizer's state of each parameter, by its name (Adam's moments, ...) |
| tensors `best/<name>` | the weights of the best validation so far |
| tensors `ema/<name>` | the moving average of the weights (when `ema_decay` is on) |
| tensors `rng/torch`, `rng/epoch`, `rng/cuda/<i>` | torch's RNG, the shuffle RNG at the epoch's start |
| tensors `rng/process/<rank>` | several processes: each one's torch RNG (dropout differs by process) |
| tensors `carry/<rank>/<name>` | what the network carries from step to step (`Network.carried_state`: the char LM's hidden state), each process's |
| metadata `checkpoint` (JSON) | step, epoch, position in the epoch, patience counters, history, the optimizer's settings and non-tensor state, the output path, the number of processes and torchrun's job id |

No pickle: every value is a tensor or JSON. Names resolve through the registry only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from zoo.core import modelfile
from zoo.core.errors import ModelFileError
from zoo.core.fileio import atomic_write
from zoo.core.registry import Registry
from zoo.training import distributed
from zoo.training.model import (
    Model,
    cpu_tensors,
    from_fields,
    model_fields,
    read_tensors,
    serialize,
)
from zoo.training.trainer import Checkpoint, LoopState, TrainResult


def default_path(out: str | os.PathLike[str]) -> Path:
    """`model.safetensors` -> `model.ckpt.safetensors`, beside it."""
    out = Path(out)
    stem = out.name[: -len(".safetensors")] if out.name.endswith(".safetensors") else out.name
    return out.with_name(stem + ".ckpt.safetensors")


def save_checkpoint(
    model: Model,
    ckpt: Checkpoint,
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str],
    checkpoint_every: int,
) -> None:
    """Write a resumable checkpoint atomically (the previous one stays whole until then)."""
    tensors = cpu_tensors(model.module.state_dict())
    optimizer_json: dict[str, Any] = {"param_groups": ckpt.optimizer["param_groups"], "state": {}}
    for index, values in ckpt.optimizer["state"].items():
        scalars = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[key] = value
        optimizer_json["state"][str(index)] = scalars
    loop = ckpt.loop
    if loop.best_weights is not None:
        tensors.update({f"best/{k}": v for k, v in cpu_tensors(loop.best_weights).items()})
    if loop.ema is not None:
        tensors.update({f"ema/{k}": v for k, v in cpu_tensors(loop.ema).items()})
    tensors["rng/torch"] = ckpt.rng.clone()
    if loop.epoch_rng is not None:
        tensors["rng/epoch"] = loop.epoch_rng.clone()
    for i, state in enumerate(ckpt.cuda_rng or []):
        tensors[f"rng/cuda/{i}"] = state.cpu().clone()
    for rank, state in enumerate(ckpt.process_rngs or []):
        tensors[f"rng/process/{rank}"] = state.clone()
    for rank, carried in enumerate(ckpt.carried or []):
        tensors.update({f"carry/{rank}/{k}": v.contiguous() for k, v in carried.items()})
    progress = {
        "step": loop.step,
        "epoch": loop.epoch,
        "batch_in_epoch": loop.batch_in_epoch,
        "epoch_loss": loop.epoch_loss,
        "best_score": loop.best_score,
        "bad_validations": loop.bad_validations,
        "last_validated": loop.last_validated,
        "result": dataclasses.asdict(loop.result),
        "optimizer": optimizer_json,
        "out": os.fspath(out),
        "checkpoint_every": checkpoint_every,
        "processes": len(ckpt.process_rngs or [None]),
        "job": distributed.job_id(),
    }
    metadata = modelfile.encode_metadata(model_fields(model), modelfile.CHECKPOINT_FORMAT)
    metadata["checkpoint"] = json.dumps(progress, allow_nan=True)
    atomic_write(path, serialize(tensors, metadata))


def load_checkpoint(
    path: str | os.PathLike[str], *, registry: Registry | None = None
) -> tuple[Model, Checkpoint, dict[str, Any]]:
    """(model with the checkpoint's weights, the trainer's checkpoint, {"out", "checkpoint_every"})."""
    name = str(path)
    fields, index = modelfile.read_verified(path, modelfile.CHECKPOINT_FORMAT)
    try:
        progress = json.loads(fields["checkpoint"])
        weights_index = {k: v for k, v in index.items() if "/" not in k}
        model = from_fields(fields, weights_index, name, registry=registry)
        tensors = read_tensors(path)
        model.module.load_state_dict({k: tensors[k] for k in weights_index})
        optimizer: dict[str, Any] = {"param_groups": [], "state": {}}
        for group in progress["optimizer"]["param_groups"]:
            params = [_position_or_name(p) for p in group["params"]]
            optimizer["param_groups"].append({**group, "params": params})
        for index_key, scalars in progress["optimizer"]["state"].items():
            prefix = f"optimizer/{index_key}/"
            values = dict(scalars)
            values.update({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            optimizer["state"][_position_or_name(index_key)] = values
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
        ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")} or None
        loop = LoopState(
            step=int(progress["step"]),
            epoch=int(progress["epoch"]),
            batch_in_epoch=int(progress["batch_in_epoch"]),
            epoch_rng=tensors.get("rng/epoch"),
            epoch_loss=float(progress["epoch_loss"]),
            best_score=progress["best_score"],
            best_weights=best,
            bad_validations=int(progress["bad_validations"]),
            last_validated=int(progress["last_validated"]),
            ema=ema,
            result=TrainResult(**progress["result"]),
        )
        cuda = _numbered(tensors, "rng/cuda/")
        ckpt = Checkpoint(
            loop,
            optimizer,
            tensors["rng/torch"],
            cuda,
            _numbered(tensors, "rng/process/"),
            _carried(tensors, int(progress.get("processes", 1))),
        )
        info = {
            "out": progress["out"],
            "checkpoint_every": int(progress["checkpoint_every"]),
            "processes": int(progress.get("processes", 1)),
            "job": progress.get("job"),
        }
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{name}: malformed checkpoint ({type(e).__name__}: {e})") from None
    return model, ckpt, info


def _position_or_name(key: str | int) -> str | int:
    """A parameter of the optimizer's state: its name, or (a checkpoint written before
    names) its position."""
    return int(key) if isinstance(key, int) or key.isdigit() else key


def _carried(tensors: dict[str, torch.Tensor], processes: int) -> list[dict[str, torch.Tensor]]:
    """Each process's carried state (`carry/<rank>/<name>`), by rank."""
    found: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("carry/"):
            _, rank, name = key.split("/", 2)
            found.setdefault(int(rank), {})[name] = value
    return [found.get(r, {}) for r in range(max([processes, *(r + 1 for r in found)]))]


def _numbered(tensors: dict[str, torch.Tensor], prefix: str) -> list[torch.Tensor] | None:
    """The tensors `prefix0`, `prefix1`, ... in order of their number (None: there are none)."""
    numbers = sorted(int(k[len(prefix) :]) for k in tensors if k.startswith(prefix))
    return [tensors[f"{prefix}{n}"] for n in numbers] or None


def job_of(path: str | os.PathLike[str]) -> str | None:
    """The torchrun job id a checkpoint was written under (None: outside torchrun, or not a
    readable checkpoint)."""
    try:
        metadata, _ = modelfile.read_header(path)
        return json.loads(metadata.get("checkpoint", "{}")).get("job")
    except (ModelFileError, OSError, ValueError, AttributeError):
        return None
