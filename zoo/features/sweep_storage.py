"""Where a sweep's study lives: Optuna's RDB storage (SQLite by default, PostgreSQL across
machines) and its pruner. Shared by `zoo sweep` (zoo/features/sweep.py) and the trial
reporter inside each trial's `zoo run` (zoo/features/sweep_report.py), which joins the same
study. Imports Optuna at the top: only those two import this module.
"""

from __future__ import annotations

import random
import time
import warnings

import optuna

from zoo.core.errors import UsageError, ZooError

HEARTBEAT = 20  # seconds between a running trial's heartbeats in the storage
GRACE = 60  # a running trial silent this long belonged to a process that died: failed


def default_storage() -> str:
    """SQLite in zoo's data folder, beside the run log."""
    from zoo.features.runlog import default_path

    folder = default_path().parent
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'sweeps.sqlite'}"


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
    try:
        return _storage_made_once(url)
    except ModuleNotFoundError as e:
        raise UsageError(
            f"--storage {shown}: needs the database driver {e.name!r}: "
            "pip install 'rnn-zoo[postgres]'"
        ) from None
    except sqlalchemy.exc.ArgumentError as e:
        raise UsageError(f"--storage {shown}: not a database URL ({e})") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ZooError(f"--storage {shown}: cannot open it: {reason}") from None


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
