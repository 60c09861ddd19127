"""The prepared-data cache (zoo/training/datacache.py): every built-in dataset round-trips
identical through it, a warm load never calls the loader, any change to the files, settings
or code rebuilds, and the faults of issue 29 (damaged, killed, concurrent, full disk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import REPO, SHARED_DATA, fill, run_zoo
from zoo.core import config as cfg
from zoo.core.registry import get_registry
from zoo.training import datacache, datasets

EWT = SHARED_DATA / "ud-english-ewt"


def head(source: Path, target: Path, lines: int) -> Path:
    """The first `lines` lines of a shared data file (tests use small slices)."""
    with open(source, encoding="utf-8") as f:
        target.write_text("".join(next(f) for _ in range(lines)), encoding="utf-8")
    return target


def ewt_slice(folder: Path, lines: int = 600) -> Path:
    folder.mkdir(exist_ok=True)
    for split in ("train", "dev", "test"):
        name = f"en_ewt-ud-{split}.conllu"
        head(EWT / name, folder / name, lines if split == "train" else lines // 3)
    return folder


def files_for(dataset: str, tmp_path: Path) -> dict[str, Any]:
    """Data settings for each file dataset: a small slice of the shared data, or a file."""
    if dataset == "conllu":
        return {"path": str(ewt_slice(tmp_path / "ewt"))}
    if dataset == "scan":
        src = SHARED_DATA / "scan" / "tasks_train_simple.txt"
        return {"path": str(head(src, tmp_path / "scan.txt", 300))}
    if dataset == "csv":
        return {"path": str(head(SHARED_DATA / "ett" / "ETTh1.csv", tmp_path / "e.csv", 400))}
    if dataset == "text":
        text = "To be, or not to be: that is the question.\nWhether 'tis nobler…\r\n" * 50
        (tmp_path / "t.txt").write_text(text, encoding="utf-8", newline="")
        return {"path": str(tmp_path / "t.txt")}
    pairs = {
        "char-pairs": "abc\tbca\nhello\tohlol\nxyz\tzyx\nabcd\tdcba\n" * 10,
        "word-pairs": "hello\thola\ncat\tgato\ndog\tperro\nhouse\tcasa\n" * 10,
        "sentence-pairs": "I am here.\tEstoy aquí.\nThe cat.\tEl gato.\nA dog ran.\tUn perro.\n"
        * 10,
    }[dataset]
    (tmp_path / "p.tsv").write_text(pairs, encoding="utf-8")
    return {"path": str(tmp_path / "p.tsv")}


FILE_DATASETS = ["conllu", "scan", "csv", "text", "char-pairs", "word-pairs", "sentence-pairs"]


def config_of(dataset: str, values: dict[str, Any]) -> Any:
    spec = get_registry().dataset(dataset).spec
    return cfg.build(spec.config, {k: str(v) for k, v in values.items()})


def same(a: Any, b: Any) -> bool:
    """Deep equality that compares numpy arrays by value and type."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def assert_same_data(a: Any, b: Any) -> None:
    """Same state, summary, info and splits; the same first batches from collate."""
    assert (a.state, a.summary, a.info, type(a)) == (b.state, b.summary, b.info, type(b))
    assert a.splits.keys() == b.splits.keys()
    for name in a.splits:
        x, y = a.splits[name], b.splits[name]
        assert len(x) == len(y)
        if hasattr(x, "ids"):
            assert np.array_equal(np.asarray(x.ids), np.asarray(y.ids))
        else:
            for i in range(len(x)):
                assert same(x[i], y[i]), (name, i, x[i], y[i])
        if len(x):
            for p, q in zip(a.batches(name, 7), b.batches(name, 7)):
                assert p.keys() == q.keys()
                for key in p:
                    if isinstance(p[key], torch.Tensor):
                        assert torch.equal(p[key], q[key]), (name, key)
                    else:
                        assert p[key] == q[key]


@pytest.fixture
def count_reads(monkeypatch):
    """How many times the loader itself ran."""
    calls = []
    read = datasets._read

    def counted(*args: Any) -> Any:
        calls.append(args[1])
        return read(*args)

    monkeypatch.setattr(datasets, "_read", counted)
    return calls


