"""`zoo-runtime` meets zoo's error standard: one `Error:` line and the right exit code for
every mistake, never a traceback; outputs written atomically and never over an input; a
closed pipe, a full disk and an exhausted memory each one quiet, clear end."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zoo_runtime
from zoo_runtime import files as runtime_files
from zoo_runtime.__main__ import main as runtime_main

from tests.conftest import Result
from tests.runtime.test_onnxfile import rewrite


@pytest.fixture
def cli(monkeypatch, capsys):
    """cli(ARGS...) -> Result: `zoo-runtime ARGS...` in-process, numpy warnings as errors."""

    def invoke(*args: str | os.PathLike[str]) -> Result:
        monkeypatch.setattr(sys, "argv", ["zoo-runtime", *map(str, args)])
        with warnings.catch_warnings(), pytest.raises(SystemExit) as e:
            warnings.simplefilter("error")
            runtime_main()
        out = capsys.readouterr()
        return Result(e.value.code or 0, out.out, out.err)

    return invoke


@pytest.fixture
def tagger(kinds, tmp_path) -> Path:
    """A copy of the exported tagger in this test's folder (tests may damage theirs)."""
    target = tmp_path / "tagger.onnx"
    target.write_bytes(kinds["tagger"][1].read_bytes())
    return target


# ------------------------------------------------------------------ 1: outputs and inputs
def test_an_output_that_is_an_input_is_refused_before_loading(cli, tagger, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("The dog\n")
    model, text = tagger.read_bytes(), b"The dog\n"
    monkeypatch.setattr(zoo_runtime.__main__, "load", lambda *a, **k: pytest.fail("loaded"))
    for argv, label in (
        ([tagger, "a", "--output", tagger], "FILE"),
        ([tagger, "--input", "in.txt", "--output", tagger], "FILE"),
        ([tagger, "--input", "in.txt", "--output", "in.txt"], "--input"),
        ([tagger, "--input", "in.txt", "--output", "./sub/../in.txt"], "--input"),
        ([tagger, "a", "--output", f"{tmp_path}/."], None),
    ):
        (tmp_path / "sub").mkdir(exist_ok=True)
        r = cli(*argv)
        assert r.code == 2 and r.stdout == "", r.stderr
        line = r.error_line()
        if label is not None:
            assert f"same file as {label}" in line and "would destroy it" in line, line
        else:
            assert "is a folder; give a file name" in line, line
    assert tagger.read_bytes() == model and (tmp_path / "in.txt").read_bytes() == text


def test_an_output_in_a_missing_folder_is_refused_before_loading(cli, tagger, tmp_path):
    r = cli(tagger, "a", "--output", tmp_path / "nowhere" / "out.txt")
    assert r.code == 2 and "does not exist" in r.error_line()


def test_the_runtime_refuses_unwritable_outputs_in_zoos_words(tmp_path):
    from zoo.core import errors, fileio

    (tmp_path / "m.onnx").write_bytes(b"x")
    for output in (tmp_path, tmp_path / "nowhere" / "x", tmp_path / "m.onnx"):
        with pytest.raises(errors.UsageError) as want:
            fileio.check_writable(output, option="--output", inputs={"FILE": tmp_path / "m.onnx"})
        with pytest.raises(zoo_runtime.UsageError) as got:
            runtime_files.check_writable(
                output, option="--output", inputs={"FILE": tmp_path / "m.onnx"}
            )
        assert str(got.value) == str(want.value)


# ------------------------------------------------------------------------ 3: a full disk
class FullDisk(io.FileIO):
    """A file on a full disk: every write fails as the system fails it."""

    def write(self, data):  # type: ignore[override]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_the_disk(monkeypatch) -> None:
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        return FullDisk(fd, "wb") if "w" in mode else real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_a_full_disk_is_one_line_and_leaves_the_old_file(cli, tagger, tmp_path, monkeypatch):
    old = tmp_path / "old.txt"
    old.write_text("the previous predictions\n")
    fill_the_disk(monkeypatch)
    r = cli(tagger, "The dog", "--output", old)
    assert r.code == 1 and r.error_line() == (
        f"Error: cannot write {old}: No space left on device; the previous file is unchanged"
    )
    r = cli(tagger, "The dog", "--output", tmp_path / "new.txt")
    assert r.code == 1 and r.error_line().endswith("; no file was written")
    assert old.read_text() == "the previous predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt", "tagger.onnx"]  # no temp


@pytest.mark.parametrize("fails", ["fsync", "replace"])
def test_a_failure_after_writing_removes_the_temporary_file(tmp_path, monkeypatch, fails):
    def refuse(*args):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, fails, refuse)
    with pytest.raises(zoo_runtime.RuntimeZooError) as e:
        runtime_files.atomic_write(tmp_path / "out.txt", b"data")
    reason = os.strerror(errno.EIO)
    assert str(e.value) == f"cannot write {tmp_path / 'out.txt'}: {reason}; no file was written"
    assert e.value.exit_code == 1 and list(tmp_path.iterdir()) == []


