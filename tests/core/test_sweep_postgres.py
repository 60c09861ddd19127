"""Two `zoo sweep` workers on one study in a real PostgreSQL server, as two machines would.

The server is started here from the Debian `postgresql` package's binaries (installed by
.ci/run), in a temporary folder, on 127.0.0.1 and a free port, trusting local connections;
it is stopped afterwards. Without those binaries the test is skipped and says why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.core.test_sweep import SPACE, TOY, _assert_each_trial_once

pytest.importorskip("optuna", reason="zoo sweep needs the sweep extra (optuna)")
pytest.importorskip("psycopg", reason="PostgreSQL storage needs the postgres extra (psycopg)")


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if isinstance(found, list) and found else found or None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: as the package's own user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(initdb, "-D", str(data), "-U", "zoo", "--auth=trust", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    run(
        pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"
    )
    try:
        yield f"postgresql://zoo@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_one_postgres_study_record_every_trial_once(
    postgres_url, tmp_path, zoo_home
):
    command = [sys.executable, "-m", "zoo", "sweep", *TOY, *SPACE, "--trials", "4",
               "--storage", postgres_url, "--study", "shared"]  # fmt: skip
    env = {**os.environ, "ZOO_HOME": str(zoo_home)}
    workers = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=240)
        assert worker.returncode == 0, stderr
    _assert_each_trial_once(postgres_url, "shared", zoo_home, 4)


@pytest.mark.slow
def test_workers_creating_the_tables_at_once_all_get_the_storage(postgres_url):
    """Machines starting together race to create Optuna's tables in an empty database; the
    loser of the race tries again instead of failing."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE DATABASE racing")
    url = postgres_url.rsplit("/", 1)[0] + "/racing"
    code = f"from zoo.features.sweep_storage import open_storage; open_storage({url!r})"
    workers = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
