"""`dagster dev` for tests: started in its own process group, spoken to over GraphQL, stopped
with nothing left behind.

`dagster dev` starts the webserver, the daemon and code servers (which start the run
workers); they all stay in the process group of the `dagster dev` process, which is started
as the leader of a new session, so the whole tree can be signalled and checked at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

READY_TIMEOUT_SECONDS = 180
# `dagster dev` itself waits up to 60 s for each of the webserver and the daemon to stop
GRACEFUL_STOP_SECONDS = 90


class DagsterDevError(RuntimeError):
    """`dagster dev` did not start, died, or answered GraphQL with errors."""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    state: str
    command: str

    def __str__(self) -> str:
        return f"{self.pid} [{self.state}] {self.command[:160]}"


@dataclass
class StopReport:
    """How `dagster dev` went down: `left_after_interrupt` lists what was still running when
    the graceful wait ended (escalated to SIGTERM, then SIGKILL); `left_after_kill` what
    survived even that."""

    exit_code: int | None = None
    seconds: float = 0.0
    left_after_interrupt: list[ProcessInfo] = field(default_factory=list)
    left_after_kill: list[ProcessInfo] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.left_after_interrupt and not self.left_after_kill


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_in_group(pgid: int) -> list[ProcessInfo]:
    """Live processes (zombies excluded) whose process group or session is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # fields after "(comm)": state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state in ("Z", "X") or pgid not in (pgrp, session):
            continue
        command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip() or stat.split()[1]
        found.append(ProcessInfo(int(entry.name), state, command))
    return found


def _default_signals() -> None:
    # A process started with SIGINT ignored (e.g. from a non-interactive shell's `cmd &`)
    # passes that on; Dagster then also maps SIGTERM to "ignore", so nothing but SIGKILL
    # would stop it. Restore the defaults in the child before `dagster dev` starts.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


class DagsterDev:
    """One `dagster dev` on 127.0.0.1:`port`, run in `cwd` with `env`, logging to `log_path`."""

    def __init__(self, *, cwd: Path, env: Mapping[str, str], log_path: Path, port: int | None = None):
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_report: StopReport | None = None
        self._session = requests.Session()

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        command = [sys.executable, "-m", "dagster", "dev", "--host", "127.0.0.1", "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # leader of a new session and process group
                preexec_fn=_default_signals,
            )

    @property
    def pgid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Wait for the webserver to answer, every code location to be loaded, and every
        required daemon to be healthy; return the workspace. Raises DagsterDevError if a code
        location failed to load, `dagster dev` died, or the time ran out."""
        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise DagsterDevError(
                    f"`dagster dev` exited with {self.process.returncode if self.process else None} "
                    f"before it was ready; its log ends:\n{self.log_tail()}"
                )
            try:
                response = self._session.get(f"{self.url}/server_info", timeout=5)
                if response.status_code != 200:
                    last = f"/server_info answered {response.status_code}"
                    raise _NotYet
                workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
                if workspace["__typename"] != "Workspace":
                    raise DagsterDevError(f"the workspace did not load: {workspace}")
                entries = workspace["locationEntries"]
                errors = [
                    e
                    for e in entries
                    if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "PythonError"
                ]
                if errors:
                    raise DagsterDevError(
                        "code location failed to load: "
                        + "; ".join(f"{e['name']}: {e['locationOrLoadError']['message']}" for e in errors)
                    )
                loading = [e["name"] for e in entries if e["loadStatus"] != "LOADED"]
                if not entries or loading:
                    last = f"code locations still loading: {loading or 'none listed'}"
                    raise _NotYet
                daemons = self.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
                unhealthy = [d["daemonType"] for d in daemons if d["required"] and not d["healthy"]]
                if unhealthy:
                    last = f"daemons not healthy yet: {unhealthy}"
                    raise _NotYet
                return workspace
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"no answer: {type(exc).__name__}"
            except _NotYet:
                pass
            time.sleep(1)
        raise DagsterDevError(
            f"`dagster dev` not ready after {timeout:.0f}s ({last}); its log ends:\n{self.log_tail()}"
        )

    def stop(self, graceful_seconds: float = GRACEFUL_STOP_SECONDS) -> StopReport:
        """Ctrl-C the whole process group (SIGINT, as a terminal does), wait for every process
        of the group to exit; whatever is left then gets SIGTERM, then SIGKILL."""
        if self.stop_report is not None:
            return self.stop_report
        report = StopReport()
        started = time.monotonic()
        self._session.close()
        if self.process is None:
            self.stop_report = report
            return report
        pgid = self.pgid
        _signal_group(pgid, signal.SIGINT)
        if not self._wait_group_gone(pgid, graceful_seconds):
            report.left_after_interrupt = processes_in_group(pgid)
            _signal_group(pgid, signal.SIGTERM)
            if not self._wait_group_gone(pgid, 10):
                _signal_group(pgid, signal.SIGKILL)
                self._wait_group_gone(pgid, 10)
        try:
            report.exit_code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        report.left_after_kill = processes_in_group(pgid)
        report.seconds = time.monotonic() - started
        self.stop_report = report
        return report

    def _wait_group_gone(self, pgid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if self.process is not None:
                self.process.poll()  # reap the leader, so it is not counted as a zombie
            if not processes_in_group(pgid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)

    # ---- GraphQL ---------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """POST a query to /graphql; its `data`, or DagsterDevError naming the errors."""
        response = self._session.post(
            f"{self.url}/graphql", json={"query": query, "variables": dict(variables or {})}, timeout=timeout
        )
        try:
            body = response.json()
        except ValueError:
            raise DagsterDevError(f"/graphql answered {response.status_code}: {response.text[:500]}") from None
        if body.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {body['errors']}")
        if response.status_code != 200 or body.get("data") is None:
            raise DagsterDevError(f"/graphql answered {response.status_code}: {body}")
        return body["data"]


class _NotYet(Exception):
    pass


def _signal_group(pgid: int, number: int) -> None:
    try:
        os.killpg(pgid, number)
    except ProcessLookupError:
        pass


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            name
            repositories {
              name
              schedules { name cronSchedule scheduleState { status } }
            }
          }
        }
      }
    }
  }
}
"""

DAEMONS_QUERY = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
}
"""
