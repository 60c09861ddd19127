"""`zoo run NAME --nproc-per-node N`: start the run again under torchrun (`torch.distributed.run`).

The launching `zoo run` checks the launcher options, builds a torchrun command line that runs
`python -m zoo run ...` with the user's other arguments in every worker, starts it as a child
process, forwards Ctrl-C and SIGTERM to it, and exits with its exit code. torchrun sets RANK,
WORLD_SIZE and LOCAL_RANK in each worker; `zoo.distributed` reads them there. One machine
uses torchrun's `--standalone` rendezvous; several use c10d on `--rdzv-endpoint HOST:PORT`.

The child is `python -m zoo.launch TORCHRUN-OPTIONS -m zoo run ARGS`: torchrun's own `main`
(what `torchrun` and `python -m torch.distributed.run` run), with its ways of ending turned
into zoo's: a signal ends it quietly with 128 + the signal's number instead of a traceback, a
failed worker with one `Error:` line naming its rank (unless the worker said why itself), a
rendezvous that fails with one line naming the endpoint.

Importing this module does not import torch: the launching process never trains.
"""

from __future__ import annotations

import codecs
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from zoo.core.errors import UsageError

# How long a node waits for the others to join the rendezvous before it gives up (torchrun's
# own default is 600 s): an unreachable endpoint or a missing node is an error, not a hang.
# ZOO_RDZV_TIMEOUT=SECONDS changes it.
JOIN_TIMEOUT = 60
WAITING_SAID_AFTER = 5  # seconds of waiting for the rendezvous before a line says so

# Variables torchrun sets in every worker: a `zoo run` that sees one is a worker already.
WORKER_VARIABLES = ("TORCHELASTIC_RUN_ID", "RANK")

FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def rendezvous_timeout() -> int:
    """The rendezvous join timeout in seconds: ZOO_RDZV_TIMEOUT, or JOIN_TIMEOUT."""
    text = os.environ.get("ZOO_RDZV_TIMEOUT", "").strip()
    if not text:
        return JOIN_TIMEOUT
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"ZOO_RDZV_TIMEOUT={text!r}: needs a whole number of seconds, 1 or more")
    return int(text)


def in_worker(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started by torchrun (or another launcher that sets RANK)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in WORKER_VARIABLES)


# ----------------------------------------------------------------------------- checking
def parse_nnodes(nnodes: str | int | None) -> tuple[int, int]:
    """`--nnodes` as torchrun takes it: M, or MIN:MAX for an elastic job; (min, max)."""
    if nnodes is None:
        return 1, 1
    text = str(nnodes).strip()
    parts = text.split(":")
    try:
        if len(parts) == 1:
            low = high = int(parts[0])
        elif len(parts) == 2:
            low, high = int(parts[0]), int(parts[1])
        else:
            raise ValueError(text)
    except ValueError:
        raise UsageError(
            f"--nnodes {text!r} is not a number of machines (M, or MIN:MAX such as 2:4)"
        ) from None
    if low < 1 or high < low:
        raise UsageError(f"--nnodes {text!r}: needs 1 <= MIN <= MAX (M, or MIN:MAX such as 2:4)")
    return low, high


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """`--rdzv-endpoint HOST:PORT` (an IPv6 host in brackets: `[::1]:29500`)."""
    text = endpoint.strip()
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    bracketed = text.startswith("[")
    problem = None
    if not sep or not host or (":" in host and not bracketed):
        problem = "needs HOST:PORT, such as 10.0.0.1:29500"
    elif not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        problem = f"port {port_text!r} is not a number from 1 to 65535"
    if problem is not None:
        raise UsageError(f"--rdzv-endpoint {endpoint!r}: {problem}")
    return host, int(port_text)


