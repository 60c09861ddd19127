"""Evicting prepared data (zoo/training/cacheprune.py, docs/data.md "Eviction"): each map
records its use, `zoo data prune --max-size` removes least recently used entries first,
`zoo data rm --older-than` unused ones, ZOO_CACHE_MAX prunes after a run prepares a new
entry, and an entry a process uses is never removed."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from zoo.core import config as cfg
from zoo.core.errors import UsageError
from zoo.core.registry import get_registry
from zoo.training import cacheprune, datacache, datasets

DAY = 86400


def prepared(tmp_path: Path, home: Path, name: str, pairs: int) -> str:
    """A sentence-pairs entry made from `pairs` lines; nothing keeps it in use after."""
    path = tmp_path / f"{name}.tsv"
    path.write_text("".join(f"{name} {i} here .\tthere {i} .\n" for i in range(pairs)))
    spec = get_registry().dataset("sentence-pairs").spec
    config = cfg.build(spec.config, {"path": str(path)})
    data, key, _ = datasets.prepare(get_registry(), "sentence-pairs", config, home)
    del data
    gc.collect()  # the data is gone, so is this process's hold of the entry
    assert key is not None and not cacheprune.in_use(home, key)
    return key


def used(home: Path, key: str, days_ago: float) -> None:
    stamp = time.time() - days_ago * DAY
    os.utime(cacheprune.use_file(home, key), (stamp, stamp))


def keys(home: Path) -> set[str]:
    return {e["key"] for e in datacache.entries(home)}


def size(home: Path, key: str) -> int:
    return next(e["bytes"] for e in datacache.entries(home) if e["key"] == key)


@pytest.fixture
def three(tmp_path):
    """Entries a, b, c last used 3, 2 and 1 days ago, in `<cache>/data`."""
    home = tmp_path / "cache" / "data"
    made = [prepared(tmp_path, home, name, 20 + 10 * i) for i, name in enumerate("abc")]
    for key, days in zip(made, (3, 2, 1)):
        used(home, key, days)
    return home, made


def test_each_map_records_its_last_use(tmp_path):
    home = tmp_path / "data"
    key = prepared(tmp_path, home, "a", 20)
    used(home, key, 10)
    (entry,) = datacache.entries(home)
    assert time.time() - cacheprune.last_used(entry) > 9 * DAY
    prepared(tmp_path, home, "a", 20)  # mapped again
    assert time.time() - cacheprune.last_used(entry) < 60


def test_prune_removes_the_least_recently_used_down_to_the_size(three, zoo):
    home, (a, b, c) = three
    cache = home.parent
    limit = str(size(home, c))
    dry = zoo("data", "prune", "--max-size", limit, "--dry-run", "--cache-dir", cache, "--json")
    assert dry.code == 0 and json.loads(dry.stdout)["removed"] == [a, b]
    assert keys(home) == {a, b, c}
    r = zoo("data", "prune", "--max-size", limit, "--cache-dir", cache, "--json")
    report = json.loads(r.stdout)
    assert report["removed"] == [a, b] and report["remaining_bytes"] == size(home, c)
    assert keys(home) == {c} and not cacheprune.use_file(home, a).exists()
    assert zoo("data", "prune", "--max-size", "1G", "--cache-dir", cache).code == 0
    assert keys(home) == {c}


def test_rm_older_than_removes_entries_unused_for_that_long(three, zoo):
    home, (_, _, c) = three
    r = zoo("data", "rm", "--older-than", "1.5", "--cache-dir", home.parent)
    assert r.code == 0 and r.stdout.startswith("removed 2 entries")
    assert keys(home) == {c}
    assert zoo("data", "rm", "--older-than", "2", "--all", "--cache-dir", home.parent).code == 2


HOLDER = """
import sys
from pathlib import Path
from zoo.training import cacheprune
use = cacheprune.Use(Path(sys.argv[1]), sys.argv[2])
print("held", flush=True)
sys.stdin.read()
"""


def holding(home: Path, key: str) -> subprocess.Popen:
    """Another process that holds entry `key` as a run mapping it does, until its stdin
    closes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home), key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_an_entry_in_use_is_never_removed(three, zoo):
    home, (a, b, c) = three
    cache = home.parent
    holder = holding(home, a)  # a is now the most recently used, and in use
    try:
        listed = json.loads(zoo("data", "ls", "--json", "--cache-dir", cache).stdout)["entries"]
        assert {e["key"]: e["in_use"] for e in listed} == {a: True, b: False, c: False}
        r = zoo("data", "prune", "--max-size", "0", "--cache-dir", cache)
        assert r.code == 0 and f"kept {a}: in use" in r.stdout
        assert keys(home) == {a}
        r = zoo("data", "rm", a, "--cache-dir", cache)
        assert r.code == 1 and f"kept {a}: in use by a running process" in r.error_line()
        assert keys(home) == {a}
    finally:
        holder.communicate("", timeout=30)
    assert zoo("data", "rm", a, "--cache-dir", cache).code == 0 and keys(home) == set()


def test_a_killed_holder_leaves_no_stale_use(three):
    home, (a, _, _) = three
    holder = holding(home, a)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert not cacheprune.in_use(home, a) and cacheprune.remove(home, a)


def test_data_held_in_this_process_keeps_its_entry_until_it_is_gone(tmp_path):
    home = tmp_path / "data"
    key = prepared(tmp_path, home, "a", 20)
    spec = get_registry().dataset("sentence-pairs").spec
    config = cfg.build(spec.config, {"path": str(tmp_path / "a.tsv")})
    data = datasets.prepare(get_registry(), "sentence-pairs", config, home)[0]
    assert cacheprune.in_use(home, key) and not cacheprune.remove(home, key)
    assert len(data.splits["train"]) > 0
    del data
    gc.collect()
    assert cacheprune.remove(home, key) and keys(home) == set()


def test_zoo_cache_max_prunes_when_a_run_prepares_a_new_entry(three, monkeypatch, capsys):
    home, (a, _, c) = three
    # room for c and for d, smaller than a: a and b go, least recently used first
    monkeypatch.setenv("ZOO_CACHE_MAX", str(size(home, c) + size(home, a)))
    d = prepared(home.parent.parent, home, "d", 15)
    assert keys(home) == {c, d}
    assert "ZOO_CACHE_MAX=" in capsys.readouterr().err
    monkeypatch.setenv("ZOO_CACHE_MAX", "lots")
    with pytest.raises(UsageError, match="ZOO_CACHE_MAX 'lots': expected a size such as"):
        prepared(home.parent.parent, home, "e", 15)


def test_sizes_read_as_people_write_them():
    assert cacheprune.parse_size("500M", "x") == 500_000_000
    assert cacheprune.parse_size("1.5 GB", "x") == 1_500_000_000
    assert cacheprune.parse_size("2GiB", "x") == 2 * 2**30
    assert cacheprune.parse_size("123", "x") == 123
    for bad in ("", "G", "-1G", "12Q", "1..5G"):
        with pytest.raises(UsageError, match="x"):
            cacheprune.parse_size(bad, "x")