@pytest.mark.parametrize("dataset", FILE_DATASETS)
def test_every_file_dataset_round_trips_identical_and_a_warm_load_reads_no_file(
    dataset, tmp_path, count_reads
):
    reg = get_registry()
    config = config_of(dataset, files_for(dataset, tmp_path))
    plain = datasets.load_data(reg, dataset, config, None, cache=False)
    cold = datasets.load_data(reg, dataset, config, None)
    assert len(count_reads) == 2
    warm = datasets.load_data(reg, dataset, config, None)
    assert len(count_reads) == 2  # mapped, not read
    assert_same_data(plain, cold)
    assert_same_data(plain, warm)
    stored = datacache.entries(datacache.home_from_env())
    assert [e["dataset"] for e in stored] == [dataset]


def test_the_example_plugin_and_generated_datasets(tmp_path, count_reads):
    """Generated data (no file) is not cached: generating costs less than mapping."""
    reg = get_registry()
    datasets.load_data(reg, "sine-cosine", config_of("sine-cosine", {}), None)
    datasets.load_data(reg, "sine-cosine", config_of("sine-cosine", {}), None)
    assert len(count_reads) == 2
    assert datacache.entries(datacache.home_from_env()) == []


def test_a_plugin_that_opts_out_is_read_on_every_run(tmp_path, monkeypatch, count_reads):
    from zoo_plugins.elman_rnn import data as charlm

    load = charlm.load_char_pairs

    def opting_out(config: Any, state: Any) -> Any:
        data = load(config, state)
        data.info["cache"] = False
        return data

    reg = get_registry()
    monkeypatch.setattr(reg, "loader", lambda name: opting_out)
    config = config_of("char-pairs", files_for("char-pairs", tmp_path))
    datasets.load_data(reg, "char-pairs", config, None)
    datasets.load_data(reg, "char-pairs", config, None)
    assert len(count_reads) == 2
    assert datacache.entries(datacache.home_from_env()) == []


def test_a_changed_file_setting_or_plugin_code_gets_a_new_entry(tmp_path, monkeypatch):
    reg = get_registry()
    values = files_for("text", tmp_path)
    config = config_of("text", values)
    loader = reg.loader("text")
    plugin = reg.dataset("text").plugin
    key, _ = datacache.describe("text", plugin, loader, config)
    assert datacache.describe("text", plugin, loader, config)[0] == key
    other = config_of("text", {**values, "bptt": 7})
    assert datacache.describe("text", plugin, loader, other)[0] != key
    Path(values["path"]).write_text("something else entirely\n", encoding="utf-8")
    assert datacache.describe("text", plugin, loader, config)[0] != key
    monkeypatch.setattr(datacache, "code_hash", lambda loader: "edited")
    assert datacache.describe("text", plugin, loader, config)[0] != key


def test_a_damaged_entry_is_rebuilt_with_one_warning(tmp_path, capsys, count_reads):
    reg = get_registry()
    config = config_of("conllu", files_for("conllu", tmp_path))
    datasets.load_data(reg, "conllu", config, None)
    plain = datasets.load_data(reg, "conllu", config, None, cache=False)
    (entry,) = datacache.entries(datacache.home_from_env())
    rec = Path(entry["path"]) / "train.rec"
    raw = bytearray(rec.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte flipped: only the checksum sees it
    rec.write_bytes(bytes(raw))
    capsys.readouterr()
    again = datasets.load_data(reg, "conllu", config, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: prepared data conllu-")
    assert "train.rec does not match its checksum" in err[0]
    assert_same_data(plain, again)
    rec.write_bytes(rec.read_bytes()[:100])  # truncated
    datasets.load_data(reg, "conllu", config, None)
    assert "train.rec has 100 bytes" in capsys.readouterr().err
    assert len(count_reads) == 4  # read, read without the cache, then rebuilt twice


KILLED_BUILD = """
import os, signal, sys
from zoo.core import config as cfg
from zoo.core.registry import get_registry
from zoo.training import datacache, datasets
def die(*a):
    os.kill(os.getpid(), signal.SIGKILL)
datacache.os.rename = die  # every file written, the entry not yet renamed into place
reg = get_registry()
spec = reg.dataset("text").spec
datasets.load_data(reg, "text", cfg.build(spec.config, {"path": sys.argv[1]}), None)
"""


def test_a_build_killed_before_its_rename_leaves_no_entry(tmp_path, count_reads):
    path = files_for("text", tmp_path)["path"]
    p = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, path], cwd=REPO, capture_output=True, timeout=120
    )
    assert p.returncode == -9
    home = datacache.home_from_env()
    assert datacache.entries(home) == []
    assert list(home.glob(".build.*"))  # what the killed build left is not an entry
    data = datasets.load_data(get_registry(), "text", config_of("text", {"path": path}), None)
    assert len(count_reads) == 1 and data.has("train")
    assert not list(home.glob(".build.*"))  # cleaned by the next build
    assert len(datacache.entries(home)) == 1


