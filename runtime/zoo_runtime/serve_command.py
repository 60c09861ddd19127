"""`zoo-runtime serve FILE.onnx [FILE.onnx ...]`: serve exported models over HTTP with the
server of zoo_runtime.server (docs/serving.md), without torch or zoo. Its options are
`zoo serve`'s; a mistake is one `Error:` line, as the rest of zoo-runtime."""

from __future__ import annotations

import argparse
from typing import NoReturn

from .onnxfile import UsageError

INSTALL = "pip install 'rnn-zoo-runtime[serve]' (from a clone: pip install './runtime[serve]')"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"serve: {message}")


def _number(kind: type, low: float = 1, high: float = float("inf")) -> object:
    """A number from `low` to `high`, as zoo serve's click ranges check."""

    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text[:60]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected a number from {low:g}" + (f" to {high:g}" if high < float("inf") else "")
            )
        return value

    parse.__name__ = kind.__name__
    return parse


def parser() -> argparse.ArgumentParser:
    from . import server as s

    p = _Parser(
        prog="zoo-runtime serve",
        description="Serve models exported by `zoo export` over HTTP (docs/serving.md).",
        allow_abbrev=False,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".onnx files; each is /v1/models/NAME")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument(
        "--port", type=_number(int, 0, 65535), default=8000, help="port to listen on (8000)"
    )
    p.add_argument("--max-batch", type=_number(int), default=s.MAX_BATCH,
                   help=f"most inputs in one predict call ({s.MAX_BATCH})")  # fmt: skip
    p.add_argument("--max-wait-ms", type=_number(float, 0), default=s.MAX_WAIT_MS,
                   help=f"longest a request waits for others to join it ({s.MAX_WAIT_MS:g})")  # fmt: skip
    p.add_argument("--group", type=_number(int), default=s.GROUP,
                   help=f"inputs run at once inside a batch, by length ({s.GROUP})")  # fmt: skip
    p.add_argument("--workers", type=_number(int), default=None,
                   help="server processes (default: one per core, at most 8)")  # fmt: skip
    p.add_argument("--threads", type=_number(int), default=1,
                   help="onnxruntime threads per process (1)")  # fmt: skip
    p.add_argument("--max-body", type=_number(int), default=s.MAX_BODY,
                   help=f"bytes of one request body ({s.MAX_BODY})")  # fmt: skip
    p.add_argument("--graceful-timeout", type=_number(float, 0), default=s.GRACEFUL_TIMEOUT,
                   help="seconds to finish requests in flight after SIGTERM (30)")  # fmt: skip
    p.add_argument("--access-log", action="store_true", help="log every request")
    return p


def serve_command(argv: list[str]) -> int:
    """Parse and serve. One process opens every file before it listens; with several, each
    worker opens its own and this process loads none (a bad file is the first worker's error,
    said here in the same one line, before any worker listens)."""
    from . import server

    args = parser().parse_args(argv)
    server.needs("zoo-runtime serve", INSTALL)
    spec = {
        "loader": server.ONNX_LOADER,
        "args": {"files": args.files, "threads": args.threads, "group": args.group},
        "app": app_settings(args),
    }
    workers = args.workers or server.default_workers()
    server.serve(
        spec,
        host=args.host,
        port=args.port,
        workers=workers,
        graceful_timeout=args.graceful_timeout,
        access_log=args.access_log,
        backends=server.build_backends(spec) if workers == 1 else None,
    )
    return 0


def app_settings(args: argparse.Namespace) -> dict[str, object]:
    """create_app's settings from the options both serve commands share."""
    return {
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "max_body": args.max_body,
    }
