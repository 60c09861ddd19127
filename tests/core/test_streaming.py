"""Readers that stream a file larger than `ZOO_STREAM_ABOVE` (zoo/toolkit/records.py): the
CoNLL-U treebank and the sentence-pair / SCAN files give the very data of the in-memory path
(vocabularies, splits, examples, batches, errors), in records on disk, and train the same
weights; the records themselves, the line reader and the split permutation."""

from __future__ import annotations

import gc
import itertools
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_zoo
from tests.core.test_datacache import EWT, SHARED_DATA, assert_same_data, config_of, head, weights
from zoo.core.errors import DataError
from zoo.core.registry import get_registry
from zoo.toolkit.data import Data, compact
from zoo.toolkit.records import Records, Taken, spill, take
from zoo.toolkit.splits import shuffled, split_by_fraction
from zoo.toolkit.textfile import Lines, read_text

SCAN = SHARED_DATA / "scan" / "tasks_train_simple.txt"
needs_data = pytest.mark.skipif(
    not (EWT.is_dir() and SCAN.is_file()), reason="../shared/data is absent"
)


def load(dataset: str, values: dict, monkeypatch, *, streamed: bool) -> Data:
    monkeypatch.setenv("ZOO_STREAM_ABOVE", "0" if streamed else str(1 << 40))
    return get_registry().loader(dataset)(config_of(dataset, values), None)


def both(dataset: str, values: dict, monkeypatch) -> tuple[Data, Data]:
    plain = load(dataset, values, monkeypatch, streamed=False)
    streamed = load(dataset, values, monkeypatch, streamed=True)
    assert all(isinstance(s, list) for s in plain.splits.values())
    assert all(isinstance(s, Records) for s in streamed.splits.values())
    return plain, streamed