@pytest.mark.slow
def test_two_runs_preparing_at_once_build_once(tmp_path):
    path = files_for("conllu", tmp_path)["path"]
    args = ["data", "prepare", "lstm-tagger", "--dataset", "conllu", "--data", path]
    exe = Path(sys.executable).parent / "zoo"
    procs = [
        subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(out.decode().split(":")[0] for out, _ in outs)
    assert said == ["already prepared", "prepared"]
    assert len(datacache.entries(datacache.home_from_env())) == 1


def test_a_full_disk_while_preparing_is_one_error_line_and_nothing_left(tmp_path, tiny_disk):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"line {i} of a text to learn from\n" for i in range(60_000)))
    fill(tiny_disk)  # then free about 100 KB: room for the folder and lock, not the data
    with open(tiny_disk / "filler", "r+b") as f:
        f.truncate(os.path.getsize(tiny_disk / "filler") - 100_000)
    r = run_zoo(
        "run", "elman-rnn", "--dataset", "text", "--data", big, "--steps", "1",
        "--cache-dir", tiny_disk, "--out", tmp_path / "m.safetensors",
    )  # fmt: skip
    assert r.code == 1, r.stderr
    line = r.error_line()
    assert "no space left on the device" in line and "--no-cache" in line
    left = [p.name for p in (tiny_disk / "data").iterdir()]
    assert len(left) == 1 and left[0].endswith(".lock"), left  # no entry, no partial build
    assert not (tmp_path / "m.safetensors").exists()


def test_a_malformed_line_deep_in_a_file_is_the_same_error_as_without_the_cache(tmp_path):
    lines = [f"w{i}\tv{i}" for i in range(5000)]
    lines[4321] = "no tab on this line"
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["run", "rnn-seq2seq", "--dataset", "word-pairs", "--data", path, "--steps", "1"]
    cached, plain = run_zoo(*args), run_zoo(*args, "--no-cache")
    assert cached.code == plain.code == 1
    assert cached.error_line() == plain.error_line()
    assert f"{path}:4322:" in cached.error_line()


def test_zoo_data_prepare_ls_and_rm(tmp_path, zoo):
    path = files_for("scan", tmp_path)["path"]
    assert "no prepared data" in zoo("data", "ls").stdout
    r = zoo("data", "prepare", "rnn-seq2seq", "--dataset", "scan", "--data", path)
    assert r.code == 0 and r.stdout.startswith("prepared: scan-"), r.stderr
    key = r.stdout.split()[1]
    again = zoo("data", "prepare", "rnn-seq2seq", "--dataset", "scan", "--data", path)
    assert again.stdout.startswith(f"already prepared: {key}")
    listed = json.loads(zoo("data", "ls", "--json").stdout)["entries"]
    assert [(e["key"], e["dataset"], e["files"]) for e in listed] == [(key, "scan", [path])]
    assert listed[0]["bytes"] > 0 and listed[0]["plugin"].startswith("rnn-zoo")
    assert key in zoo("data", "ls").stdout
    bad = zoo("data", "rm", "scan-nothing")
    assert bad.code == 2 and "no prepared entry 'scan-nothing'" in bad.error_line()
    assert zoo("data", "rm").code == 2
    assert zoo("data", "rm", key).code == 0
    assert json.loads(zoo("data", "ls", "--json").stdout)["entries"] == []
    zoo("data", "prepare", "rnn-seq2seq", "--dataset", "scan", "--data", path)
    assert zoo("data", "rm", "--all").stdout.startswith("removed 1 entry")


