"""`--data URL`: fetched once through fsspec into the cache, read as the local file; the
model file keeps the URL; failures are one line within a bounded time (zoo/toolkit/remote.py,
docs/remote-data.md). A real HTTP server on 127.0.0.1 serves real files from ../shared/data."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.conftest import SHARED_DATA
from zoo.core.errors import DataError, UsageError
from zoo.core.modelfile import read_header
from zoo.toolkit import remote

ETT = SHARED_DATA / "ett"
EWT = SHARED_DATA / "ud-english-ewt"
needs_data = pytest.mark.skipif(
    not (ETT.is_dir() and EWT.is_dir()), reason="../shared/data (ETTh1, EWT) is absent"
)
RECIPE = ["--dataset", "csv", "--set", "preset=ett-h1-ot", "--steps", "3", "-q", "--no-log"]
RECIPE += ["--set", "hidden_size=16"]


class Server:
    """http.server over a folder on a free port of 127.0.0.1, in a thread; counts requests
    by (method, path); `/fail/...` answers 500, `/cut/NAME` sends half of NAME and hangs up."""

    def __init__(self, folder: Path):
        self.requests: Counter[tuple[str, str]] = Counter()
        handler = functools.partial(_Handler, self, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, path: str) -> int:
        return self.requests["GET", path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, server_state: Server, *args, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, *args) -> None:  # quiet
        pass

    def _count(self) -> bool:
        self.state.requests[self.command, self.path] += 1
        if self.path.startswith("/fail/"):
            self.send_error(500, "broken on purpose")
            return False
        if self.path.startswith("/cut/"):
            body = Path(self.directory, self.path[len("/cut/") :]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            return False
        return True

    def do_GET(self) -> None:
        if self._count():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._count():
            super().do_HEAD()


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    """Serves a folder with ETTh1.csv (the real file, linked, not copied) and `ewt/`, the
    first sentences of each EWT file."""
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "ETTh1.csv").symlink_to(ETT / "ETTh1.csv")
    (folder / "ewt").mkdir()
    for name in ("en_ewt-ud-train.conllu", "en_ewt-ud-dev.conllu", "en_ewt-ud-test.conllu"):
        text = (EWT / name).read_text(encoding="utf-8")
        (folder / "ewt" / name).write_text("\n\n".join(text.split("\n\n")[:40]) + "\n\n")
    (folder / "empty").mkdir()
    s = Server(folder)
    yield s
    s.close()


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x)


@pytest.mark.slow
@needs_data
def test_training_from_a_url_is_training_from_the_file_and_fetches_once(zoo, server, tmp_path):
    url = f"{server.url}/ETTh1.csv"
    local = zoo("run", "gru-regressor", "--data", ETT / "ETTh1.csv", *RECIPE, "--out", "a.st")
    assert local.code == 0, local.stderr
    first = zoo("run", "gru-regressor", "--data", url, *RECIPE, "--out", "b.st")
    assert first.code == 0, first.stderr
    assert same_weights(tmp_path / "a.st", tmp_path / "b.st")
    assert server.gets("/ETTh1.csv") == 1
    again = zoo("run", "gru-regressor", "--data", url, *RECIPE, "--out", "c.st")
    assert again.code == 0, again.stderr
    assert server.gets("/ETTh1.csv") == 1  # asked (HEAD) whether it changed, not downloaded
    assert server.requests["HEAD", "/ETTh1.csv"] >= 2
    assert same_weights(tmp_path / "a.st", tmp_path / "c.st")
    metadata, _ = read_header(tmp_path / "c.st")
    assert url in json.dumps(metadata)  # the file records the URL given, not the local copy
    scores = [zoo("eval", "a.st", "--data", d, "--json").json() for d in (ETT / "ETTh1.csv", url)]
    assert scores[0]["metrics"] == scores[1]["metrics"]
    assert server.gets("/ETTh1.csv") == 1


@pytest.mark.slow
@needs_data
def test_a_folder_url_is_fetched_whole_and_read_as_the_folder(zoo, server, tmp_path):
    """A treebank folder over HTTP (the server's index page lists its files)."""
    args = ["--dataset", "conllu", "--steps", "2", "-q", "--no-log", "--set", "hidden_size=16"]
    args += ["--set", "aux_columns=", "--set", "char_encoder=none"]
    local = zoo("run", "lstm-tagger", "--data", tmp_path / "served" / "ewt", *args, "--out", "a.st")
    assert local.code == 0, local.stderr
    r = zoo("run", "lstm-tagger", "--data", f"{server.url}/ewt/", *args, "--out", "b.st")
    assert r.code == 0, r.stderr
    assert same_weights(tmp_path / "a.st", tmp_path / "b.st")
    assert server.gets("/ewt/en_ewt-ud-train.conllu") == 1
    assert zoo("run", "lstm-tagger", "--data", f"{server.url}/ewt/", *args).code == 0
    assert server.gets("/ewt/en_ewt-ud-train.conllu") == 1


@needs_data
def test_http_errors_are_one_line_naming_the_url_and_status_quickly(zoo, server, monkeypatch):
    for path, expected in [("/missing.csv", "HTTP 404"), ("/fail/ETTh1.csv", "HTTP 500")]:
        started = time.monotonic()
        r = zoo("run", "gru-regressor", "--data", server.url + path, *RECIPE)
        assert r.code == 1 and time.monotonic() - started < 20
        assert r.error_line().startswith(f"Error: {server.url}{path}: {expected}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/ETTh1.csv"  # bound, not listening
        r = zoo("run", "gru-regressor", "--data", closed, *RECIPE)
    assert r.error_line() == f"Error: {closed}: cannot connect: connection refused"


def test_a_server_that_never_answers_times_out(zoo, monkeypatch):
    """A socket that accepts connections (the kernel's backlog) and never answers: the read
    timeout (ZOO_REMOTE_TIMEOUT) ends the wait with one line."""
    monkeypatch.setenv("ZOO_REMOTE_TIMEOUT", "0.5")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/ETTh1.csv"
        started = time.monotonic()
        r = zoo("run", "gru-regressor", "--dataset", "csv", "--data", url, "-q", "--no-log")
        elapsed = time.monotonic() - started
    assert r.error_line() == f"Error: {url}: no answer within 0.5 s (ZOO_REMOTE_TIMEOUT)"
    assert elapsed < 15
    monkeypatch.setenv("ZOO_REMOTE_TIMEOUT", "soon")
    r = zoo("run", "gru-regressor", "--dataset", "csv", "--data", url, "-q", "--no-log")
    assert r.code == 2 and "ZOO_REMOTE_TIMEOUT='soon'" in r.error_line()


@needs_data
def test_a_cut_download_leaves_nothing_taken_as_complete(server, zoo_home):
    """The server hangs up half way: one error; only a `.part` folder may remain, never an
    entry; the next fetch of a whole file works."""
    url = f"{server.url}/cut/ETTh1.csv"
    with pytest.raises(DataError, match="cut/ETTh1.csv"):
        remote.fetch(url)
    home = zoo_home / "cache" / "remote"
    assert [p.name for p in home.iterdir() if not p.name.startswith(".")] == []
    copy = remote.fetch(f"{server.url}/ETTh1.csv")
    assert copy.read_bytes() == (ETT / "ETTh1.csv").read_bytes()
    assert copy.parent.parent == home and (copy.parent / "source.json").is_file()


def test_urls_without_their_packages_name_the_extra(zoo, monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)
    r = zoo("run", "gru-regressor", "--dataset", "csv", "--data", "s3://bucket/x.csv", "-q")
    assert r.code == 2 and r.error_line() == (
        "Error: s3://bucket/x.csv: s3:// URLs need s3fs: pip install s3fs"
    )
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(UsageError, match=r"needs fsspec: pip install 'rnn-zoo\[remote\]'"):
        remote.fetch("https://example.org/x.csv")


def test_what_counts_as_a_url():
    assert remote.is_url("https://a.org/x.csv") and remote.is_url("s3://bucket/key")
    assert not remote.is_url("data/x.csv") and not remote.is_url("C:\\data\\x.csv")
    assert not remote.is_url(None)


@needs_data
def test_a_folder_url_that_lists_no_files_says_to_name_each_file(server):
    with pytest.raises(DataError) as e:
        remote.fetch(f"{server.url}/empty/")
    assert str(e.value).startswith(f"{server.url}/empty/: a folder URL whose files cannot be")
    assert "--data, --dev and --test" in str(e.value)
