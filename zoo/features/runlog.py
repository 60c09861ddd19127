"""The run log: every `zoo run` and `zoo eval` kept as one row of a local SQLite database.

Like `llm logs`, recording is on by default so that runs can be listed (`zoo runs`) and
compared (`zoo compare`) without anyone having planned to. The database is
`$ZOO_HOME/runs.sqlite`, else `runs.sqlite` in the user's data folder (`click.get_app_dir`).
A row is inserted as `running` when a command starts and completed when it ends; a process
killed outright (SIGKILL, a power cut) leaves `running`, which readers show as `killed` once
that process is gone from its host.

Many processes may write at once (a sweep of eight trainings started together): the database
is in WAL mode, waits up to `BUSY_TIMEOUT` seconds for a lock, and every write is one short
`BEGIN IMMEDIATE` transaction. The schema is versioned with `PRAGMA user_version`: `MIGRATIONS`
are applied in order, so a later zoo upgrades an older log in place, while a log from a newer
zoo is never touched. The log is a record, never a reason to lose a run: a database that
cannot be opened or written costs one `warning:` line on stderr and the command goes on
(`Recording`). Reading it needs neither torch nor any plugin. docs/runlog.md describes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from zoo.core.errors import TrainingDiverged, TrainingInterrupted, TrainingStopped, ZooError

FILE_NAME = "runs.sqlite"
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another one's transaction
STATUSES = ("running", "finished", "interrupted", "diverged", "failed", "pruned")
KILLED = "killed"  # shown, never stored: a `running` row whose process is gone
# Bytes each recording command sets aside beside the log when it starts, and frees to write
# its end when the disk has filled meanwhile: a finished run is not left `running` (killed).
RESERVE_BYTES = 128 * 1024

# Each entry upgrades the schema by one version; never edit one that was released, append.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,          -- run | eval
            status TEXT NOT NULL,           -- running, finished, interrupted, diverged, failed
            started TEXT NOT NULL,          -- ISO 8601, UTC
            ended TEXT,
            seconds REAL,                   -- wall seconds of the whole command
            pid INTEGER,
            host TEXT,
            cwd TEXT,
            arguments TEXT,                 -- JSON list: the command's arguments
            architecture TEXT,
            dataset TEXT,
            task TEXT,
            data TEXT,                      -- JSON {field: absolute path}
            data_fingerprint TEXT,
            settings TEXT,                  -- JSON {model: {}, data: {}, train: {}}
            metrics TEXT,                   -- JSON {split: {metric: value}}
            training TEXT,                  -- JSON: steps, epochs, seconds, cpu_seconds, ...
            history TEXT,                   -- JSON list of per-epoch / per-validation entries
            parameters INTEGER,
            model_path TEXT,
            model_sha256 TEXT,
            zoo_version TEXT,
            plugins TEXT,                   -- JSON {plugin: version}
            threads INTEGER,
            device TEXT,
            processes INTEGER,
            error TEXT
        )""",
        "CREATE INDEX runs_architecture ON runs (architecture)",
        "CREATE INDEX runs_dataset ON runs (dataset)",
    ),
    (  # 2: the sweep a run was a trial of (`zoo sweep`); status may be 'pruned'
        "ALTER TABLE runs ADD COLUMN study TEXT",
        "ALTER TABLE runs ADD COLUMN trial INTEGER",
        "CREATE INDEX runs_study ON runs (study)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
JSON_COLUMNS = ("arguments", "data", "settings", "metrics", "training", "history", "plugins")
COLUMNS = (
    "command",
    "status",
    "started",
    "ended",
    "seconds",
    "pid",
    "host",
    "cwd",
    "architecture",
    "dataset",
    "task",
    "data_fingerprint",
    "parameters",
    "model_path",
    "model_sha256",
    "zoo_version",
    "threads",
    "device",
    "processes",
    "error",
    "study",
    "trial",
    *JSON_COLUMNS,
)


class RunLogError(ZooError):
    """The run log cannot be used: unreadable, not a database, or from a newer zoo."""


def default_path() -> Path:
    """Where the log lives: `$ZOO_HOME/runs.sqlite`, else the user's data folder."""
    home = os.environ.get("ZOO_HOME")
    return Path(home if home else click.get_app_dir("zoo")) / FILE_NAME


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _encode(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and value is not None:
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


class RunLog:
    """An open run log. Writes raise sqlite3.Error/OSError; `Recording` turns those into one
    warning, readers (`zoo runs`) into an `Error:` line."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self.connection = connection
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> RunLog:
        """Open (and create or upgrade) the log; RunLogError says why it cannot be used."""
        target = Path(path) if path is not None else default_path()
        try:
            if create:
                target.parent.mkdir(parents=True, exist_ok=True)
            elif not target.is_file():
                raise RunLogError(f"run log {target}: no such file (no run was logged yet)")
            connection = sqlite3.connect(target, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise RunLogError(f"run log {target}: cannot open: {_reason(e)}") from None
        try:
            _prepared(connection, target)
        except BaseException as e:
            connection.close()
            if not create and isinstance(e, sqlite3.OperationalError):
                return cls(_read_only(target, e), target)
            if isinstance(e, (sqlite3.Error, OSError)):
                raise RunLogError(f"run log {target}: {_reason(e)}") from None
            raise
        return cls(connection, target)

    def close(self) -> None:
        self.connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock at once (BEGIN IMMEDIATE), so
        a writer waits for the busy timeout instead of failing on a stale snapshot."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            if self.connection.in_transaction:  # (SQLite may have rolled back already)
                self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def start(self, command: str, **fields: Any) -> int:
        """Insert a `running` row for a command that starts now; returns its id."""
        row = {
            "command": command,
            "status": "running",
            "started": now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "cwd": os.getcwd(),
            **fields,
        }
        _check_columns(row)
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO runs ({names}) VALUES ({marks})",
                [_encode(k, v) for k, v in row.items()],
            )
        return int(cursor.lastrowid or 0)

    def update(self, run_id: int, **fields: Any) -> None:
        """Set some columns of a row (an `end` status among them, or facts learnt meanwhile)."""
        if not fields:
            return
        _check_columns(fields)
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status {fields['status']!r} is not one of {STATUSES}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._transaction() as db:
            db.execute(
                f"UPDATE runs SET {assignments} WHERE id = ?",
                [*(_encode(k, v) for k, v in fields.items()), run_id],
            )

    def get(self, run_id: int) -> dict[str, Any] | None:
        """One run as a dict (JSON columns decoded, `status` as shown), or None."""
        cursor = self.connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        row = cursor.fetchone()
        return None if row is None else _decode(cursor, row)

    def find(
        self,
        *,
        architecture: str | None = None,
        dataset: str | None = None,
        status: str | None = None,
        command: str | None = None,
        study: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching all given filters, latest first. `status` is as shown: `killed`
        finds `running` rows whose process is gone, `running` those still alive."""
        where, values = [], []
        for column, value in (
            ("architecture", architecture),
            ("dataset", dataset),
            ("command", command),
            ("study", study),
            ("status", "running" if status == KILLED else status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC"
        shown_differs = status in ("running", KILLED)  # decided per row, after the query
        if limit is not None and not shown_differs:
            sql += f" LIMIT {int(limit)}"
        cursor = self.connection.execute(sql, values)
        rows = [_decode(cursor, row) for row in cursor.fetchall()]
        if shown_differs:
            rows = [r for r in rows if r["status"] == status]
        return rows if limit is None else rows[:limit]


def _read_only(path: Path, first: sqlite3.Error) -> sqlite3.Connection:
    """The log opened for reading where it cannot be opened as usual, which writes (WAL's
    shared-memory file): on a full disk or a read-only mount, `zoo runs` still lists the runs.
    Immutable: it reads the database file as it is, without locks (a last connection closes
    by folding the WAL into it)."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error:
        raise RunLogError(f"run log {path}: {_reason(first)}") from None
    if version != SCHEMA_VERSION:
        connection.close()
        empty = " (it is empty: no run was logged yet)" if version == 0 else ""
        raise RunLogError(f"run log {path}: {_reason(first)}{empty}")
    return connection


def _prepared(connection: sqlite3.Connection, path: Path) -> None:
    """`_prepare`, tried again while another process holds the lock. Switching a new log to
    WAL needs the database to itself, and SQLite then answers "database is locked" at once
    instead of waiting for the busy timeout: processes that start together and race to create
    the log would otherwise lose their rows (a test saw it on a busy machine)."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            _prepare(connection, path)
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            time.sleep(random.uniform(0.01, 0.05))


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """Check the version before touching anything, then WAL mode and the migrations."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RunLogError(
            f"run log {path}: written by a newer zoo (schema {version}; this zoo knows "
            f"{SCHEMA_VERSION}); upgrade zoo (pip install -U rnn-zoo) or set ZOO_HOME"
        )
    if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")  # WAL: durable on a crash, not power loss
    if version < SCHEMA_VERSION:
        _migrate(connection)


def _migrate(connection: sqlite3.Connection) -> None:
    """Apply the migrations this database lacks, in one transaction (another process may be
    doing the same: the version is read again under the write lock)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {max(version, SCHEMA_VERSION)}")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _check_columns(fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"run log has no column {', '.join(sorted(unknown))}")


def _decode(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out = {d[0]: value for d, value in zip(cursor.description, row)}
    for column in JSON_COLUMNS:
        if out.get(column) is not None:
            # a damaged field stays text: the row is still shown
            with contextlib.suppress(ValueError):
                out[column] = json.loads(out[column])
    if out["status"] == "running" and not _still_running(out.get("pid"), out.get("host")):
        out["status"] = KILLED
    return out


def _still_running(pid: int | None, host: str | None) -> bool:
    """Whether a `running` row's process may still be at it; on another host we cannot tell
    and say it is. A pid reused by an unrelated process reads as alive too."""
    if pid is None or host != socket.gethostname() or os.name == "nt":
        return True  # (on Windows, os.kill with signal 0 would end the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, another user's
        return True
    return True


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


def open_log(path: str | os.PathLike[str] | None = None) -> RunLog | None:
    """The run log, opened (created or upgraded) for writing, or None after one `warning:`
    line on stderr when it cannot be used: callers go on without it."""
    try:
        return RunLog.open(path)
    except RunLogError as e:
        warn(str(e))
        return None


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


# ------------------------------------------------------------------------------ recording
class Recording:
    """One command's row, written on a best-effort basis: the first failure to write costs
    one warning and ends the recording; the command itself never fails because of it."""

    def __init__(self, log: RunLog | None = None, fields: dict[str, Any] | None = None):
        self.log = log
        self.reserve: Path | None = None  # space set aside for the end (see RESERVE_BYTES)
        self.run_id: int | None = None
        self.fields = fields or {}  # what the row started with
        self.ended = False
        self.t0 = time.perf_counter()

    @classmethod
    def start(
        cls, command: str, path: str | os.PathLike[str] | None = None, **fields: Any
    ) -> Recording:
        """Open the log and insert the command's `running` row (or warn and record nothing)."""
        try:
            log = RunLog.open(path)
        except RunLogError as e:
            warn(f"{e}; this command is not logged")
            return cls()
        recording = cls(log, fields)
        recording._write(lambda: setattr(recording, "run_id", log.start(command, **fields)))
        if recording.run_id is not None:
            recording.reserve = _set_aside(log.path)
        return recording

    def update(self, **fields: Any) -> None:
        if self.run_id is not None:
            self._write(lambda: self.log.update(self.run_id, **fields))  # type: ignore[union-attr]

    def end(self, status: str, **fields: Any) -> None:
        """Record how the command ended (once)."""
        if self.ended:
            return
        self.ended = True
        seconds = round(time.perf_counter() - self.t0, 3)
        try:
            self.update(status=status, ended=now(), seconds=seconds, **fields)
        finally:
            _release(self.reserve)
        if self.log is not None:
            self.log.close()

    def _write(self, write: Any) -> None:
        assert self.log is not None
        try:
            write()
        except (sqlite3.Error, OSError) as first:
            if not _release(self.reserve):  # a full disk: free the space set aside, retry
                self._failed(first)
                return
            self.reserve = None
            try:
                write()
            except (sqlite3.Error, OSError) as e:
                self._failed(e)

    def _failed(self, e: BaseException) -> None:
        """One warning, and the recording ends: the command goes on unlogged."""
        assert self.log is not None
        where = f"run {self.run_id}" if self.run_id is not None else "this run"
        warn(f"run log {self.log.path}: {_reason(e)}; {where} is not logged")
        with contextlib.suppress(sqlite3.Error):
            self.log.close()
        self.log, self.run_id = None, None


def _set_aside(log_path: Path) -> Path | None:
    """A file of RESERVE_BYTES beside the log, named by host and process; those left by
    processes of this host that are gone (killed) are removed. None where it cannot be made."""
    host = socket.gethostname()
    prefix = f".{log_path.name}.reserve-{host}-"
    with contextlib.suppress(OSError, ValueError):
        for stale in log_path.parent.glob(prefix + "*"):
            if not _still_running(int(stale.name.rsplit("-", 1)[1]), host):
                stale.unlink(missing_ok=True)
    path = log_path.parent / f"{prefix}{os.getpid()}"
    try:
        with open(path, "wb") as f:
            f.write(bytes(RESERVE_BYTES))
        return path
    except OSError:
        _release(path)
        return None


def _release(path: Path | None) -> bool:
    """Remove a reserve file; whether there was one to remove."""
    if path is None:
        return False
    try:
        path.unlink()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def recording(command: str, enabled: bool = True, **fields: Any) -> Iterator[Recording]:
    """Record a command: a `running` row now, its end when the block exits. An exception
    out of the block is recorded (interrupted, diverged or failed, with its message) and
    goes on its way; a block that did not call `end` is recorded as finished."""
    rec = Recording.start(command, **fields) if enabled else Recording()
    try:
        yield rec
    except BaseException as e:
        status, error = how_it_ended(e)
        rec.end(status, error=error)
        raise
    rec.end("finished")


def how_it_ended(e: BaseException) -> tuple[str, str | None]:
    """(status, error line) for an exception that ended a command."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted", "interrupted"
    if isinstance(e, TrainingInterrupted):
        return "interrupted", str(e)
    if isinstance(e, TrainingDiverged):
        return "diverged", str(e)
    if isinstance(e, TrainingStopped):
        return e.status, str(e)
    if isinstance(e, ZooError):
        return "failed", str(e)
    if isinstance(e, (SystemExit, click.exceptions.Exit)):
        code = e.code if isinstance(e, SystemExit) else e.exit_code
        return ("finished", None) if code in (0, None) else ("failed", f"exited with code {code}")
    return "failed", f"internal error: {type(e).__name__}: {e}"


# ---------------------------------------------------------------------- what is recorded
CONTENT_HASH_LIMIT = 32 * 1024 * 1024  # bytes; larger files are fingerprinted by size and mtime
MAX_FILES = 10_000  # per data folder


def data_fingerprint(paths: dict[str, str]) -> str | None:
    """A cheap identity of the data files: sha256 over each file's role, name and size, and
    its content (files up to 32 MiB) or its modification time (larger ones). Folders count
    with their files (the first 10,000 in name order). None when no path is given."""
    if not paths:
        return None
    digest = hashlib.sha256()
    try:
        for role, value in sorted(paths.items()):
            root = Path(value)
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
            for file in files[:MAX_FILES]:
                name = file.relative_to(root) if root.is_dir() else ""
                digest.update(f"{role}\0{name}\0".encode())
                digest.update(_file_identity(file).encode())
    except OSError:  # an unreadable folder: the command itself will say what is wrong
        return None
    return digest.hexdigest()


def _file_identity(file: Path) -> str:
    try:
        stat = file.stat()
        if stat.st_size <= CONTENT_HASH_LIMIT:
            return f"{stat.st_size}\0{file_sha256(file)}"
        return f"{stat.st_size}\0{stat.st_mtime_ns}"
    except OSError:
        return "missing"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (what `sha256sum` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def data_paths(values: dict[str, Any]) -> dict[str, str]:
    """The data files a dataset's settings name (`path`, `dev_path`, `test_path`), absolute."""
    return {
        key: os.path.abspath(str(values[key]))
        for key in ("path", "dev_path", "test_path")
        if values.get(key)
    }
