"""The Dagster instance of in-process runs (CLI, tests): DAGSTER_HOME's, or else the
project's own beside the warehouse, which `de-pipeline ui` opens too, so that the UI shows
what the CLI did. Made safe for two processes starting at once and two runs in one process.

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
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from logging import Handler
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.storage.sqlite import LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION

from de_pipeline.env import Env, SettingsError
from de_pipeline.warehouse.settings import WarehouseSettings

# The SQLite storages that every process of a home shares (a run's own event log shard is
# written by one process only), under the default storage layout.
SHARED_SQLITE_STORAGES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
LOCK_FILE = ".de-pipeline-instance.lock"
INSTANCE_CONFIG = Path(__file__).parent.parent / "dagster.yaml"  # the local instance: pools of limit 1
_PRE_SQLALCHEMY_2_STAMP = LAST_KNOWN_STAMPED_SQLITE_ALEMBIC_REVISION  # what the second process stamps


class InstanceRepairError(RuntimeError):
    """A Dagster home whose storage this module cannot repair by itself."""


def dagster_home() -> Path:
    """DAGSTER_HOME, else the project's own: `dagster_home` beside the warehouse file
    (data/dagster_home by default), so that the CLI's runs and `de-pipeline ui` share one."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return (WarehouseSettings.from_env().duckdb_path.parent / "dagster_home").resolve()
    if not Path(home).is_absolute():  # as Dagster requires (dagster dev would refuse it)
        raise SettingsError(f"DAGSTER_HOME={home} must be an absolute path")
    return Path(home)


def prepare_home(home: Path) -> Path:
    """`home`, holding a dagster.yaml: the default home is made, with the repository's
    (de_pipeline/dagster.yaml: the pools of limit 1); a home of the user's must exist."""
    if os.environ.get("DAGSTER_HOME"):
        if not home.is_dir():
            raise SettingsError(f"DAGSTER_HOME={home} is not a folder: create it, and copy {INSTANCE_CONFIG} there")
        return home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        temporary = home / f".dagster.yaml.{os.getpid()}"
        shutil.copyfile(INSTANCE_CONFIG, temporary)
        temporary.replace(config)  # whole or absent, for another process starting at once
    return home


@contextmanager
def open_instance(
    overrides: Mapping[str, Any] | None = None, say: Callable[[str], None] = print
) -> Iterator[DagsterInstance]:
    """The instance of dagster_home() (its dagster.yaml, with `overrides` laid over), so that
    runs show in the UI. A repair is said in a line; a home without the pools of limit 1 is
    a SettingsError saying what to copy where. With DE_RUN_HISTORY=off (and no DAGSTER_HOME),
    a throwaway in memory: no history, no pools, a second or two less per run."""
    if not os.environ.get("DAGSTER_HOME") and not Env().flag("DE_RUN_HISTORY", True):
        with DagsterInstance.ephemeral() as instance:
            yield _without_logging_reconfiguration(instance)
        return
    home = prepare_home(dagster_home())
    with _home_locked(home):
        for path in repair_doubled_alembic_stamps(home):
            say(f"repaired {path}: two processes had created it at once (it held two alembic revisions)")
        instance = DagsterInstance.local_temp(str(home), overrides=dict(overrides or {}))
    with instance:
        check_pools(instance, home)
        yield _without_logging_reconfiguration(instance)


def check_pools(instance: DagsterInstance, home: Path) -> None:
    """A SettingsError unless every pool has a limit of 1: the warehouse has one writer."""
    limit = instance.get_concurrency_config().pool_config.default_pool_limit
    if limit != 1:
        raise SettingsError(
            f"the Dagster instance in {home} gives pools a limit of {limit or 'none'}, so two runs could write "
            f"the warehouse at once: copy {INSTANCE_CONFIG} to {home / 'dagster.yaml'} (it sets "
            "`concurrency: pools: default_limit: 1`)"
        )


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
