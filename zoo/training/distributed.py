"""Training on several processes: torch.distributed and DistributedDataParallel, as torchrun
starts them (`zoo run NAME --nproc-per-node N`, or `torchrun ... -m zoo run NAME`).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in every worker; zoo reads them, joins the
process group (gloo on CPU, NCCL on CUDA, each process on its local rank's GPU) and lets the
trainer take its share of every batch. Only rank 0 writes anything: the model file,
checkpoints, progress, `--json`, `--metrics-out`. Without those variables this is one process
and nothing here touches torch.distributed. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from zoo.core.errors import ZooError

# How long a collective operation may wait for the other processes before it fails, instead
# of hanging: a rank that died leaves the others to time out.
TIMEOUT = timedelta(seconds=float(os.environ.get("ZOO_DIST_TIMEOUT", "300")))


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """Rank 0 writes files and output; the others write nothing anywhere."""
        return self.rank == 0


def from_environment() -> Processes:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them; one process without them."""
    try:
        return Processes(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError:
        return Processes()


def start(device_type: str) -> Processes:
    """Join the process group when torchrun started this process (once; later calls reuse
    it): gloo for CPU training, NCCL for CUDA."""
    procs = from_environment()
    if procs.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            store = _attempt_store(procs)
            if store is None:
                dist.init_process_group(backend, timeout=TIMEOUT)
            else:
                dist.init_process_group(
                    backend, store=store, rank=procs.rank, world_size=procs.world_size,
                    timeout=TIMEOUT,
                )  # fmt: skip
    return procs


def _attempt_store(procs: Processes) -> Any:
    """torchrun's own key-value store, under a prefix of its own for each restart.

    torchrun keeps one store for the whole job. Without a prefix, a process of a restarted
    group can read the address a process of the group before it published there, dead since,
    and fail to connect (gloo: "Connection refused"), as the restart tests showed about one
    time in four on a busy machine. None when torchrun lets rank 0 host the store instead."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    import torch.distributed as dist

    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        procs.world_size,
        is_master=False,
        timeout=TIMEOUT,
    )
    return dist.PrefixStore(f"zoo/attempt_{restart_count()}", store)


class PeerLost(ZooError):
    """Another training process stopped (killed, out of memory, its machine gone) while this
    one waited for it. Its launcher (torchrun) reports which one and why; this process ends
    without a word of its own, so the user reads one line, not one per survivor."""

    quiet = True


@contextlib.contextmanager
def peers_watched() -> Iterator[None]:
    """Turn the communication backend's failure, when a peer is gone, into PeerLost."""
    try:
        yield
    except RuntimeError as e:
        import torch.distributed as dist

        gone = isinstance(e, dist.DistError) or "gloo" in str(e) or "NCCL" in str(e)
        if not (gone and dist.is_available() and dist.is_initialized()):
            raise
        raise PeerLost(f"another training process stopped: {e}") from e


def restart_count() -> int:
    """How many times torchrun has restarted this group of processes (`--max-restarts`): 0
    on the first attempt and outside torchrun."""
    text = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return int(text) if text.isdigit() else 0


def job_id() -> str | None:
    """The job's id under torchrun (its rendezvous id; a fresh one for each `--standalone`
    launch), the same in every process and every restart; None outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


def finish() -> None:
    """Leave the process group, if this process joined one: all processes together (a
    barrier first), so none tears its connections down while another still uses them; a
    process that left the group early (killed) makes the barrier fail at once, and the
    others leave anyway. (One CI run saw rank 1 abort in gloo, "terminate called without an
    active exception", leaving while rank 0 still evaluated.)"""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    with contextlib.suppress(Exception):  # a peer is gone: nothing to wait for
        dist.barrier()
    dist.destroy_process_group()


def all_sum(values: list[float], device: Any) -> list[float]:
    """The element-wise sum of `values` over all processes (itself on one process)."""
    return finish_sum(start_sum(values, device))


def start_sum(values: list[float], device: Any) -> Any:
    """Start `all_sum` without waiting for it, so that work done meanwhile (the backward pass)
    hides the round trip; `finish_sum` waits and gives the sums."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values, None
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    return tensor, dist.all_reduce(tensor, async_op=True)


def finish_sum(started: Any) -> list[float]:
    values, work = started
    if work is None:
        return values
    work.wait()
    return values.tolist()


def all_gather_cpu(tensor: Any, device: Any) -> list[Any]:
    """Every process's `tensor` (same shape and type everywhere), by rank, on the CPU; on one
    process, `[tensor]`. Used for each process's random state in a checkpoint."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [tensor]
    local = tensor.to(device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return [t.cpu() for t in gathered]


def all_gather_objects(value: Any, device: Any = None) -> list[Any]:
    """Every process's `value` (any picklable object), by rank; `[value]` on one process.
    Sharded validation gathers each process's `Tally` this way: a few sums and tables once
    per validation, where the pickling costs nothing that shows. On NCCL the objects travel
    through the current CUDA device, so `device` (this process's GPU) is made current."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    on_gpu = device is not None and torch.device(device).type == "cuda"
    with torch.cuda.device(device) if on_gpu else contextlib.nullcontext():
        dist.all_gather_object(gathered, value)
    return gathered


def peak_rss_mib(device: Any) -> list[float] | None:
    """The peak resident memory of every process so far, in MiB, by rank (None where the
    system does not say: no `resource` module)."""
    try:
        import resource
    except ImportError:
        return None
    import torch.distributed as dist

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes, else KiB
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    if not (dist.is_available() and dist.is_initialized()):
        return [round(mine, 1)]
    world, rank = dist.get_world_size(), dist.get_rank()
    values = [mine if r == rank else 0.0 for r in range(world)]
    return [round(v, 1) for v in all_sum(values, device)]
