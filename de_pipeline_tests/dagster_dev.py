"""Dagster's processes for tests: each started in its own process group, spoken to over
GraphQL, stopped with nothing left behind.

`ServiceProcess` runs one command (`dagster dev`, or one of the separate services of a
deployment: code server, daemon, webserver) as the leader of a new session, so that its whole
tree (`dagster dev` starts the webserver, the daemon and code servers, which start the run
workers) can be signalled and checked at once. `DagsterGraphQL` talks to a webserver.
`DagsterDev` is the two together for `dagster dev`.
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

import pytest
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


FAKETIME_STALLS_THE_DAEMON = (
    # seen on 2026-12-02 with Debian's libfaketime 0.9.10, both builds: the daemon logged
    # nothing after its first sensor ticks and the backfill never ran. The date is not the
    # cause: the dates-marked tests run under libfaketime (test_dates.py).
    "Dagster's daemon stalls under libfaketime (LD_PRELOAD); run the UI tests on a real clock"
)


def skip_under_libfaketime() -> None:
    if "libfaketime" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip(FAKETIME_STALLS_THE_DAEMON)


def dagster_home_env(root: Path, config: Path) -> dict[str, str]:
    """A DAGSTER_HOME under `root` holding `config` (a dagster.yaml; telemetry off), and the
    environment of a Dagster process using it: this one's, without DE_* and DAGSTER_*."""
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(config.read_text() + "\ntelemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DE_", "DAGSTER_"))}
    return env | {"DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"}


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


