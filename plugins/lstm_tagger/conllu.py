"""Reading (and re-writing) CoNLL-U, the Universal Dependencies file format, without torch.

A CoNLL-U file is UTF-8 text: sentences separated by blank lines; `#` lines are comments; each
word line has ten tab-separated columns ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC.
Only lines whose ID is a positive integer are words: multiword-token ranges (`3-4`) and empty
nodes (`8.1`) are skipped, as the published UPOS scores skip them.

The reader is strict where a silent guess would train on garbage: a wrong column count, a
malformed ID, words out of order, an empty FORM or tag stop it with a `DataError` naming the
file and line (`zoo.textfile` reads the file, and names bytes that are not UTF-8). It is a
single pass over the lines (EWT train, 204,577 words, loads in about a second); `sentences`
gives them one at a time, for a treebank read line by line (`zoo.toolkit.textfile.Lines`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from zoo.core.errors import DataError
from zoo.toolkit.textfile import TextFile, read_text

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
TAG_COLUMNS = {"upos": 3, "xpos": 4}
# The columns a tagger's predictions fill, in file order: DEPREL (an auxiliary target too) is
# never written, since a relation label means nothing without the head a parser would give.
PREDICTED_COLUMNS = ("upos", "xpos", "feats")
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(0|[1-9][0-9]*)\.[1-9][0-9]*")


@dataclass
class Sentence:
    """The words of one sentence, their tags (None where the column is `_`), and where each
    word line is in the file (0-based line numbers, so a writer can replace just the tag)."""

    words: list[str]
    tags: list[str | None]
    lines: list[int]
    other: dict[str, list[str]] = field(default_factory=dict)  # the `other_columns` asked for


def _shown(wid: str) -> str:
    """An ID as quoted in an error message: at most 20 characters, so the message stays short."""
    return wid if len(wid) <= 20 else wid[:20] + "..."


def parse(
    text: str,
    path: str,
    column: str = "upos",
    *,
    require_tags: bool = True,
    other_columns: tuple[str, ...] = (),
) -> list[Sentence]:
    """The sentences of CoNLL-U `text` (read from `path`, named in errors); `other_columns`
    (names from COLUMNS) are kept as they are written, `_` included, in `Sentence.other`."""
    lines = ((i, raw.removesuffix("\r")) for i, raw in enumerate(text.split("\n"), 1))
    found = sentences(lines, path, column, require_tags=require_tags, other_columns=other_columns)
    return list(found)


def sentences(
    lines: Iterable[tuple[int, str]],
    path: str,
    column: str = "upos",
    *,
    require_tags: bool = True,
    other_columns: tuple[str, ...] = (),
) -> Iterator[Sentence]:
    """The sentences of numbered lines (from 1, '\\r' removed), one at a time: `parse` of a
    file too large to hold (zoo.toolkit.textfile.Lines)."""
    index = TAG_COLUMNS[column]
    others = [(name, COLUMNS.index(name)) for name in other_columns]

    def new() -> Sentence:
        return Sentence([], [], [], {name: [] for name in other_columns})

    current = new()
    for lineno, line in lines:
        if not line.strip():
            if current.words:
                yield current
                current = new()
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(
                f"expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL "
                f"DEPS MISC), got {len(cols)}",
                path=path,
                line=lineno,
            )
        if _WORD_ID.fullmatch(cols[0]):
            form, tag = _word(
                cols, len(current.words) + 1, index, column, require_tags, path, lineno
            )
            current.words.append(form)
            current.tags.append(tag)
            current.lines.append(lineno - 1)
            for name, col in others:
                current.other[name].append(cols[col])
        else:
            _check_other_id(cols[0], len(current.words) + 1, path, lineno)
    if current.words:
        yield current


def _word(
    cols: list[str],
    expected: int,
    index: int,
    column: str,
    require_tags: bool,
    path: str,
    line: int,
) -> tuple[str, str | None]:
    """(FORM, tag or None) of a word line, checked: its id is the next one, its FORM is not
    empty, its tag has no spaces (and is there, when tags are required)."""
    wid = cols[0]
    if wid != str(expected):  # as text: int() refuses ids over 4300 digits
        raise DataError(
            f"word id {_shown(wid)} out of order: expected {expected}", path=path, line=line
        )
    form = cols[1]
    if not form.strip():
        raise DataError("empty FORM column", path=path, line=line)
    tag: str | None = cols[index]
    if tag == "_" or tag == "":
        if require_tags:
            raise DataError(
                f"no {column.upper()} tag ('{cols[index]}') for word {form!r}", path=path, line=line
            )
        return form, None
    if tag != tag.strip() or " " in tag:
        raise DataError(f"{column.upper()} tag {tag!r} contains spaces", path=path, line=line)
    return form, tag


def _check_other_id(wid: str, next_word: int, path: str, line: int) -> None:
    """A line that is not a word: a multiword-token range starting at the next word, or an
    empty node; anything else is a malformed ID."""
    m = _RANGE_ID.fullmatch(wid)
    if m:
        start, end = m.group(1), m.group(2)
        # compared as text (no leading zeros: longer is larger), as int() refuses ids over
        # 4300 digits
        if start != str(next_word) or (len(end), end) <= (len(start), start):
            raise DataError(
                f"multiword token range {_shown(wid)} does not start at the next word "
                f"({next_word}) or is empty",
                path=path,
                line=line,
            )
        return
    if not _EMPTY_ID.fullmatch(wid):
        raise DataError(
            f"bad ID {_shown(wid)!r}: expected a word number (7), a range (3-4) or an empty node (8.1)",
            path=path,
            line=line,
        )


def read(
    source: str | os.PathLike[str] | TextFile,
    column: str = "upos",
    *,
    require_tags: bool = True,
    limit: int = 0,
    other_columns: tuple[str, ...] = (),
) -> list[Sentence]:
    """The sentences of a CoNLL-U file (a path, or a file already read); an empty file (no
    words) is a DataError. `limit` > 0 keeps only the first `limit` sentences (for quick runs
    and tests)."""
    file = source if isinstance(source, TextFile) else read_text(source)
    sentences = parse(
        file.text, file.path, column, require_tags=require_tags, other_columns=other_columns
    )
    if not sentences:
        raise file.error("no sentences: expected CoNLL-U word lines (ID FORM ... MISC)")
    return sentences[:limit] if limit else sentences


def looks_like_conllu(text: str) -> bool:
    """True when the first line that is neither blank nor a comment has ten tab-separated
    columns, or the text starts with a `#` comment (how CoNLL-U files start)."""
    for line in text.split("\n", 200)[:200]:
        if not line.strip():
            continue
        if line.startswith("#"):
            return True
        return line.count("\t") == 9
    return False


def column_names(text: str) -> list[str]:
    """Comma-separated column names (the predict option `keep_gold`), each one zoo predicts:
    a ValueError names any other."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in PREDICTED_COLUMNS:
            raise ValueError(
                f"{name!r} is not a column zoo predict fills ({', '.join(PREDICTED_COLUMNS)}); "
                "it keeps every other column as the file has it"
            )
    return names


