"""Data named by a URL (`--data https://...`, `s3://...`, `gs://...`): fetched once into
zoo's cache through fsspec, then read as the local file it became (docs/remote-data.md).

Why a local copy rather than reading through fsspec: every reader in zoo (and in plugins)
reads paths, several times per run (fingerprint, parse, the prepared-data cache) and again
in every process of a distributed run; one download serves them all and every later run.

- A copy is keyed by the URL and what the server says about the object (ETag, Last-Modified,
  size, and their S3 and GCS names), so a changed object is fetched again and an unchanged one
  never is; the server is asked each time (one HEAD request), nothing stale is used.
- It is downloaded into a temporary folder beside its final place and renamed when complete:
  a download killed half way leaves nothing a later run takes as done.
- A URL ending in `/` (or an S3/GCS prefix) names a folder (a treebank), fetched whole when
  fsspec can list it; over HTTP that needs the server's index page, else one URL names one
  file.
- Every request has a connect and a read timeout, `ZOO_REMOTE_TIMEOUT` seconds (default 30);
  a failure is one `DataError` naming the URL and why (HTTP status, refused, no answer).

Torch-free; fsspec (the `remote` extra, with aiohttp for HTTP) is imported when a URL is met.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.core.cachedir import cache_home
from zoo.core.errors import DataError, UsageError

__all__ = ["fetch", "is_url", "localised", "timeout_seconds"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# the package fsspec needs for a scheme, beyond the `remote` extra (fsspec and aiohttp)
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs"}
# what fsspec's file systems report about an object that changes when the object does
_VALIDATORS = (
    "ETag", "etag", "Content-MD5", "Digest", "Last-Modified", "LastModified", "last_modified",
    "mtime", "updated", "md5Hash", "crc32c", "size",
)  # fmt: skip
_PATH_FIELDS = ("path", "dev_path", "test_path")


def is_url(path: Any) -> bool:
    """Whether a `--data` value is a URL (`scheme://...`) rather than a local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def timeout_seconds() -> float:
    """The connect and read timeout of each request: `ZOO_REMOTE_TIMEOUT`, default 30 s."""
    text = os.environ.get("ZOO_REMOTE_TIMEOUT", "30")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"ZOO_REMOTE_TIMEOUT={text!r}: expected a number of seconds above 0")
    return value