def same_order(a: Data, b: Data) -> None:
    """The same shuffled, length-bucketed batches from the same seed (b by stored lengths)."""
    assert b.splits["train"].lengths is not None
    for shuffle in (False, True):
        x = a.order("train", 8, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
        y = b.order("train", 8, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
        assert [list(i) for i in x] == [list(i) for i in y]


@needs_data
@pytest.mark.parametrize(
    "values",
    [
        {"valid_fraction": 0.2, "test_fraction": 0.1, "split_seed": 4},
        {"valid_fraction": 0.1, "aux_columns": "feats,head", "lowercase": "true"},
        {"valid_fraction": 0.1, "limit": 40},
    ],
)
def test_a_streamed_treebank_is_the_data_read_whole(tmp_path, monkeypatch, values):
    path = head(EWT / "en_ewt-ud-train.conllu", tmp_path / "t.conllu", 2500)
    dev = head(EWT / "en_ewt-ud-dev.conllu", tmp_path / "d.conllu", 300)
    plain, streamed = both("conllu", {"path": path, **values}, monkeypatch)
    assert_same_data(plain, streamed)
    same_order(plain, streamed)
    with_dev = {"path": path, "dev_path": dev, "test_fraction": 0.2}
    assert_same_data(*both("conllu", with_dev, monkeypatch))


@needs_data
@pytest.mark.parametrize(
    ("dataset", "values"),
    [
        ("scan", {"valid_fraction": 0.1, "test_fraction": 0.1}),
        ("scan", {"valid_min_target_length": 12, "concat_pairs": 0.3, "max_source_length": 8}),
        ("sentence-pairs", {"lowercase": "true", "shared_vocab": "true", "min_count": 2}),
    ],
)
def test_streamed_pairs_are_the_data_read_whole(tmp_path, monkeypatch, dataset, values):
    if dataset == "scan":
        path = head(SCAN, tmp_path / "scan.txt", 600)
    else:
        rows = [f"The {w} ran, fast!\tEl {w} corrió.\tCC-BY" for w in ["dog", "cat", "Fox", "ox"]]
        path = tmp_path / "p.tsv"
        path.write_text("\n".join(rows * 30) + "\r\n\n", encoding="utf-8", newline="")
    plain, streamed = both(dataset, {"path": path, **values}, monkeypatch)
    assert_same_data(plain, streamed)
    same_order(plain, streamed)


def scored(dataset: str, values: dict, state: dict, monkeypatch, *, streamed: bool) -> Data:
    monkeypatch.setenv("ZOO_STREAM_ABOVE", "0" if streamed else str(1 << 40))
    return get_registry().loader(dataset)(config_of(dataset, values), state)


@needs_data
@pytest.mark.parametrize("dataset", ["conllu", "scan"])
def test_a_large_file_is_scored_streamed_as_read_whole(tmp_path, monkeypatch, dataset):
    """`zoo eval` (a trained model's state): a large file streams too, to the data read whole
    gives: the training file's held-out split again, another file scored whole."""
    if dataset == "conllu":
        own = head(EWT / "en_ewt-ud-train.conllu", tmp_path / "t.conllu", 1500)
        other = head(EWT / "en_ewt-ud-dev.conllu", tmp_path / "d.conllu", 300)
    else:
        own, other = head(SCAN, tmp_path / "s.txt", 600), head(SCAN, tmp_path / "o.txt", 900)
    values = {"path": own, "valid_fraction": 0.1, "test_fraction": 0.2}
    state = load(dataset, values, monkeypatch, streamed=False).state
    for asked in (values, {**values, "path": other}):
        plain = scored(dataset, asked, state, monkeypatch, streamed=False)
        streamed = scored(dataset, asked, state, monkeypatch, streamed=True)
        assert isinstance(streamed.splits["test"], Records) and len(streamed.splits["test"])
        assert_same_data(plain, streamed)


BAD_FILES = {
    "conllu": [
        "1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n\n2\tB\tb\tNOUN\t_\t_\t0\troot\t_\t_\n",  # id order
        "# c\n1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n1\tshort\n\n1\tA\t\xff",  # bad byte wins
        "1\tA\ta\t_\t_\t_\t0\troot\t_\t_\n\x00\n",  # a NUL
        "# only a comment\n\n",  # no sentences
    ],
    "scan": [
        "IN: jump OUT: I_JUMP\nwalk\nIN: run OUT: I_RUN\x00\n",  # NUL beats the bad line
        "IN: jump OUT: I_JUMP\nIN: OUT: I_RUN\n",
        "\n\n",
    ],
}


@pytest.mark.parametrize(
    ("dataset", "text"), [(d, t) for d, texts in BAD_FILES.items() for t in texts]
)
def test_a_bad_file_is_the_same_one_line_error_streamed(tmp_path, monkeypatch, dataset, text):
    path = tmp_path / "bad.txt"
    path.write_bytes(text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    errors = []
    for streamed in (False, True):
        with pytest.raises(DataError) as e:
            load(dataset, {"path": path, "valid_fraction": 0.0}, monkeypatch, streamed=streamed)
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    assert str(path) in errors[0]


@pytest.mark.parametrize("text", BAD_FILES["conllu"][:3])
def test_a_bad_file_scored_streamed_is_the_same_one_line_error(tmp_path, monkeypatch, text):
    """`zoo eval` of a malformed treebank (a trained model's state): streamed or read whole,
    the same DataError naming the file and line."""
    good = tmp_path / "good.conllu"
    good.write_text("1\tA\ta\tDET\t_\t_\t0\troot\t_\t_\n\n" * 4, encoding="utf-8")
    state = load("conllu", {"path": good, "valid_fraction": 0.0}, monkeypatch, streamed=False).state
    path = tmp_path / "bad.conllu"
    path.write_bytes(text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    errors = []
    for streamed in (False, True):
        with pytest.raises(DataError) as e:
            scored("conllu", {"path": path}, state, monkeypatch, streamed=streamed)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and str(path) in errors[0]


def test_lines_read_as_read_text_with_its_errors_in_its_order(tmp_path):
    rng = random.Random(7)
    pieces = ["ab", "\r\n", "\n", "é€", "😀", "\x00", "\r", "\t", "x" * 40]
    for case in range(300):
        raw = b"".join(rng.choice(pieces).encode() for _ in range(rng.randrange(0, 30)))
        if case % 3 == 0:
            raw = b"\xef\xbb\xbf" + raw
        if case % 5 == 0 and raw:
            at = rng.randrange(len(raw))
            raw = raw[:at] + b"\xff" + raw[at:]
        path = tmp_path / "f.txt"
        path.write_bytes(raw)
        try:
            whole = read_text(path)
            want: object = (list(whole.numbered()), whole.fingerprint)
        except DataError as e:
            want = str(e)
        lines = Lines(path, size=rng.choice([3, 5, 64]))
        try:
            got: object = (list(lines), lines.fingerprint)
        except DataError as e:
            got = str(e)
        assert got == want, raw


def test_fail_reports_a_later_bad_byte_first(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"good\nmalformed\n" + b"x\n" * 50 + b"\xfe\n")
    lines = Lines(path, size=8)
    with pytest.raises(DataError, match=r"f.txt:53: not UTF-8 text \(byte 0xfe at column 1\)"):
        for lineno, _ in lines:
            if lineno == 2:
                lines.fail(DataError("malformed", path=str(path), line=2))


def test_shuffled_is_the_permutation_random_shuffle_gives():
    for n in (0, 1, 2, 9, 1000):
        for seed in (0, 11):
            order = list(range(n))
            random.Random(seed).shuffle(order)
            assert shuffled(n, seed).tolist() == order


def test_records_round_trip_and_their_temporary_folder_goes_with_them():
    examples = [(np.arange(i), f"w{i}", {"k": [i] * i}) for i in range(3000)]
    records = spill(iter(examples), length=lambda e: len(e[0]))
    folder = records.paths[0].parent
    assert len(records) == 3000 and folder.is_dir()
    assert records.lengths.tolist() == list(range(3000))
    for i in (0, 1, 1234, 2999, -1):
        a, b = records[i], examples[i]
        assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    view = take(records, [5, 2])
    assert isinstance(view, Taken) and [v[1] for v in view] == ["w5", "w2"]
    assert take(examples, [5, 2]) == [examples[5], examples[2]]
    with pytest.raises(IndexError):
        records[3000]
    del records, view
    gc.collect()
    assert not folder.exists()


def test_a_reader_that_fails_half_way_leaves_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    def examples():
        yield 1
        raise DataError("bad line", path="x", line=2)

    with pytest.raises(DataError):
        spill(examples())
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_the_cache_links_a_streamed_split_and_maps_it_with_its_lengths(tmp_path, monkeypatch):
    from zoo.training import datasets

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_STREAM_ABOVE", "0")
    path = head(SCAN, tmp_path / "scan.txt", 400)
    config = config_of("scan", {"path": path})
    cold, key, built = datasets.prepare(get_registry(), "scan", config)
    warm, _, again = datasets.prepare(get_registry(), "scan", config)
    assert built and not again and key
    assert_same_data(cold, warm)
    train = warm.splits["train"]
    assert train.length is warm.length and train.lengths is not None
    entry = tmp_path / "cache" / "data" / key
    assert os.stat(entry / "train.rec").st_size == os.stat(train.paths[0]).st_size


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize(
    "args",
    [
        ["lstm-tagger", "--dataset", "conllu", "--steps", "4"],
        ["rnn-seq2seq", "--dataset", "scan", "--steps", "4"],
    ],
)
def test_streamed_training_gives_bit_identical_weights(tmp_path, args):
    if args[2] == "conllu":
        data = head(EWT / "en_ewt-ud-train.conllu", tmp_path / "t.conllu", 2000)
    else:
        data = head(SCAN, tmp_path / "scan.txt", 500)
    run = ["run", *args, "--data", data, "--threads", "1", "-q", "--no-cache"]
    outs = {}
    for name, above in (("plain", str(1 << 40)), ("streamed", "0")):
        out = tmp_path / f"{name}.safetensors"
        r = run_zoo(*run, "--out", out, env={**os.environ, "ZOO_STREAM_ABOVE": above})
        assert r.code == 0, r.stderr
        outs[name] = weights(Path(out))
    assert outs["plain"].keys() == outs["streamed"].keys()
    for key in outs["plain"]:
        assert torch.equal(outs["plain"][key], outs["streamed"][key]), key


def test_a_full_temporary_folder_is_one_line_and_leaves_nothing(tiny_disk, monkeypatch):
    import tempfile

    from zoo.core.errors import ZooError

    monkeypatch.setattr(tempfile, "tempdir", str(tiny_disk))
    with pytest.raises(ZooError, match="cannot write temporary records in .*: No space left"):
        spill([b"x" * 4096] * 1024)  # 4 MiB of pickles on a 1 MiB disk
    assert list(tiny_disk.iterdir()) == []


# ------------------------------------------------------- positions in 4 bytes (issue 29)
def int64_order(lengths, n, batch_size, shuffle, generator) -> list[np.ndarray]:
    """`Data.order` as it was before int32 positions: int64 arrays, a list of batches."""
    order = torch.randperm(n, generator=generator).numpy() if shuffle else np.arange(n)
    if lengths is None:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if not shuffle:
        order = order[np.argsort(lengths[order], kind="stable")]
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    batches, pool = [], batch_size * 50
    for start in range(0, n, pool):
        chunk = order[start : start + pool]
        chunk[:] = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def target_size(example) -> int:
    return len(example[1])


@pytest.mark.parametrize("n", [1, 7, 64 * 50 + 17, 12_345])
@pytest.mark.parametrize("stored", [False, True])
def test_the_order_is_the_int64_order_in_int32_positions(monkeypatch, n, stored):
    rng = random.Random(n)
    examples = [(i, "x" * rng.choice([1, 2, 3, 300, 70_000])) for i in range(n)]  # many ties
    train = spill(examples, target_size) if stored else examples
    lengths = np.array([target_size(e) for e in examples])
    cases = [(Data({}, {"train": train}, None, target_size), lengths)]
    cases.append((Data({}, {"train": train}, None), None))  # no length: no buckets
    for wide, shuffle, size, (data, lens) in itertools.product(
        (False, True), (False, True), (1, 8, 64), cases
    ):  # int32 positions, and int64 ones as above POSITIONS_MAX (patched)
        monkeypatch.setattr("zoo.toolkit.records.POSITIONS_MAX", -2 if wide else 2**31 - 1)
        g1, g2 = torch.Generator().manual_seed(n), torch.Generator().manual_seed(n)
        got = data.order("train", size, shuffle=shuffle, generator=g1)
        want = int64_order(lens, n, size, shuffle, g2)
        assert len(got) == len(want)
        assert [b.tolist() for b in got] == [b.tolist() for b in want]
        assert torch.equal(g1.get_state(), g2.get_state())  # the next epoch's order too
        assert {b.dtype for b in got} == {np.dtype(np.int64 if wide else np.int32)}
        assert got[-1].tolist() == want[-1].tolist()
        assert [b.tolist() for b in got[1:3]] == [b.tolist() for b in want[1:3]]


def test_shuffled_positions_are_int32_and_the_int64_shuffle(monkeypatch):
    for n, seed in itertools.product((0, 1, 2, 9, 1000, 54_321), (0, 11)):
        order = list(range(n))
        random.Random(seed).shuffle(order)
        narrow = shuffled(n, seed)
        monkeypatch.setattr("zoo.toolkit.records.POSITIONS_MAX", -2)  # every n: int64
        wide = shuffled(n, seed)
        monkeypatch.undo()
        assert narrow.dtype == np.int32 and wide.dtype == np.int64
        assert narrow.tolist() == wide.tolist() == order


def test_a_split_of_records_keeps_int32_positions_and_its_members():
    examples = [(i, "x" * (i % 5)) for i in range(5000)]
    records = spill(examples, target_size)
    fractions, seed = [0.8, 0.1, 0.1], 3
    mapped = split_by_fraction(records, fractions, seed)
    listed = split_by_fraction(examples, fractions, seed)
    for part, whole in zip(mapped, listed):
        assert isinstance(part, Taken) and part.positions.dtype == np.int32
        assert list(part) == whole
        assert part[2:5].positions.dtype == np.int32 and list(part[2:5]) == whole[2:5]
    assert take(records, []).positions.dtype == np.int64 and not list(take(records, []))


def test_bucketing_sorts_lengths_compacted_and_hands_mapped_pages_back():
    stored = np.array([3, 0, 255, 7], np.int64)
    assert compact(stored).dtype == np.uint8 and compact(stored).tolist() == stored.tolist()
    assert compact(np.array([-1, 300])).dtype == np.int16
    assert compact(np.array([70_000])).dtype == np.uint32
    records = spill([(i, "x" * (i % 9)) for i in range(3000)], target_size)
    released, release = [], records.release
    records.release = lambda: released.append(1) or release()  # type: ignore[method-assign]
    keys = Data({}, {"train": records}, None, target_size).sort_keys(records)
    assert keys.dtype == np.uint8 and keys.tolist() == records.lengths.tolist()
    assert released and not isinstance(keys, np.memmap)
