"""docs/reliability.md stays honest: every `file::test` it cites names a test that exists, and
every row of its tables cites one (or says "same", for the test of the row above).

A test file is cited by its name wherever it is under tests/ (`test_cli.py::...`), or, when
two files share that name, by its path under tests/ (`plugins/lstm_tagger/test_readers.py::...`).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from tests.conftest import REPO

DOC = REPO / "docs" / "reliability.md"
TESTS = REPO / "tests"
# `test_x.py::test_name` or `folder/test_x.py::test_name`, `::test_name` (same file as the
# reference before it in the row), `test_x.py::*` (every test of the file)
REFERENCE = re.compile(r"(?P<file>(?:\w+/)*test_\w+\.py)?::(?P<test>test_\w+|\*)")


def cited_file(cited: str) -> Path:
    """The file under tests/ a citation names: a bare name must be unique under tests/."""
    if "/" in cited:
        path = TESTS / cited
        assert path.is_file(), f"no tests/{cited}"
        return path
    found = sorted(TESTS.rglob(cited))
    assert found, f"no {cited} anywhere under tests/"
    assert len(found) == 1, (
        f"{cited} is ambiguous ({', '.join(str(p.relative_to(TESTS)) for p in found)}): "
        "cite its path under tests/"
    )
    return found[0]


@cache
def functions_in(file: str) -> frozenset[str]:
    """The test functions of a cited file: module level, or methods of Test* classes."""
    tree = ast.parse(cited_file(file).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names.update(
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            )
    return frozenset(n for n in names if n.startswith("test_"))


def table_rows(text: str) -> list[tuple[int, str]]:
    """(line number, last cell) of every table row that is neither a header nor a rule."""
    rows, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        if i + 1 < len(lines) and set(lines[i + 1]) <= set("|-: ") and "-" in lines[i + 1]:
            continue  # a header: the rule follows it
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((i + 1, cells[-1]))
    return rows


def references(cell: str) -> list[tuple[str, str]]:
    """(file, test) of every reference in backticks in a cell; a malformed one fails."""
    out, file = [], None
    for span in re.findall(r"`([^`]*)`", cell):
        if "::" not in span:
            continue  # a name such as `zoo.api.load_data`
        m = REFERENCE.fullmatch(span)
        assert m, f"{span!r} is not `[folder/]test_file.py::test_name` (write the name in full)"
        file = m["file"] or file
        assert file, f"{span!r} names no file, and no reference before it in the row does"
        out.append((file, m["test"]))
    return out


def test_every_row_cites_tests_that_exist():
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    assert len(rows) > 80  # the parsing found the tables
    cited = 0
    for line, cell in rows:
        refs = references(cell)
        assert refs or cell.lower().startswith("same"), (
            f"reliability.md:{line}: no test in {cell!r}"
        )
        for file, test in refs:
            try:
                tests = functions_in(file)
            except AssertionError as e:
                raise AssertionError(f"reliability.md:{line}: {e}") from None
            assert (test == "*" and tests) or test in tests, (
                f"reliability.md:{line}: no test {test} in tests/{file}"
            )
            cited += 1
    assert cited > 100


def test_the_checker_catches_what_it_is_for():
    assert references("`test_cli.py::test_help_and_version`, `::test_info_on_a_dataset`") == [
        ("test_cli.py", "test_help_and_version"),
        ("test_cli.py", "test_info_on_a_dataset"),
    ]
    for bad in ("`test_cli.py::test_mistakes_...`", "`::test_help_and_version`"):
        try:
            references(bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} was accepted")
    assert references("`plugins/elman_rnn/test_readers.py::test_char_pairs_missing_file`") == [
        ("plugins/elman_rnn/test_readers.py", "test_char_pairs_missing_file")
    ]
    assert "test_no_such_thing" not in functions_in("core/test_cli.py")
    assert "test_help_and_version" in functions_in("core/test_cli.py")
    assert "test_list_filters_by_glob_and_task" in functions_in("test_registry.py")  # in core/
    assert "test_char_pairs_missing_file" in functions_in("plugins/elman_rnn/test_readers.py")
    for ambiguous_or_missing in ("test_readers.py", "test_no_such_file.py", "core/test_nope.py"):
        try:
            functions_in(ambiguous_or_missing)
        except AssertionError:
            continue
        raise AssertionError(f"{ambiguous_or_missing} was accepted")