def test_cache_dir_and_no_cache_options_of_zoo_run(tmp_path, monkeypatch, zoo):
    monkeypatch.setenv("ZOO_CACHE_DIR", "")  # restored after the test: the options set it
    monkeypatch.setenv("ZOO_NO_CACHE", "")
    path = files_for("text", tmp_path)["path"]
    args = ["run", "elman-rnn", "--dataset", "text", "--data", path, "--steps", "1", "-q"]
    assert zoo(*args, "--cache-dir", tmp_path / "mine", "--out", "a.safetensors").code == 0
    assert len(datacache.entries(tmp_path / "mine" / "data")) == 1
    monkeypatch.setenv("ZOO_CACHE_DIR", "")
    assert zoo(*args, "--no-cache", "--out", "b.safetensors").code == 0
    assert datacache.entries(datacache.home_from_env()) == []


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.mark.slow
@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-english-ewt is absent")
@pytest.mark.parametrize(
    "args",
    [
        ["lstm-tagger", "--dataset", "conllu", "--steps", "4"],
        ["elman-rnn", "--dataset", "text", "--steps", "4", "--set", "bptt=16"],
    ],
)
def test_cached_and_uncached_training_give_bit_identical_weights(tmp_path, args):
    data = files_for(args[2], tmp_path)["path"]
    run = ["run", *args, "--data", data, "--threads", "1", "-q"]
    outs = {}
    for name, extra in (("cold", []), ("warm", []), ("plain", ["--no-cache"])):
        out = tmp_path / f"{name}.safetensors"
        r = run_zoo(*run, *extra, "--out", out)
        assert r.code == 0, r.stderr
        outs[name] = weights(out)
    for name in ("warm", "plain"):
        assert outs[name].keys() == outs["cold"].keys()
        for key in outs["cold"]:
            assert torch.equal(outs[name][key], outs["cold"][key]), (name, key)


def test_text_chunks_read_as_read_text_whatever_the_chunk_size(tmp_path):
    from zoo.core.errors import DataError
    from zoo.toolkit.textfile import TextChunks, read_text

    cases = [
        "\ufeffabc é€😀\r\nline two\rthree\n".encode(),
        "ok\nfine é\n".encode() + b"\xc3(bad\n",
        b"a\nb\nc\x00d\n",
        "€".encode()[:2],
        b"",
    ]
    for raw in cases:
        path = tmp_path / "t.txt"
        path.write_bytes(raw)
        try:
            want: Any = read_text(path)
            want = (want.text, want.fingerprint)
        except DataError as e:
            want = str(e)
        for size in (1, 2, 3, 5, 64):
            chunks = TextChunks(path, size)
            try:
                got: Any = ("".join(chunks), chunks.fingerprint)
            except DataError as e:
                got = str(e)
            assert got == want, (raw, size)


