"""A throwaway PostgreSQL server for tests: Debian's `initdb` and `pg_ctl` (package
`postgresql`), a cluster in a temporary directory, listening on a free 127.0.0.1 port, with
a password-protected user and one database; stopped and deleted afterwards.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` system
user (created by the Debian package), through `runuser`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from de_pipeline_tests.dagster_dev import free_port

START_TIMEOUT_SECONDS = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be run here; the message says why (for pytest.skip)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def dagster_env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }


def postgres_bin_dir() -> Path:
    """The newest installed /usr/lib/postgresql/<version>/bin with initdb and pg_ctl."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    found = [d for d in found if (d / "pg_ctl").exists()]
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "sudo apt-get install postgresql (.ci/run installs it)"
        )
    return found[-1]


def _server_user() -> str | None:
    """The user to run the server as: None for the current (non-root) user, else `postgres`."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root and there is no `postgres` user to run PostgreSQL as "
            "(the Debian package `postgresql` creates it)"
        ) from None
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and `runuser` is missing to run PostgreSQL as `postgres`")
    return "postgres"


def check_postgres_available() -> None:
    """Raise PostgresUnavailable, saying why, when no server can be run here."""
    postgres_bin_dir()
    _server_user()


@contextmanager
def running_postgres(*, database: str = "dagster", user: str = "dagster") -> Iterator[PostgresServer]:
    """A PostgreSQL server for the duration of the block. Raises PostgresUnavailable when it
    cannot be run here, RuntimeError (with the server's log) when it fails to start."""
    bin_dir = postgres_bin_dir()
    run_as = _server_user()
    password = "pg-" + os.urandom(12).hex()
    root = Path(tempfile.mkdtemp(prefix="de_pipeline_pg_"))  # 0700; handed to the server's user
    data_dir, log_path, password_file = root / "data", root / "server.log", root / "password"
    password_file.write_text(password + "\n")
    if run_as is not None:
        owner = pwd.getpwnam(run_as)
        os.chown(root, owner.pw_uid, owner.pw_gid)
        os.chown(password_file, owner.pw_uid, owner.pw_gid)

    def run(*command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", run_as, "--"] if run_as else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS)

    def log_tail() -> str:
        try:
            return "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no server log)"

    port = free_port()
    started = False
    try:
        initdb = run(
            str(bin_dir / "initdb"),
            "-D", str(data_dir),
            "-U", user,
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr[-2000:]}")
        # TCP on 127.0.0.1 only; the Unix socket in the cluster's own directory, not /var/run
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
        start = run(str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_path), "-o", options, "-w", "start")
        started = True
        if start.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({start.returncode}): {start.stderr[-1000:]}\n{log_tail()}")
        server = PostgresServer(host="127.0.0.1", port=port, user=user, password=password, database=database)
        _create_database(server)
        yield server
    finally:
        if started:
            run(str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _create_database(server: PostgresServer) -> None:
    import psycopg2  # from dagster-postgres

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            connection = psycopg2.connect(
                host=server.host, port=server.port, user=server.user, password=server.password, dbname="postgres"
            )
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{server.database}"')
    finally:
        connection.close()


@contextmanager
def postgres_or_skip(**options: str) -> Iterator[PostgresServer]:
    """running_postgres(**options); without Debian's PostgreSQL, the test skipped with the reason."""
    try:
        check_postgres_available()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with running_postgres(**options) as server:
        yield server