def test_the_runtime_says_a_full_disk_in_zoos_words(tmp_path, monkeypatch):
    from zoo.core import fileio

    (tmp_path / "old.txt").write_text("old")
    fill_the_disk(monkeypatch)
    for target in (tmp_path / "old.txt", tmp_path / "new.txt"):
        with pytest.raises(fileio.WriteError) as want:
            fileio.atomic_write(target, b"new")
        with pytest.raises(zoo_runtime.RuntimeZooError) as got:
            runtime_files.atomic_write(target, b"new")
        assert str(got.value) == str(want.value)


def test_outputs_are_replaced_whole_keeping_the_old_files_mode(cli, tagger, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    os.chmod(out, 0o640)
    r = cli(tagger, "The dog", "--output", out)
    assert r.code == 0 and r.stdout == "" and out.read_text().startswith("The/")
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "tagger.onnx"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_device_is_written_in_place_and_dev_full_is_a_full_disk(cli, tagger):
    r = cli(tagger, "The dog", "--output", "/dev/full")
    assert (
        r.code == 1 and r.error_line() == "Error: cannot write /dev/full: No space left on device"
    )
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")
    r = cli(tagger, "The dog", "--output", "/dev/null")
    assert r.code == 0 and not os.path.isfile("/dev/null")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc on this system")
@pytest.mark.parametrize("into", ["a file", "a pipe"])
def test_a_descriptor_is_written_to_not_replaced(tagger, tmp_path, into):
    """`--output /dev/stdout` with stdout a file or a pipe: the output goes there, and the
    name is left alone (renaming over /dev/stdout, as root, would replace the system's link).
    Tested through /proc/self/fd/1, where a rename cannot harm anything if it were tried."""
    command = [sys.executable, "-m", "zoo_runtime", str(tagger), "The dog"]
    command += ["--output", "/proc/self/fd/1"]
    if into == "a file":
        with open(tmp_path / "out.txt", "wb") as out:
            out.write(b"head\n")
            out.flush()
            p = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, timeout=120)
        head, _, written = (tmp_path / "out.txt").read_bytes().partition(b"\n")
        assert head == b"head"  # appended to what was there, as a shell's stdout
    else:
        p = subprocess.run(command, capture_output=True, timeout=120)
        written = p.stdout
    assert p.returncode == 0, p.stderr
    assert written.startswith(b"The/") and written.endswith(b"\n") and written.count(b"\n") == 1
    assert os.path.islink("/proc/self/fd/1")


