"""The Dagster instance of in-process runs (CLI, benchmark, tests): DAGSTER_HOME's, or a
throwaway one, made safe for two processes starting at once and for two runs in one process.

Two hazards of Dagster 1.13 that this module closes:

- **Two first runs at once break a new home for good.** Each process that opens a fresh
  DAGSTER_HOME creates the SQLite storages and stamps their alembic revision; two at once
  both stamp (one `head`, the other the last revision Dagster stamped before SQLAlchemy 2),
  and every later run fails with "Version table 'alembic_version' has more than one head
  present" (dagster-io/dagster#27390). Instances are opened under a file lock in the home,
  and a home already in that state is repaired (the tables were created at head, so the
  other stamp is dropped).
- **Two runs in one process deadlock.** Each run's log manager asks the instance for its
  `python_logs` handlers, and Dagster builds them with `logging.config.dictConfig` even when
  none are configured. dictConfig holds logging's module lock while it flushes and closes
  *every* handler of the process, so a run that starts while another run's thread is inside
  a handler (which may itself need the module lock, e.g. for a logger's level cache) waits
  for ever. With no handlers configured, the instances here skip that call.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from logging import Handler
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.storage.sqlite import LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION

from de_pipeline.env import SettingsError

# The SQLite storages that every process of a home shares (a run's own event log shard is
# written by one process only), under the default storage layout.
SHARED_SQLITE_STORAGES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
LOCK_FILE = ".de-pipeline-instance.lock"
_PRE_SQLALCHEMY_2_STAMP = LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION  # what the second process stamps


class InstanceRepairError(RuntimeError):
    """A Dagster home whose storage this module cannot repair by itself."""


@contextmanager
def open_instance(
    overrides: Mapping[str, Any] | None = None, say: Callable[[str], None] = print
) -> Iterator[DagsterInstance]:
    """DAGSTER_HOME's instance (its dagster.yaml, with `overrides` laid over) when one is set,
    so that runs show in the UI; else a throwaway in memory. A repair is said in a line."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        with DagsterInstance.ephemeral() as instance:
            yield _without_logging_reconfiguration(instance)
        return
    if not Path(home).is_dir():
        raise SettingsError(f"DAGSTER_HOME={home} is not a folder: create it, with the repository's dagster.yaml")
    with _home_locked(Path(home)):
        for path in repair_doubled_alembic_stamps(Path(home)):
            say(f"repaired {path}: two processes had created it at once (it held two alembic revisions)")
        instance = DagsterInstance.local_temp(home, overrides=dict(overrides)) if overrides else DagsterInstance.get()
    with instance:
        yield _without_logging_reconfiguration(instance)


@contextmanager
def _home_locked(home: Path) -> Iterator[None]:
    """Hold the home's lock file: one process at a time creates (or checks) its storages."""
    with open(home / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def repair_doubled_alembic_stamps(home: Path) -> list[str]:
    """Drop the second alembic stamp that two processes creating a storage at once leave
    (`head` and the last pre-SQLAlchemy-2 revision); the files repaired. Any other doubled
    stamp is an InstanceRepairError naming the file."""
    repaired = []
    for relative in SHARED_SQLITE_STORAGES:
        path = home / relative
        if not path.exists():
            continue
        with closing(sqlite3.connect(path, timeout=30)) as db, db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
                continue
            stamps = [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
            if len(stamps) < 2:
                continue
            if len(stamps) != 2 or _PRE_SQLALCHEMY_2_STAMP not in stamps:
                raise InstanceRepairError(
                    f"{path} holds the alembic revisions {', '.join(stamps)}: not the pair two first runs at once "
                    "leave; move it aside (Dagster makes a new one, without the history it held)"
                )
            db.execute("DELETE FROM alembic_version WHERE version_num = ?", (_PRE_SQLALCHEMY_2_STAMP,))
        repaired.append(str(path))
    return repaired


def reconfigures_logging(instance: DagsterInstance) -> bool:
    """Whether each run of the instance reconfigures the process's logging: its dagster.yaml
    names `python_logs` handlers, so two runs in one process are unsafe."""
    return bool(instance.get_python_log_dagster_handler_config())


def _without_logging_reconfiguration(instance: DagsterInstance) -> DagsterInstance:
    """The instance, its runs no longer calling logging.config.dictConfig when it configures
    no `python_logs` handlers (with handlers configured, Dagster's own method stays)."""
    if not reconfigures_logging(instance):

        def no_yaml_handlers() -> Sequence[Handler]:
            return []

        instance.get_yaml_python_handlers = no_yaml_handlers  # type: ignore[method-assign]
    return instance
