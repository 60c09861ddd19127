"""zoo.textfile: the one reader of the text files users give zoo, and its one error format
(`PATH:LINE: not UTF-8 text (byte 0xff at column C)`, `PATH: no such file`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FUZZ, write
from zoo.core.errors import DataError, UsageError
from zoo.toolkit.textfile import BOM, TextFile, embedded, read_text, stream_lines

# Text a user might write: any character but NUL, a BOM or a lone surrogate, line breaks often.
CHARS = st.one_of(
    st.sampled_from("\n\n\r a\té"),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"),
)
TEXT = st.text(alphabet=CHARS, max_size=80)


def sha16(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def insert_bad_byte(text: str, at: int, byte: int) -> tuple[bytes, int, int]:
    """The text's UTF-8 bytes with `byte` inserted before character `at`, and the line (from
    1) and byte column (from 1) where it lands: what the error must name."""
    before, after = text[:at].encode(), text[at:].encode()
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return before + bytes([byte]) + after, line, column


# --------------------------------------------------------------------------- good text
def test_utf8_text_is_read_whole_with_a_fingerprint_of_its_bytes(tmp_path: Path) -> None:
    content = "naïve café\nsecond line\n"
    path = write(tmp_path, "a.txt", content)
    file = read_text(path)
    assert isinstance(file, TextFile)
    assert file.text == content
    assert file.bom is False
    assert file.path == str(path)
    assert file.fingerprint == sha16(content.encode())
    assert file.lines() == ["naïve café", "second line"]
    assert list(file.numbered()) == [(1, "naïve café"), (2, "second line")]


def test_a_byte_order_mark_is_dropped_from_the_text_but_not_from_the_fingerprint(
    tmp_path: Path,
) -> None:
    raw = BOM + b"first\nsecond\n"
    path = write(tmp_path, "bom.txt", raw)
    file = read_text(path)
    assert file.text == "first\nsecond\n"
    assert file.bom is True
    assert file.fingerprint == sha16(raw)
    assert file.fingerprint != read_text(write(tmp_path, "plain.txt", raw[3:])).fingerprint


def test_crlf_lines_lose_the_cr_unless_kept(tmp_path: Path) -> None:
    file = read_text(write(tmp_path, "dos.txt", b"one\r\ntwo\r\n\r\nlast"))
    assert file.lines() == ["one", "two", "", "last"]
    assert file.lines(keep_cr=True) == ["one\r", "two\r", "\r", "last"]
    assert list(file.numbered()) == [(1, "one"), (2, "two"), (3, ""), (4, "last")]


def test_lines_split_on_newline_only(tmp_path: Path) -> None:
    """Not on the other breaks str.splitlines knows (a form feed, U+2028 inside a field)."""
    file = read_text(write(tmp_path, "odd.txt", "a\x0cb\u2028c\rd\nnext\n"))
    assert file.lines() == ["a\x0cb\u2028c\rd", "next"]


@FUZZ
@given(text=TEXT)
def test_any_valid_text_reads_back_exactly(tmp_path_factory: pytest.TempPathFactory, text: str):
    folder = tmp_path_factory.mktemp("valid")
    path = write(folder, "t.txt", text)
    file = read_text(path)
    assert file.text == text
    assert file.fingerprint == sha16(text.encode())
    expected = text.split("\n")
    if expected[-1] == "":
        expected.pop()
    assert file.lines(keep_cr=True) == expected
    assert file.lines() == [line.removesuffix("\r") for line in expected]


def test_error_names_the_file_and_line(tmp_path: Path) -> None:
    file = read_text(write(tmp_path, "a.txt", "x\ny\n"))
    error = file.error("bad column count", 2)
    assert isinstance(error, DataError)
    assert str(error) == f"{tmp_path / 'a.txt'}:2: bad column count"
    assert (error.path, error.line) == (str(tmp_path / "a.txt"), 2)
    assert str(file.error("empty")) == f"{tmp_path / 'a.txt'}: empty"


# ---------------------------------------------------------------------------- bad bytes
def test_a_bad_byte_names_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", b"good line\nabcdefgh\xffij\nmore\n")
    with pytest.raises(DataError) as info:
        read_text(path)
    assert str(info.value) == f"{path}:2: not UTF-8 text (byte 0xff at column 9)"
    assert info.value.line == 2


def test_latin1_text_is_refused_at_its_first_accent(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.txt", "ok\ncafé au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r":2: not UTF-8 text \(byte 0xe9 at column 4\)$"):
        read_text(path)


@FUZZ
@given(text=TEXT, data=st.data(), byte=st.integers(0x80, 0xFF))
def test_one_bad_byte_anywhere_is_reported_exactly(
    tmp_path_factory: pytest.TempPathFactory, text: str, data: st.DataObject, byte: int
) -> None:
    """Any byte from 0x80 up, put between two characters of valid text, is invalid there;
    the error gives its line (lines end at '\\n') and its column in bytes from 1."""
    at = data.draw(st.integers(0, len(text)), label="before character")
    raw, line, column = insert_bad_byte(text, at, byte)
    path = write(tmp_path_factory.mktemp("bad"), "t.txt", raw)
    expected = f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x} at column {column})"
    with pytest.raises(DataError) as info:
        read_text(path)
    assert str(info.value) == expected
    with pytest.raises(DataError) as streamed:
        list(stream_lines(path))
    assert str(streamed.value) == expected
    with pytest.raises(UsageError) as option:
        read_text(path, option="--input")
    assert str(option.value) == f"--input {expected}"


def test_a_bad_byte_after_a_bom_counts_columns_after_the_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "bom-bad.txt", BOM + b"ab\xfe\n")
    with pytest.raises(DataError, match=r":1: not UTF-8 text \(byte 0xfe at column 3\)$"):
        read_text(path)
    with pytest.raises(DataError, match=r":1: not UTF-8 text \(byte 0xfe at column 3\)$"):
        list(stream_lines(path))


@pytest.mark.parametrize(
    ("content", "line"), [(b"\x00abc\n", 1), (b"one\ntwo\nth\x00ree\n", 3), (b"a\n\n\x00", 3)]
)
def test_a_nul_byte_names_its_line(tmp_path: Path, content: bytes, line: int) -> None:
    path = write(tmp_path, "nul.bin", content)
    with pytest.raises(DataError) as info:
        read_text(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert "NUL" in message and "\n" not in message
    assert info.value.line == line


# ------------------------------------------------------------------- files that aren't
def unreadable(tmp_path: Path) -> Path:
    path = write(tmp_path, "secret.txt", "hidden\n")
    path.chmod(0)
    if os.access(path, os.R_OK):
        path.chmod(0o600)
        pytest.skip("permission bits do not stop this user from reading (root)")
    return path


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: d, "is a folder, expected a file"),
        (unreadable, "permission denied"),
    ],
    ids=["missing", "folder", "unreadable"],
)
def test_files_that_cannot_be_read_are_one_line(tmp_path: Path, make, what: str) -> None:
    path = make(tmp_path)
    try:
        with pytest.raises(DataError) as info:
            read_text(path)
        assert str(info.value) == f"{path}: {what}"
        assert info.value.path == str(path)
        with pytest.raises(DataError) as streamed:
            list(stream_lines(path))
        assert str(streamed.value) == f"{path}: {what}"
        with pytest.raises(UsageError) as option:
            read_text(path, option="--input")
        assert not isinstance(option.value, DataError)
        assert str(option.value) == f"--input {path}: {what}"
    finally:
        if path.is_file():
            path.chmod(0o600)


def test_a_refused_open_is_permission_denied_even_for_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chmod test checks, for a user whom permission bits do not stop."""
    import errno

    from zoo.toolkit import textfile

    path = write(tmp_path, "locked.txt", "x\n")

    def refuse(name, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", name)

    monkeypatch.setattr(textfile, "open", refuse, raising=False)
    with pytest.raises(DataError, match=r"^.*locked\.txt: permission denied$"):
        read_text(path)
    with pytest.raises(DataError, match=r"^.*locked\.txt: permission denied$"):
        list(stream_lines(path))
    with pytest.raises(UsageError, match=r"^--input .*locked\.txt: permission denied$"):
        read_text(path, option="--input")


def test_an_option_names_itself_for_bad_content_too(tmp_path: Path) -> None:
    path = write(tmp_path, "in.txt", b"fine\n\xff\n")
    with pytest.raises(UsageError) as info:
        read_text(path, option="--input")
    assert str(info.value).startswith(f"--input {path}:2: not UTF-8 text")
    assert info.value.exit_code == 2


# ------------------------------------------------------------------------- stream_lines
@FUZZ
@given(lines=st.lists(st.text(alphabet=CHARS.filter(lambda c: c not in "\r\n"), max_size=12)))
def test_stream_lines_numbers_lines_as_read_text_does(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("stream")
    for name, ending in (("unix.txt", "\n"), ("dos.txt", "\r\n")):
        path = write(folder, name, "".join(line + ending for line in lines))
        assert list(stream_lines(path)) == list(read_text(path).numbered())


def test_stream_lines_drops_a_bom_and_keeps_a_last_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "v.txt", BOM + b"w 1 2\r\nx 3 4")
    assert list(stream_lines(path)) == [(1, "w 1 2"), (2, "x 3 4")]
    assert list(stream_lines(path)) == list(read_text(path).numbered())


# ----------------------------------------------------------------------------- embedded
@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable package holding data files, as a plugin ships its toy data."""
    folder = tmp_path / "zoo_textfile_pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    write(folder, "toy.txt", BOM + b"hello\tworld\r\nbye\n")
    write(folder, "broken.txt", b"ok\nno\xffpe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "zoo_textfile_pkg"


def test_embedded_reads_package_data_as_read_text_would(package: str, tmp_path: Path) -> None:
    file = embedded(package, "toy.txt")
    raw = (tmp_path / package / "toy.txt").read_bytes()
    assert file.text == "hello\tworld\r\nbye\n"
    assert file.bom is True
    assert file.lines() == ["hello\tworld", "bye"]
    assert file.fingerprint == sha16(raw) == read_text(tmp_path / package / "toy.txt").fingerprint


def test_embedded_data_errors_name_the_file(package: str) -> None:
    with pytest.raises(
        DataError, match=r"^broken\.txt:2: not UTF-8 text \(byte 0xff at column 3\)$"
    ):
        embedded(package, "broken.txt")
