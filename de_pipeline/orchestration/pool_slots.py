"""Pool slots held by runs whose process is gone, and who holds a pool now.

Dagster frees a run's pool slots when the run ends. A run whose process was killed
(SIGKILL, out of memory, power loss) never ends: it stays STARTED and keeps its slots, and
every later run of that pool waits for ever. The daemon's run monitoring cannot see this
with the default run launcher (it frees the slots of runs that *ended*), and in-process CLI
runs have no daemon at all. So the CLI, before and during each run, and a sensor in
`dagster dev` find runs whose process is gone, mark them failed, and free their slots.

A run's process is known from the `de-pipeline/*` tags that in-process CLI runs carry, or
else from the "Executing steps in process (pid: N)" event that Dagster's in-process executor
records before any step claims a slot. A pid is only judged on its own host: the host tag
says which one; a run without it is judged only when the instance's storage is a local
SQLite file (so its processes ran on this machine).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from de_pipeline.orchestration.runs import job_label

HOST_TAG = "de-pipeline/host"
PID_TAG = "de-pipeline/pid"
PROCESS_START_TAG = "de-pipeline/process-start"  # guards against a reused pid
IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """Tags that tie a run to this process, so that a later run can tell if it is gone."""
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        PROCESS_START_TAG: _process_start(os.getpid()) or "",
    }


@dataclass(frozen=True)
class SlotHolder:
    """A run that holds (or waits for) a slot of a pool."""

    pool: str
    run_id: str
    status: str
    pid: int | None
    host: str | None
    alive: bool | None  # None: its process cannot be checked from here

    def describe(self) -> str:
        where = f"pid {self.pid}" + (f" on {self.host}" if self.host else "") if self.pid else "no known process"
        state = {True: "running", False: "gone", None: "not checkable from this host"}[self.alive]
        return f"run {self.run_id[:8]} ({self.status.lower()}, {where}, {state})"


def pool_holders(instance: DagsterInstance, pools: list[str] | None = None) -> list[SlotHolder]:
    """The runs that hold a slot of each pool (every pool the instance knows by default)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = []
    for pool in sorted(pools if pools is not None else storage.get_concurrency_keys()):
        for run_id in sorted(storage.get_concurrency_info(pool).active_run_ids):
            holders.append(_holder(instance, pool, run_id))
    return holders


def free_stale_slots(instance: DagsterInstance) -> list[str]:
    """Mark runs whose process is gone as failed and free the slots of every run that no
    longer runs. Returns one line per run it acted on."""
    said = []
    for run in instance.get_runs(filters=RunsFilter(statuses=IN_PROGRESS), limit=100):
        pid, host = _run_process(instance, run)
        if pid is not None and _alive(instance, run, pid, host) is False:
            instance.report_run_failed(
                run,
                f"de-pipeline: the run's process (pid {pid}{f' on {host}' if host else ''}) is gone "
                "(killed, out of memory or a power loss); marked failed so that its pool slots "
                "are freed",
            )
            said.append(
                f"run {run.run_id[:8]} ({job_label(run)}, pid {pid}) was left by a process that is gone: "
                "marked it failed"
            )
    if instance.event_log_storage.supports_global_concurrency_limits:
        for run_id in sorted(instance.event_log_storage.get_concurrency_run_ids()):
            holder = instance.get_run_by_id(run_id)
            if holder is None or holder.is_finished:
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
                status = "deleted" if holder is None else holder.status.value.lower()
                said.append(f"freed the pool slots of run {run_id[:8]} ({status})")
    return said


