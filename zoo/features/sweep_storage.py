"""Where a sweep's study lives: Optuna's RDB storage (SQLite by default, PostgreSQL across
machines) and its pruner. Shared by `zoo sweep` (zoo/features/sweep.py) and the trial
reporter inside each trial's `zoo run` (zoo/features/sweep_report.py), which joins the same
study. Imports Optuna at the top: only those two import this module.
"""

from __future__ import annotations

import contextlib
import random
import time
import warnings
from pathlib import Path

import optuna

from zoo.core.errors import UsageError, ZooError

HEARTBEAT = 20  # seconds between a running trial's heartbeats in the storage
GRACE = 60  # a running trial silent this long belonged to a process that died: failed


def default_storage(create: bool = True) -> str:
    """SQLite in zoo's data folder, beside the run log (the folder made unless `create` is
    false: `zoo sweep show` makes nothing)."""
    from zoo.features.runlog import default_path

    folder = default_path().parent
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'sweeps.sqlite'}"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite storage URL; None for another database (or a URL SQLAlchemy
    cannot read, which `open_storage` reports). A database in memory is refused: a sweep's
    trials are processes of their own, and each would see an empty database of its own."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    modes = parsed.query.get("mode", ())
    if database in ("", ":memory:") or ":memory:" in database or "memory" in modes:
        raise UsageError(
            f"--storage {shown_url(url)}: a database in memory cannot be shared with the "
            "trials, which are processes of their own; give a file, sqlite:///PATH"
        )
    return Path(database.removeprefix("file:").split("?")[0])


def storage_to_read(url: str, named: bool) -> bool:
    """Whether the storage at `url` holds Optuna's tables, for `zoo sweep show`, which must
    create nothing: a SQLite file that does not exist is an error when the user `named` it
    (else there is simply no study yet); a file without the tables has no study in it."""
    path = sqlite_file(url)
    if path is None:
        return True
    if path.is_dir():
        raise ZooError(f"--storage {shown_url(url)}: is a folder, expected a file")
    if not path.exists():
        if named:
            raise ZooError(f"--storage {shown_url(url)}: no such file")
        return False
    return _has_studies(path)


def _has_studies(path: Path) -> bool:
    """Whether the SQLite file has Optuna's `studies` table, read without writing."""
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'"
            ).fetchone()
    except sqlite3.Error:
        return True  # not a database, locked, ...: `open_storage` says why in one line
    return found is not None


def shown_url(url: str) -> str:
    """The storage URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}:***@{tail}"


def _driver_url(url: str) -> str:
    """`postgresql://` through psycopg 3 (the `postgres` extra) when psycopg2 is absent."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at `url`, with heartbeats (a killed worker's trials are failed
    after GRACE seconds) and bounded waits; one line when it cannot be used."""
    import sqlalchemy.exc

    shown = shown_url(url)
    sqlite_file(url)  # a database in memory: refused
    try:
        return _storage_made_once(url)
    except ImportError as e:  # Optuna's own ImportError names no package
        raise UsageError(_missing_driver(url, e)) from None
    except sqlalchemy.exc.ArgumentError as e:
        raise UsageError(f"--storage {shown}: not a database URL ({e})") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ZooError(f"--storage {shown}: cannot open it: {reason}") from None


def _missing_driver(url: str, e: ImportError) -> str:
    """One line for a database driver that cannot be imported: for PostgreSQL, the extra
    that installs it."""
    shown = shown_url(url)
    if url.startswith(("postgresql", "postgres")):
        return (
            f"--storage {shown}: needs the PostgreSQL driver psycopg: "
            "pip install 'rnn-zoo[postgres]'"
        )
    cause = e.__cause__ or e.__context__ or e
    return f"--storage {shown}: cannot import its database driver ({cause}); install it"


def _storage_made_once(url: str, attempts: int = 8) -> optuna.storages.RDBStorage:
    """The storage, tried again when another worker is creating Optuna's tables in the same
    database at this moment: PostgreSQL then refuses one of the two with a duplicate key or
    an existing table, and the tables are there a moment later."""
    import sqlalchemy.exc

    connect = {"timeout": 60} if url.startswith("sqlite") else {"connect_timeout": 10}
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    _driver_url(url),
                    engine_kwargs={"connect_args": connect},
                    heartbeat_interval=HEARTBEAT,
                    grace_period=GRACE,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            racing = "duplicate key" in str(e) or "already exists" in str(e)
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.1, 0.5))
    raise AssertionError("unreachable")


def pruner(kind: str, warmup: int = 0) -> optuna.pruners.BasePruner:
    """Optuna's median pruner (after 5 finished trials, never before step `warmup` of a
    trial), or none."""
    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