# ------------------------------------------------------------------------ 6: a closed pipe
def test_a_closed_pipe_at_the_last_flush_is_quiet_too(tagger, tmp_path):
    """Output smaller than the buffer is written at exit only: still no complaint."""
    p = subprocess.Popen(
        [sys.executable, "-m", "zoo_runtime", str(tagger), "The dog"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert p.stdout is not None
    p.stdout.close()
    try:
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert (p.returncode, err) == (141, b"")


# ------------------------------------------------------------------------ 8: memory
def test_onnxruntime_out_of_memory_is_one_line(cli, tagger, monkeypatch):
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    def exhausted(self, *args, **kwargs):
        raise ort_state.RuntimeException(
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while "
            "running LSTM node. Name:'/lstm/LSTM' Status Message: bad allocation"
        )

    model = zoo_runtime.load(tagger)
    monkeypatch.setattr(type(model.session), "run", exhausted)
    r = cli(tagger, "The dog")
    assert r.code == 1 and r.error_line().startswith("Error: out of memory"), r.stderr
    monkeypatch.setattr(
        type(model.session), "run", lambda *a, **k: (_ for _ in ()).throw(MemoryError())
    )
    r = cli(tagger, "The dog")
    assert r.code == 1 and r.error_line().startswith("Error: out of memory"), r.stderr


def test_another_onnxruntime_failure_is_a_model_error(cli, tagger, monkeypatch):
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    def broken(self, *args, **kwargs):
        raise ort_state.Fail("[ONNXRuntimeError] : 1 : FAIL : a node failed\nsecond line")

    monkeypatch.setattr(type(zoo_runtime.load(tagger).session), "run", broken)
    r = cli(tagger, "The dog")
    assert r.code == 1 and r.error_line() == (
        f"Error: {tagger}: onnxruntime failed running the graph: "
        "[ONNXRuntimeError] : 1 : FAIL : a node failed"
    )


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is Linux's")
def test_a_real_memory_limit_is_one_line(kinds, tmp_path):
    """Under an address-space limit (ulimit -v) a batch too big for it is one line, exit 1."""
    _, onnx_file = kinds["seq2seq"]
    script = (
        "import resource, sys, zoo_runtime.__main__ as m, zoo_runtime;"
        f"zoo_runtime.load({str(onnx_file)!r});"  # everything imported and mapped first
        "used = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024;"
        "resource.setrlimit(resource.RLIMIT_AS, (used + 300 * 2**20, resource.RLIM_INFINITY));"
        "sys.argv = ['zoo-runtime', *sys.argv[1:]]; m.main()"
    )
    source = " ".join(["hello"] * 3000)  # characters: 17,999; attention over them, per row
    (tmp_path / "in.txt").write_text(f"{source}\n" * 128)
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(onnx_file),
            "--input",
            "in.txt",  # the encoder's gates alone: 128 x 17,999 x 32 floats, 295 MB
            "--set",
            "max_input_length=100000",
            "--set",
            "batch_size=128",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: out of memory"), p.stderr[-2000:]


# --------------------------------------------------------------- 19: reading --input files
@pytest.mark.parametrize(
    "content, message",
    [
        (b"ok\nab\xffcd\n", "--input in.txt:2: not UTF-8 text (byte 0xff at column 3)"),
        (b"\xc3\xa9\xe9\n", "--input in.txt:1: not UTF-8 text (byte 0xe9 at column 3)"),
        (b"ok\n\nx\x00\n", "--input in.txt:3: contains a NUL byte: not a text file"),
    ],
)
def test_a_bad_input_file_names_its_line(cli, tagger, tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_bytes(content)
    r = cli(tagger, "--input", "in.txt")
    assert r.code == 2 and r.error_line() == f"Error: {message}"


def test_the_runtime_decodes_text_as_zoo_does(tmp_path):
    from zoo.core.errors import DataError
    from zoo.toolkit import textfile

    samples = [b"", b"a\r\nb\rc\n", b"\xef\xbb\xbfBOM\n", b"x\xe2\x80\xa8y\n", b"\xff", b"a\n\x00"]
    samples += [b"ok\n" * 3 + b"\xe2\x82", b"\xed\xa0\x80", b"a\x0bb\x1cc\x85"]
    for raw in samples:
        try:
            want = textfile.decode(raw, "f.txt").lines()
        except DataError as e:
            with pytest.raises(zoo_runtime.RuntimeZooError) as got:
                runtime_files.decode(raw, "f.txt")
            assert str(got.value) == str(e)
        else:
            assert runtime_files.lines(runtime_files.decode(raw, "f.txt")) == want


# ---------------------------------------------------------------------- 19: big numbers
@pytest.mark.parametrize("kind", ["forecaster", "forecaster-csv", "step-regression"])
def test_numbers_too_big_for_float32_are_refused_without_a_numpy_warning(cli, kinds, kind):
    _, onnx_file = kinds[kind]
    for big in ("1e300", "-3.5e38"):
        r = cli(onnx_file, *[big] * 12)
        assert r.code == 2, r.stderr
        assert (
            r.stderr
            == f"Error: input 1: '{big}' is beyond what a 32-bit float holds (about 3.4e38)\n"
        )
    r = cli(onnx_file, *["-3.4e38"] * 12, "--json")
    assert r.code == 0 and r.stderr == "" and json.loads(r.stdout)["predictions"]


def test_big_numbers_in_a_csv_give_no_numpy_warning(cli, kinds, tmp_path):
    _, onnx_file = kinds["forecaster-csv"]
    rows = "".join(f"2020-01-02 {h:02d}:00:00,{'1e300' if h % 2 else '-1e39'}\n" for h in range(6))
    (tmp_path / "big.csv").write_text("date,v\n" + rows)
    r = cli(onnx_file, "--input", tmp_path / "big.csv")
    assert r.code == 0 and r.stderr == "" and r.stdout.startswith("date,v\n")


# -------------------------------------------------------------------------- input limits
def with_limit(source: Path, target: Path, limit) -> Path:
    """A copy of `source` whose metadata runtime.input_limit is `limit` (None: none)."""
    import onnx

    runtime = json.loads({p.key: p.value for p in onnx.load(source).metadata_props}["runtime"])
    runtime.pop("input_limit", None)
    if limit is not None:
        runtime["input_limit"] = limit
    return rewrite(source, target, runtime=runtime)


def test_the_exported_input_limit_is_applied_before_any_array(cli, tagger, tmp_path, monkeypatch):
    limited = with_limit(tagger, tmp_path / "l.onnx", {"unit": "words", "max": 3})
    monkeypatch.setattr(np, "array", lambda *a, **k: pytest.fail("an array was made"))
    monkeypatch.setattr(np, "full", lambda *a, **k: pytest.fail("an array was made"))
    r = cli(limited, "The dog", "a b c d")
    assert r.code == 2 and r.error_line() == (
        "Error: input 2: 4 words, over the limit of 3 words for one input; "
        "raise it with --set max_input_length=N"
    )
    (tmp_path / "in.txt").write_text("a\n\nThe dog ate it\n")
    r = cli(limited, "--input", tmp_path / "in.txt")
    assert r.code == 2 and r.error_line().startswith(f"Error: {tmp_path / 'in.txt'}:3: 4 words,")


def test_max_input_length_raises_or_lowers_the_limit(cli, tagger, tmp_path):
    limited = with_limit(tagger, tmp_path / "l.onnx", {"unit": "words", "max": 3})
    assert cli(limited, "a b c d", "--set", "max_input_length=4").code == 0
    r = cli(limited, "a b", "--set", "max_input_length=1")
    assert r.code == 2 and "2 words, over the limit of 1 words" in r.error_line()
    model = zoo_runtime.load(limited)
    assert model.predict(["a b c d"], max_input_length="1_000")[0]["input"] == "a b c d"
    with pytest.raises(zoo_runtime.UsageError, match="input 1: 4 words, over the limit of 3"):
        model.predict(["a b c d"])
    for bad in ("0", "-2", "many", "1.5", ""):
        r = cli(limited, "a", "--set", f"max_input_length={bad}")
        assert r.code == 2 and r.error_line() == (
            f"Error: --set max_input_length={bad}: expected a whole number of at least 1"
        )


def test_files_exported_before_limits_have_none(cli, tagger, tmp_path):
    unlimited = with_limit(tagger, tmp_path / "u.onnx", None)
    assert cli(unlimited, " ".join(["dog"] * 50_000)).code == 0


@pytest.mark.parametrize(
    "limit",
    [
        [1, 2],
        {"unit": "bytes", "max": 3},
        {"unit": "words", "max": 0},
        {"unit": "words", "max": "3"},
        {"unit": "words", "max": True},
        {"unit": "words"},
        {"max": 3},
    ],
)
def test_a_bad_exported_input_limit_is_a_model_error(tagger, tmp_path, limit):
    bad = with_limit(tagger, tmp_path / "bad.onnx", limit)
    with pytest.raises(zoo_runtime.ModelError) as e:
        zoo_runtime.load(bad)
    assert str(e.value).startswith(f"{bad}: metadata runtime.input_limit")
    assert "\n" not in str(e.value)


def test_the_runtime_limits_word_their_errors_as_zoo_does():
    from zoo_runtime import limits as runtime_limits

    from zoo.core import limits

    assert runtime_limits.OPTION == limits.OPTION and runtime_limits.UNITS == limits.UNITS
    assert runtime_limits.REQUEST_OPTION == limits.REQUEST_OPTION
    assert runtime_limits.MAX_INPUTS == limits.MAX_INPUTS
    for value in ("7", " 1_000 ", "0", "-1", "x", "1e3", "", "9" * 100):
        try:
            want = limits.parse_override(value)
        except limits.SettingError as e:
            with pytest.raises(zoo_runtime.UsageError) as got:
                runtime_limits.parse_override(value)
            assert str(got.value) == str(e)
        else:
            assert runtime_limits.parse_override(value) == want
    limit = limits.InputLimit("words", 5, inputs=2)
    twin = runtime_limits.InputLimit("words", 5, inputs=2)
    for call in (lambda m: m.check_count(3, "in.txt"), lambda m: m.check("a " * 6, "input 1")):
        with pytest.raises(limits.UsageError) as want:
            call(limit)
        with pytest.raises(zoo_runtime.UsageError) as got:
            call(twin)
        assert str(got.value) == str(want.value)


# ----------------------------------------------------------------- anything else: a line
def test_an_unexpected_exception_is_one_line_and_zoo_debug_shows_it(
    cli, tagger, monkeypatch, capsys
):
    def bug(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(zoo_runtime.load(tagger).__class__, "tag_columns", bug)
    r = cli(tagger, "The dog")
    assert r.code == 1 and r.error_line() == (
        "Error: internal error: KeyError: 'oops' (a bug in zoo-runtime or a recipe; "
        "ZOO_DEBUG=1 shows the traceback)"
    )
    monkeypatch.setenv("ZOO_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["zoo-runtime", str(tagger), "The dog"])
    with pytest.raises(KeyError):
        runtime_main()


def test_bad_arguments_are_one_line(cli, tagger):
    for argv in ([tagger, "a", "--threads", "x"], [tagger, "a", "--nope"], []):
        r = cli(*argv)
        assert r.code == 2 and r.error_line().startswith("Error: "), r.stderr