def test_a_large_text_streams_to_the_same_data_in_bounded_memory(tmp_path, monkeypatch):
    import tracemalloc

    from zoo_plugins.elman_rnn import bigtext
    from zoo_plugins.elman_rnn import data as charlm

    line = "The quick brown fox jumps over the lazy dog; é€ and 😀.\r\n"
    peaks = []
    for lines in (30_000, 90_000):  # about 1.8 and 5.6 MB
        path = tmp_path / f"big{lines}.txt"
        path.write_text(line * lines, encoding="utf-8", newline="")
        config = config_of("text", {"path": path, "min_count": 2})
        monkeypatch.setattr(bigtext, "STREAM_ABOVE", 0)
        monkeypatch.setattr(bigtext, "CHUNK", 1 << 16)
        tracemalloc.start()
        streamed = charlm.load_text(config, None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert isinstance(streamed.splits["train"].ids, np.memmap)
    monkeypatch.setattr(bigtext, "STREAM_ABOVE", 10**12)
    assert_same_data(charlm.load_text(config, None), streamed)
    # a chunk's arrays and tables of code points, not the text: flat whatever the size
    assert peaks[1] < peaks[0] * 1.1 < path.stat().st_size


def test_a_large_text_is_scored_streamed_as_read_whole(tmp_path, monkeypatch):
    """`zoo eval` of a character LM (a trained model's state): a large text streams too, its
    ids mapped, to the data the whole-text reader gives: the training file split as in
    training, another file scored whole, with the model's vocabulary (unknown characters
    as <unk>), in memory that does not grow with the text."""
    import tracemalloc

    from zoo_plugins.elman_rnn import bigtext
    from zoo_plugins.elman_rnn import data as charlm

    line = "The quick brown fox jumps over the lazy dog.\n"
    own = tmp_path / "own.txt"
    own.write_text(line * 30_000, encoding="utf-8")
    config = config_of("text", {"path": own, "min_count": 2})
    state = charlm.load_text(config, None).state
    peaks = []
    for lines in (30_000, 90_000):
        other = tmp_path / f"other{lines}.txt"
        other.write_text("Zebras quiz a jumpy fox!\n" * lines, encoding="utf-8")
        monkeypatch.setattr(bigtext, "STREAM_ABOVE", 0)
        monkeypatch.setattr(bigtext, "CHUNK", 1 << 16)
        tracemalloc.start()
        scored = charlm.load_text(config_of("text", {"path": other}), state)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        streamed_own = charlm.load_text(config, state)
        assert isinstance(scored.splits["test"].ids, np.memmap)
        monkeypatch.setattr(bigtext, "STREAM_ABOVE", 10**12)
        assert_same_data(charlm.load_text(config_of("text", {"path": other}), state), scored)
        assert_same_data(charlm.load_text(config, state), streamed_own)
    assert len(scored.splits["train"]) == 0 and len(streamed_own.splits["train"]) > 0
    assert peaks[1] < peaks[0] * 1.1 < other.stat().st_size
    held_out = config_of("text", {"path": own, "min_count": 2, "test_fraction": 0.1})
    trained = charlm.load_text(held_out, None).state
    whole = charlm.load_text(held_out, trained)
    monkeypatch.setattr(bigtext, "STREAM_ABOVE", 0)
    assert_same_data(whole, charlm.load_text(held_out, trained))
    assert 0 < len(whole.splits["test"]) < len(streamed_own.splits["test"])  # the held-out tenth


@pytest.mark.slow
@pytest.mark.skipif(not EWT.is_dir(), reason="../shared/data/ud-english-ewt is absent")
@pytest.mark.parametrize("case", ["tagger", "streamed-text"])
def test_a_run_interrupted_mid_epoch_on_mapped_data_resumes_bit_identical(
    tmp_path, monkeypatch, case
):
    import zoo
    from tests.conftest import InterruptAt
    from zoo.training.checkpoint import default_path
    from zoo.training.trainer import TrainingInterrupted

    if case == "tagger":
        data = files_for("conllu", tmp_path)["path"]
        args = dict(dataset="conllu", data=data, batch_size=8)  # the recipe's auxiliary heads
        name, stop = "lstm-tagger", 5  # mid-epoch
    else:
        from zoo_plugins.elman_rnn import bigtext

        monkeypatch.setattr(bigtext, "STREAM_ABOVE", 0)  # the streamed path, mapped
        args = dict(dataset="text", data=files_for("text", tmp_path)["path"], bptt=8)
        name, stop = "elman-rnn", 20  # mid-epoch: the carried hidden state is checkpointed
    settings = dict(epochs=2, threads=1, **args)
    whole = tmp_path / "whole.safetensors"
    zoo.run(name, out=whole, **settings)  # prepares the data
    assert len(datacache.entries(datacache.home_from_env())) == 1
    out = tmp_path / "t.safetensors"
    with pytest.raises(TrainingInterrupted):
        zoo.run(name, out=out, progress=InterruptAt(stop), **settings)
    zoo.resume(default_path(out))
    a, b = weights(whole), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    monkeypatch.setenv("ZOO_NO_CACHE", "1")
    plain = tmp_path / "plain.safetensors"
    zoo.run(name, out=plain, **settings)
    c = weights(plain)
    assert all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.slow
def test_local_ranks_share_one_prepared_entry(tmp_path):
    """Both processes of `--nproc-per-node 2` load the data: one prepares it under the lock,
    the other waits and maps it; the cache folder comes through torchrun's environment."""
    path = files_for("sentence-pairs", tmp_path)["path"]
    cache = tmp_path / "cache"
    args = ["run", "rnn-seq2seq", "--dataset", "sentence-pairs", "--data", path, "--steps", "2"]
    args += ["--nproc-per-node", "2", "--cache-dir", cache, "-q", "--out", tmp_path / "m"]
    r = run_zoo(*args, env={"ZOO_RDZV_TIMEOUT": "60"})
    assert r.code == 0, r.stderr
    (entry,) = datacache.entries(cache / "data")
    assert entry["dataset"] == "sentence-pairs" and not list((cache / "data").glob(".build*"))