class ServiceProcess:
    """One command run in `cwd` with `env`, logging to `log_path`, as the leader of a new
    session and process group."""

    def __init__(self, command: list[str], *, cwd: Path, env: Mapping[str, str], log_path: Path):
        self.command = command
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_report: StopReport | None = None

    def start(self) -> None:
        """Start the command (again, after a stop or kill: the log goes on)."""
        self.stop_report = None
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # leader of a new session and process group
                preexec_fn=_default_signals,
            )

    @property
    def name(self) -> str:
        return " ".join(Path(part).name if n == 0 else part for n, part in enumerate(self.command[:4]))

    @property
    def pgid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def raise_if_exited(self) -> None:
        """DagsterDevError with the log's tail if the process has exited."""
        if not self.running():
            raise DagsterDevError(
                f"`{self.name}` exited with {self.process.returncode if self.process else None}; "
                f"its log ends:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, graceful_seconds: float = GRACEFUL_STOP_SECONDS) -> StopReport:
        """Ctrl-C the whole process group (SIGINT, as a terminal does), wait for every process
        of the group to exit; whatever is left then gets SIGTERM, then SIGKILL."""
        if self.stop_report is not None:
            return self.stop_report
        report = StopReport()
        started = time.monotonic()
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

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash or an OOM kill would, and wait
        until it is gone."""
        if self.process is None:
            return
        _signal_group(self.pgid, signal.SIGKILL)
        if not self._wait_group_gone(self.pgid, 10):
            raise DagsterDevError(f"`{self.name}` survived SIGKILL: {processes_in_group(self.pgid)}")
        self.stop_report = StopReport(exit_code=self.process.wait(timeout=5))

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


class DagsterGraphQL:
    """The GraphQL API of a Dagster webserver at `url`."""

    def __init__(self, url: str):
        self.url = url
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def wait_until_ready(
        self, processes: list[ServiceProcess], timeout: float = READY_TIMEOUT_SECONDS
    ) -> dict[str, Any]:
        """Wait for the webserver to answer, every code location to be loaded, and every
        required daemon to be healthy; return the workspace. Raises DagsterDevError if a code
        location failed to load, one of `processes` died, or the time ran out."""
        deadline = time.monotonic() + timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            for process in processes:
                process.raise_if_exited()
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
        tails = "\n".join(f"--- {p.name}:\n{p.log_tail(30)}" for p in processes)
        raise DagsterDevError(f"{self.url} not ready after {timeout:.0f}s ({last}); the logs end:\n{tails}")

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """POST a query to /graphql; its `data`, or DagsterDevError naming the errors."""
        request = {"query": query, "variables": dict(variables or {})}
        try:
            response = self._session.post(f"{self.url}/graphql", json=request, timeout=timeout)
        except requests.ConnectionError as exc:
            if "RemoteDisconnected" not in str(exc):
                raise
            # the webserver closes a kept-alive connection after 5 idle seconds; a request
            # sent on it as it closes is refused unread, so sending it again is safe
            response = self._session.post(f"{self.url}/graphql", json=request, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            raise DagsterDevError(f"/graphql answered {response.status_code}: {response.text[:500]}") from None
        if body.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {body['errors']}")
        if response.status_code != 200 or body.get("data") is None:
            raise DagsterDevError(f"/graphql answered {response.status_code}: {body}")
        return body["data"]


class DagsterDev(ServiceProcess):
    """One `dagster dev` on 127.0.0.1:`port`, run in `cwd` with `env`, logging to `log_path`."""

    def __init__(
        self, *, cwd: Path, env: Mapping[str, str], log_path: Path, port: int | None = None, via_cli: bool = False
    ):
        """`via_cli`: started as the README starts it, `de-pipeline ui` (DAGSTER_HOME from the project)."""
        self.port = port or free_port()
        command = (
            [sys.executable, "-m", "de_pipeline.cli", "ui", "--port", str(self.port)]
            if via_cli
            else [sys.executable, "-m", "dagster", "dev", "--host", "127.0.0.1", "--port", str(self.port)]
        )
        super().__init__(command, cwd=cwd, env=env, log_path=log_path)
        self.api = DagsterGraphQL(f"http://127.0.0.1:{self.port}")
        self.url = self.api.url

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        return self.api.wait_until_ready([self], timeout)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        return self.api.graphql(query, variables, timeout)

    def stop(self, graceful_seconds: float = GRACEFUL_STOP_SECONDS) -> StopReport:
        self.api.close()
        return super().stop(graceful_seconds)


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


class DagsterServices:
    """A deployment's three services, each a process group of its own, as in Dagster's Docker
    and Kubernetes deployments: a gRPC code server for `module`, and dagster-daemon and
    dagster-webserver reading `workspace`, which finds the code server through
    DAGSTER_CODE_SERVER_HOST and DAGSTER_CODE_SERVER_PORT. All get `env`; the code server (which
    runs the runs) also gets `code_server_env`, e.g. the API key the others need not see."""

    def __init__(
        self,
        *,
        module: str,
        workspace: Path,
        cwd: Path,
        env: Mapping[str, str],
        code_server_env: Mapping[str, str],
        log_dir: Path,
    ):
        code_port, web_port = free_port(), free_port()
        env = dict(env) | {"DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(code_port)}
        bin_dir = Path(sys.executable).parent
        self.code_server = ServiceProcess(
            [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port), "-m", module],
            cwd=cwd,
            env=env | dict(code_server_env),
            log_path=log_dir / "code_server.log",
        )
        self.daemon = ServiceProcess(
            [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=cwd,
            env=env,
            log_path=log_dir / "daemon.log",
        )
        self.webserver = ServiceProcess(
            [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", str(workspace)],
            cwd=cwd,
            env=env,
            log_path=log_dir / "webserver.log",
        )
        self.api = DagsterGraphQL(f"http://127.0.0.1:{web_port}")

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.code_server, self.daemon, self.webserver]

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start the code server; once it answers its health check, the daemon and the
        webserver; wait until the webserver answers, the code location is loaded and the
        daemons are healthy."""
        deadline = time.monotonic() + timeout
        self.code_server.start()
        self.wait_for_code_server(deadline - time.monotonic())
        self.daemon.start()
        self.webserver.start()
        self.api.wait_until_ready(self.processes, deadline - time.monotonic())

    def wait_for_code_server(self, timeout: float) -> None:
        """Poll `dagster api grpc-health-check`, the health check of docker-compose.yaml and of
        the Helm chart's probes, until the code server answers SERVING."""
        env = self.code_server.env
        command = [str(Path(sys.executable).parent / "dagster"), "api", "grpc-health-check"]
        command += ["--host", env["DAGSTER_CODE_SERVER_HOST"], "-p", env["DAGSTER_CODE_SERVER_PORT"]]
        deadline = time.monotonic() + timeout
        while True:
            self.code_server.raise_if_exited()
            if subprocess.run(command, env=env, capture_output=True, timeout=60).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise DagsterDevError(f"the code server is not serving after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(1)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        return self.api.graphql(query, variables, timeout)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {p.name}:\n{p.log_tail(lines)}" for p in self.processes)

    def stop(self) -> list[StopReport]:
        """Stop the webserver, the daemon, then the code server (and its runs)."""
        self.api.close()
        return [process.stop() for process in reversed(self.processes)]