def with_tags(file: TextFile, sentences: list[Sentence], tags: list[list[str]], column: str) -> str:
    """The file's text with the tag column of every word line replaced by `tags`, every other
    character untouched ('\\r' line ends, and the byte-order mark the file started with)."""
    return with_columns(file, sentences, {column: tags})


def with_columns(
    file: TextFile, sentences: list[Sentence], columns: dict[str, list[list[str]]]
) -> str:
    """The file's text with each named column (`{"upos": tags per sentence, "feats": ...}`)
    of every word line replaced, every other character untouched, as `with_tags`."""
    lines = file.text.split("\n")
    indices = {name: COLUMNS.index(name) for name in columns}
    for k, sentence in enumerate(sentences):
        for position, lineno in enumerate(sentence.lines):
            cols = lines[lineno].split("\t")
            for name, index in indices.items():
                cols[index] = columns[name][k][position]
            lines[lineno] = "\t".join(cols)
    return ("\ufeff" if file.bom else "") + "\n".join(lines)


# The CoNLL 2018 shared task's universal features (its conll18_ud_eval.py): its UFeats and
# AllTags compare FEATS on these alone, so EWT's Typo, ExtPos, NumForm and Style do not count.
UNIVERSAL_FEATURES = frozenset(
    {
        "PronType", "NumType", "Poss", "Reflex", "Foreign", "Abbr", "Gender", "Animacy",
        "Number", "Case", "Definite", "Degree", "VerbForm", "Mood", "Tense", "Aspect",
        "Voice", "Evident", "Polarity", "Person", "Polite",
    }
)  # fmt: skip


def universal_feats(feats: str) -> str:
    """FEATS as the CoNLL 2018 script compares them: the universal features only, sorted and
    joined by `|` ("" for `_` or none left), so zoo's figure is the script's."""
    kept = (f for f in feats.split("|") if f.split("=", 1)[0] in UNIVERSAL_FEATURES)
    return "|".join(sorted(kept))