def localised(config: Any, cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """A copy of a dataset config whose URL paths (`path`, `dev_path`, `test_path`) name
    their local copies, fetched when needed; the config itself keeps the URLs, so the model
    file records what the user gave. A config without URLs is returned as it is."""
    if not dataclasses.is_dataclass(config):
        return config
    urls = {f: getattr(config, f) for f in _PATH_FIELDS if is_url(getattr(config, f, None))}
    if not urls:
        return config
    return dataclasses.replace(config, **{f: str(fetch(u, cache_dir)) for f, u in urls.items()})


def fetch(url: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The local copy of `url` (a file, or a folder of files), downloaded unless the cache
    holds the copy of the object as the server describes it now."""
    fs, path, scheme = _filesystem(url)
    with _failures(url):
        files = _listing(fs, path, url)
        described = files if files is not None else [_described(fs.info(path))]
        key = _key(url, described)
        root = _remote_home(cache_dir)
        name = _name(url) or scheme
        done = root / key / name
        if done.exists():
            return done
        return _download(fs, root / key, url, name, files if files is not None else path)


def _filesystem(url: str) -> tuple[Any, str, str]:
    """fsspec's file system for the URL, with bounded timeouts, and the path within it."""
    scheme = (_SCHEME.match(url) or [None, ""])[1].lower()
    try:
        import fsspec
    except ImportError:
        raise UsageError(
            f"{url}: reading data from a URL needs fsspec: pip install 'rnn-zoo[remote]'"
        ) from None
    try:
        return (*fsspec.core.url_to_fs(url, **_options(scheme)), scheme)
    except ImportError as e:  # fsspec knows the scheme; the package that reads it is absent
        package = _PACKAGES.get(scheme)
        need = f"need {package}: pip install {package}" if package else f"need a package ({e})"
        raise UsageError(f"{url}: {scheme}:// URLs {need}") from None
    except ValueError as e:  # an unknown protocol
        raise UsageError(f"{url}: fsspec cannot read {scheme}:// URLs ({e})") from None


def _options(scheme: str) -> dict[str, Any]:
    """Per-scheme options that bound how long a request may wait."""
    seconds = timeout_seconds()
    if scheme in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        return {
            "client_kwargs": {"timeout": timeout},
            "skip_instance_cache": True,
            "use_listings_cache": False,
        }
    if scheme in ("s3", "s3a"):
        config = {"connect_timeout": seconds, "read_timeout": seconds}
        return {"config_kwargs": {**config, "retries": {"max_attempts": 2}}}
    if scheme in ("gs", "gcs"):
        return {"timeout": seconds}
    return {}


def _listing(fs: Any, path: str, url: str) -> list[dict[str, Any]] | None:
    """The files of a folder URL, each described, in name order; None for a file. Over HTTP
    only a URL ending in `/` is taken as a folder (every URL also answers as a file)."""
    http = type(fs).__name__ == "HTTPFileSystem"
    if http and not url.endswith("/"):
        return None
    if not http and not fs.isdir(path):
        return None
    entries = fs.ls(path, detail=True)
    files = sorted((e for e in entries if e.get("type") == "file"), key=lambda e: e["name"])
    if not files:
        raise DataError(
            "a folder URL whose files cannot be listed (an HTTP server needs an index page "
            "of links); name one file per URL with --data, --dev and --test instead",
            path=url,
        )
    return [{**_described(fs.info(e["name"]) if http else e), "path": e["name"]} for e in files]


def _described(info: dict[str, Any]) -> dict[str, Any]:
    """What identifies this version of an object: the validators its server gives."""
    return {k: str(info[k]) for k in _VALIDATORS if info.get(k) is not None}


def _key(url: str, described: list[dict[str, Any]]) -> str:
    text = json.dumps([url, described], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _name(url: str) -> str:
    """The file or folder name a URL ends in (what readers may look at: `.conllu`, `-train`)."""
    tail = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^\w.+-]", "_", tail) if "://" not in tail else ""


def _remote_home(cache_dir: str | os.PathLike[str] | None) -> Path:
    """`<cache home>/remote`: beside prepared data, so one setting moves or clears both."""
    return cache_home(cache_dir or os.environ.get("ZOO_CACHE_DIR") or None) / "remote"


def _download(fs: Any, entry: Path, url: str, name: str, what: str | list[dict]) -> Path:
    """Download `what` (a path, or a folder's described files) into a temporary folder
    beside `entry` and rename it to `entry` when complete: a killed download leaves only a
    `.part` folder, never an entry. Another process that finished first wins; its copy is
    used."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=f".{entry.name}.part-", dir=entry.parent))
    try:
        target = part / name
        if isinstance(what, str):
            fs.get_file(what, str(target))
        else:
            target.mkdir()
            for described in what:
                remote = str(described["path"])
                fs.get_file(remote, str(target / _name(remote)))
        about = {"url": url, "name": name}
        (part / "source.json").write_text(json.dumps(about) + "\n", encoding="utf-8")
        with contextlib.suppress(OSError):  # another process renamed its copy first
            os.rename(part, entry)
    finally:
        shutil.rmtree(part, ignore_errors=True)
    return entry / name


@contextlib.contextmanager
def _failures(url: str) -> Any:
    """Whatever goes wrong reaching the object becomes one DataError naming the URL."""
    try:
        yield
    except (DataError, UsageError):
        raise
    except Exception as e:
        raise DataError(_reason(e), path=url) from None


def _reason(error: BaseException) -> str:
    """One short reason for a failed request: the HTTP status, refused, or no answer."""
    seen: BaseException | None = error
    while seen is not None:
        status = getattr(seen, "status", None) or getattr(seen, "code", None)
        if isinstance(status, int) and status >= 400:
            return f"HTTP {status} {getattr(seen, 'message', '')}".rstrip()
        name = type(seen).__name__
        if "Timeout" in name or isinstance(seen, TimeoutError):
            return f"no answer within {timeout_seconds():g} s (ZOO_REMOTE_TIMEOUT)"
        if isinstance(seen, ConnectionRefusedError):
            return "cannot connect: connection refused"
        if "Connector" in name:  # aiohttp's: the system's error is its os_error
            cause = getattr(seen, "os_error", None)
            if isinstance(cause, ConnectionRefusedError):
                return "cannot connect: connection refused"
            return f"cannot connect: {getattr(cause, 'strerror', None) or _first_line(seen)}"
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, FileNotFoundError):
        return "not found"
    return f"cannot fetch ({type(error).__name__}: {_first_line(error)})"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else ""