class PoolWatch:
    """Watches one in-process run while it waits for pool slots, in a background thread.

    Dagster's in-process executor waits for a slot silently, for ever, and ignores Ctrl-C
    while it waits. So, every `poll_seconds` while the run has a step waiting: free the slots
    of runs whose process is gone, and say who holds the pool (when it changes, and every
    `remind_seconds`). After `timeout_seconds` of waiting, or on Ctrl-C, the run is marked
    failed, its slots are freed, and the process exits with one line: no step is running
    while the run waits, so nothing is half-written.
    """

    def __init__(
        self,
        instance: DagsterInstance,
        run_id: str,
        *,
        timeout_seconds: float,
        say: Callable[[str], None],
        poll_seconds: float = 1.0,
        remind_seconds: float = 30.0,
    ) -> None:
        self._instance = instance
        self._run_id = run_id
        self._timeout = timeout_seconds
        self._say = say
        self._poll = poll_seconds
        self._remind = remind_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="pool-watch", daemon=True)

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        waiting_since: float | None = None
        said_at, said = 0.0, ""
        while not self._done.wait(self._poll):
            pools = self._pools_waited_for()
            if not pools:
                waiting_since = None
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            for line in free_stale_slots(self._instance):
                self._say(line)
            holders = [h for h in pool_holders(self._instance, pools) if h.run_id != self._run_id]
            text = "; ".join(f"pool {h.pool} is held by {h.describe()}" for h in holders)
            waited = now - waiting_since
            if text and (text != said or now - said_at >= self._remind):
                self._say(
                    f"waiting for a pool slot ({waited:.0f}s of DE_LOCK_TIMEOUT_SECONDS={self._timeout:g}): {text}"
                )
                said, said_at = text, now
            if waited > self._timeout:
                self._abandon(
                    f"gave up after waiting {waited:.0f}s (DE_LOCK_TIMEOUT_SECONDS) for a pool slot: "
                    f"{text or 'the pool stayed full'}",
                    status=1,
                )
            if _interrupted():
                self._abandon("interrupted while waiting for a pool slot", status=130)

    def _pools_waited_for(self) -> list[str]:
        storage = self._instance.event_log_storage
        return [
            pool
            for pool in storage.get_concurrency_keys()
            if any(step.run_id == self._run_id for step in storage.get_concurrency_info(pool).pending_steps)
        ]

    def _abandon(self, reason: str, status: int) -> None:
        run = self._instance.get_run_by_id(self._run_id)
        if run is not None and not run.is_finished:
            self._instance.report_run_failed(run, f"de-pipeline: {reason}")
        self._instance.event_log_storage.free_concurrency_slots_for_run(self._run_id)
        self._say(f"run {self._run_id[:8]}: {reason}")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _interrupted() -> bool:
    """Has Ctrl-C (or SIGTERM) arrived? Dagster captures them during a run and checks only
    between steps."""
    from dagster._utils.interrupts import check_captured_interrupt

    return check_captured_interrupt()


def _holder(instance: DagsterInstance, pool: str, run_id: str) -> SlotHolder:
    run = instance.get_run_by_id(run_id)
    if run is None:
        return SlotHolder(pool, run_id, "DELETED", None, None, False)
    pid, host = _run_process(instance, run)
    alive = _alive(instance, run, pid, host) if pid is not None else None
    return SlotHolder(pool, run_id, run.status.value, pid, host, alive if not run.is_finished else False)


def _run_process(instance: DagsterInstance, run: DagsterRun) -> tuple[int | None, str | None]:
    """(pid, host) of the process that executes `run`, where it can be known."""
    if PID_TAG in run.tags:
        return int(run.tags[PID_TAG]), run.tags.get(HOST_TAG)
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = event.engine_event_data.metadata if event and event.engine_event_data else {}
        pid = metadata["pid"].value if "pid" in metadata else None
        if isinstance(pid, str | int):  # Dagster writes it as text
            return int(pid), None
    return None, None


def _alive(instance: DagsterInstance, run: DagsterRun, pid: int, host: str | None) -> bool | None:
    """Is the run's process alive? None when it ran on another host, or may have."""
    if host is None and not _local_storage(instance):
        return None
    if host is not None and host != socket.gethostname():
        return None
    if not Path("/proc/self/stat").exists():  # not Linux: no start time to compare
        return _exists(pid)
    start = _process_start(pid)
    if start is None:
        return False
    recorded = run.tags.get(PROCESS_START_TAG)
    return not recorded or recorded == start  # a different start: another process has the pid


def _local_storage(instance: DagsterInstance) -> bool:
    """SQLite or in-memory run storage lives on this machine, so its runs ran here."""
    return type(instance.run_storage).__name__ in ("SqliteRunStorage", "InMemoryRunStorage")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone or
    cannot be read. A zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return fields[19]