def check(
    nproc_per_node: int,
    *,
    nnodes: str | None = None,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    threads: int | None = None,
    cpu_count: int | None = None,
    warn: Any = None,
) -> None:
    """Refuse launcher options torchrun would fail on or wait forever with (a UsageError, one
    line), and warn on stderr when the processes' threads outnumber the CPU cores.

    `threads` is the threads asked for (`--threads` or `--set threads=`; None: not asked, so
    each process takes its share of the cores, `fair_threads`; 0: torch's default, all cores)."""
    if nproc_per_node < 1:
        raise UsageError(f"--nproc-per-node {nproc_per_node}: needs at least 1 process")
    rendezvous_timeout()
    _, high = parse_nnodes(nnodes)
    if node_rank is not None:
        if nnodes is None:
            raise UsageError("--node-rank needs --nnodes (the number of machines)")
        if not 0 <= node_rank < high:
            raise UsageError(
                f"--node-rank {node_rank}: needs 0 <= R < {high} (--nnodes {str(nnodes).strip()})"
            )
    if rdzv_endpoint is not None:
        parse_endpoint(rdzv_endpoint)
    elif high > 1:
        raise UsageError(
            f"--nnodes {str(nnodes).strip()} needs --rdzv-endpoint HOST:PORT "
            "(a machine every node can reach, the same on each)"
        )
    cores = os.cpu_count() if cpu_count is None else cpu_count
    share = max(1, (cores or 1) // nproc_per_node)
    per_process = share if threads is None else threads or (cores or 1)
    if cores and nproc_per_node * per_process > cores:
        (warn or _warn)(
            f"warning: {nproc_per_node} processes x {per_process} thread(s) on {cores} CPU "
            "core(s): they will compete for the cores; fewer processes or --threads 1 is faster"
        )


def fair_threads(
    settings: dict[str, Any],
    environ: Mapping[str, str] | None = None,
    cpu_count: int | None = None,
) -> dict[str, Any]:
    """`settings` with each of N processes on this machine (torchrun's LOCAL_WORLD_SIZE) given
    cores / N threads, unless threads were asked for (`--threads`, `--set threads=`, a run
    file): a recipe's own thread count is for one process. Its two threads on each of two
    processes put four threads on two cores, and the EWT tagger ran 17x slower."""
    env = os.environ if environ is None else environ
    local = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local <= 1 or {"threads", "train.threads"} & set(settings):
        return settings
    cores = os.cpu_count() if cpu_count is None else cpu_count
    return {**settings, "train.threads": max(1, (cores or 1) // local)}


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------- the command
def torchrun_command(
    args: Sequence[str],
    *,
    nproc_per_node: int,
    nnodes: str | None = None,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    max_restarts: int = 0,
    join_timeout: int = JOIN_TIMEOUT,
) -> list[str]:
    """The command that runs `zoo run *args` in every worker of this node: torchrun's options
    and entry point, `python -m zoo.launch` standing in for `torchrun` (see `main`)."""
    command = [sys.executable, "-m", "zoo.training.launch"]
    command += ["--nproc-per-node", str(nproc_per_node)]
    if rdzv_endpoint is None and parse_nnodes(nnodes)[1] == 1:
        command += ["--standalone"]
    else:
        command += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint or ""]
        command += ["--nnodes", str(nnodes if nnodes is not None else 1).strip()]
        if node_rank is not None:
            command += ["--node-rank", str(node_rank)]
        command += ["--rdzv-id", rdzv_id or "zoo"]
    command += ["--rdzv-conf", f"join_timeout={join_timeout},read_timeout={join_timeout}"]
    command += ["--max-restarts", str(max_restarts)]
    return [*command, "-m", "zoo", "run", *map(str, args)]


def _stream_target(stream: IO[str]) -> int | None:
    """The file descriptor behind `stream`, for the child to write to directly; None when it
    has none (click's CliRunner, a StringIO): then its output is copied through a pipe."""
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _copy(source: IO[bytes], stream: IO[str]) -> None:
    """Copy as it comes (a progress line ends in a carriage return, not a newline)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: os.read(source.fileno(), 65536), b""):
        stream.write(decoder.decode(chunk))
        stream.flush()
    stream.write(decoder.decode(b"", final=True))
    source.close()


def _start(
    command: list[str], env: Mapping[str, str] | None, threads: int | None
) -> tuple[subprocess.Popen, list[threading.Thread]]:
    """torchrun as a child in its own session, its output copied through where our streams
    have no file descriptor (click's CliRunner)."""
    child_env = dict(os.environ if env is None else env)
    if threads != 0:  # zoo sets the threads itself; this also keeps torchrun from warning
        child_env.setdefault("OMP_NUM_THREADS", str(threads or 1))
    targets = {name: _stream_target(getattr(sys, name)) for name in ("stdout", "stderr")}
    child = subprocess.Popen(
        command,
        stdout=targets["stdout"] if targets["stdout"] is not None else subprocess.PIPE,
        stderr=targets["stderr"] if targets["stderr"] is not None else subprocess.PIPE,
        env=child_env,
        start_new_session=True,
    )
    copiers = [
        threading.Thread(target=_copy, args=(pipe, getattr(sys, name)), daemon=True)
        for name, pipe in (("stdout", child.stdout), ("stderr", child.stderr))
        if pipe is not None
    ]
    for copier in copiers:
        copier.start()
    return child, copiers


def launch(
    args: Sequence[str],
    *,
    nproc_per_node: int,
    nnodes: str | None = None,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
    max_restarts: int = 0,
    threads: int | None = None,
    timeout: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `zoo run *args` under torchrun as a child process and return its exit code.

    SIGINT and SIGTERM (and SIGHUP) reach torchrun once, which passes them on to every worker
    and waits for them to stop (rank 0 saves a checkpoint) before it kills any that linger. The
    child runs in its own session so that a terminal's Ctrl-C reaches it only through here,
    once. After a forwarded signal a failing run exits 128 + the signal's number (130 for
    Ctrl-C), as one process does."""
    command = torchrun_command(
        args,
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        rdzv_id=rdzv_id,
        max_restarts=max_restarts,
        join_timeout=rendezvous_timeout() if timeout is None else timeout,
    )
    child, copiers = _start(command, env, threads)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        # Once only: torchrun handles a second signal in the middle of stopping its workers
        # by giving up on them. It kills them itself if they outstay its shutdown timeout.
        if not received and child.poll() is None:
            child.send_signal(signum)
        received.append(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in FORWARDED_SIGNALS:
            previous[sig] = signal.signal(sig, forward)
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a signal that arrived before the handlers were set
                forward(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for copier in copiers:
            copier.join()
    if received and code != 0:
        return 128 + received[0]
    return code if code >= 0 else 128 - code


# ------------------------------------------------------------------- torchrun, quietly
# Exit codes of a zoo worker that printed its own `Error:` line (runtime, usage, Ctrl-C).
ZOO_EXIT_CODES = (1, 2, 130)


def _first_line(e: BaseException) -> str:
    for error in (e, e.__cause__):
        lines = str(error or "").strip().splitlines()
        if lines and "See inner exception" not in lines[0]:
            return lines[0]
    return type(e).__name__


def _option_value(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg in ("-m", "--module"):  # the workers' command begins: no more torchrun options
            break
    return None


def _timeout_in(argv: Sequence[str]) -> int:
    for item in (_option_value(argv, "--rdzv-conf") or "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "join_timeout" and value.strip().isdigit():
            return int(value)
    return JOIN_TIMEOUT


def _bound_rendezvous(limit: float, endpoint: str) -> None:
    """End this process with one line when the rendezvous neither completes nor fails within
    `limit` seconds. torchrun's own timeouts miss one case: a port held by a program that
    accepts connections but never answers leaves the store client waiting forever. No worker
    runs while a rendezvous is under way (before the first, or after the workers stopped for a
    restart), so ending here leaves nothing behind."""
    from torch.distributed.elastic.agent.server.api import SimpleElasticAgent

    def give_up() -> None:
        _warn(
            f"Error: the rendezvous at {endpoint} did not complete within {limit:.0f} s "
            "(is another program using that port, or a machine of --nnodes missing?)"
        )
        os._exit(1)

    def say_waiting() -> None:  # so that a long wait is not silence
        _warn(f"waiting for the rendezvous at {endpoint} (gives up after {limit:.0f} s)")

    def arm() -> _Timers:
        return _Timers(
            (
                _started(threading.Timer(limit, give_up)),
                _started(threading.Timer(min(WAITING_SAID_AFTER, limit / 2), say_waiting)),
            )
        )

    timers = [arm()]  # from now: the store's connection, then the first rendezvous
    original = getattr(SimpleElasticAgent, "_rendezvous", None)
    if original is None:  # another torch: its own timeouts only
        return

    def rendezvous(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not timers:
            timers.append(arm())
        try:
            return original(self, *args, **kwargs)
        finally:
            timers.pop().cancel()

    SimpleElasticAgent._rendezvous = rendezvous  # type: ignore[method-assign]


class _Timers(tuple):
    """The give-up timer and the waiting line's, cancelled together."""

    def cancel(self) -> None:
        for timer in self:
            timer.cancel()


def _started(timer: threading.Timer) -> threading.Timer:
    timer.daemon = True
    timer.start()
    return timer


def main(argv: Sequence[str] | None = None) -> int:
    """torchrun (`torch.distributed.run.main`) on `argv`, ending as zoo's commands end.

    torchrun's own log lines (each signal it passes on, each worker it stops, each retry to
    reach the endpoint) show only when asked for, with LOGLEVEL=ERROR, WARNING or INFO and
    TORCH_CPP_LOG_LEVEL; failures get their `Error:` line instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    level = os.environ.setdefault("LOGLEVEL", "CRITICAL")  # read as torchrun's modules load
    cpp_level = os.environ.get("TORCH_CPP_LOG_LEVEL")
    os.environ["TORCH_CPP_LOG_LEVEL"] = cpp_level or "FATAL"  # read as torch loads
    import logging

    import torch.distributed as dist
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError, RendezvousTimeoutError
    from torch.distributed.run import main as torchrun

    if cpp_level is None:  # the workers log as they would without zoo
        del os.environ["TORCH_CPP_LOG_LEVEL"]
    logging.getLogger("torch.distributed.elastic").setLevel(level)
    endpoint = _option_value(args, "--rdzv-endpoint")
    timeout = _timeout_in(args)
    if endpoint is not None:
        _bound_rendezvous(timeout, endpoint)
    try:
        torchrun(args)
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = failure.exitcode
        if code in ZOO_EXIT_CODES:
            return code
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.Signals._value2member_map_
            else f"exited with code {code}"
        )
        _warn(f"Error: training process rank {rank} (local rank {failure.local_rank}) {how}")
        return 128 - code if code < 0 else code or 1
    except RendezvousTimeoutError:
        _warn(
            f"Error: the rendezvous at {endpoint} timed out after {timeout} s: not every "
            f"machine of --nnodes {_option_value(args, '--nnodes')} joined"
        )
        return 1
    except (RendezvousError, dist.DistError) as e:
        _warn(f"Error: the rendezvous at {endpoint} failed: {_first_line(e)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
