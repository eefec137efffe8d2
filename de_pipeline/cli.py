"""The `de-pipeline` command: a thin front over defs/, warehouse/ and the simulator."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from de_pipeline.simulator import LoopbackServer

ERROR_EXIT = 1
BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, as a shell reports a command killed by it


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (`argv` None: sys.argv, and the process ends with the command)."""
    code = _command(argv)
    if argv is None:
        _leave(code)
    return code


def _command(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _read_env_file()
        return int(args.command(args))
    except KeyboardInterrupt:
        print("de-pipeline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`de-pipeline sql ... | head`): not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error on exit
        return BROKEN_PIPE_EXIT
    except Exception as exc:  # every error the user can cause ends as one line
        from de_pipeline.env import debugging

        if debugging():
            raise
        print(f"de-pipeline {args.name}: {_one_line(exc)}", file=sys.stderr)
        return ERROR_EXIT


def _leave(code: int) -> None:
    """End the process once the command is done: its output flushed and the atexit handlers
    run (logging's among them), without the interpreter's teardown of every module and
    object, which took 0.8 s after a run had committed, published and closed everything.
    Not while another thread still runs: the usual exit waits for it."""
    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()  # os._exit skips them; atexit has no public way to run them first
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left (`| head`), a closed stream
            stream.flush()
    os._exit(code)


def _read_env_file() -> None:
    from de_pipeline.env import load_env_file

    added = load_env_file()
    if added:
        print(f"de-pipeline: read {', '.join(added)} from {os.environ.get('DE_ENV_FILE') or '.env'}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = _visible(" ".join(str(exc).split())) or type(exc).__name__  # it may quote chat text
    return text if len(text) <= 600 else text[:600] + " ..."


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-01-31") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _html_file(text: str) -> Path:
    from de_pipeline.dashboard.settings import path_problem

    problem = path_problem(Path(text))
    if problem:
        raise argparse.ArgumentTypeError(f"{text} {problem}")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="de-pipeline",
        description="Digital Engagement chat history into a DuckDB warehouse, with Dagster.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="materialise the last N days from the embedded simulator")
    demo.add_argument("--days", type=_positive, default=14, help="how many days up to yesterday (default 14)")
    demo.add_argument(
        "--providers",
        type=_positive,
        default=1,
        help="simulated accounts, each with its own data (default 1; 2 or more: as with DE_PROVIDERS_FILE)",
    )
    demo.set_defaults(command=demo_command, name="demo")

    backfill = commands.add_parser("backfill", help="materialise a range of days, in runs of at most 7")
    backfill.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=_day, required=True, help="last day, YYYY-MM-DD (included)")
    backfill.add_argument(
        "--from-archive", action="store_true", help="rebuild the tables from the raw archive, no fetch"
    )
    backfill.set_defaults(command=backfill_command, name="backfill")

    sql = commands.add_parser("sql", help="run a read-only query on the readers' copy of the warehouse")
    sql.add_argument("query", help='e.g. "SELECT * FROM daily_overview LIMIT 10"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument(
        "--live",
        action="store_true",
        help="read the warehouse itself, not the readers' copy (waits for a running write, and blocks writers)",
    )
    sql.set_defaults(command=sql_command, name="sql")

    publish = commands.add_parser("publish", help="publish the readers' copy of the warehouse now")
    publish.set_defaults(command=publish_command, name="publish")

    export = commands.add_parser("export", help="write a table as files partitioned by day")
    export.add_argument("--table", required=True, help="e.g. messages, customer_journeys")
    export.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    export.add_argument("--out", required=True, help="folder; files go to OUT/TABLE/day=YYYY-MM-DD/")
    export.add_argument("--start", type=_day, help="first day (default: all)")
    export.add_argument("--end", type=_day, help="last day (default: all)")
    export.set_defaults(command=export_command, name="export")

    dashboard = commands.add_parser("dashboard", help="write the dashboard (HTML) from the warehouse, without fetching")
    dashboard.add_argument("--out", type=_html_file, help="the file (default: DE_DASHBOARD_PATH)")
    dashboard.add_argument("--days", type=_positive, help="days up to the last loaded day (default: DE_DASHBOARD_DAYS)")
    dashboard.add_argument("--open", action="store_true", help="open it in the default browser")
    dashboard.add_argument(
        "--account", help="one account's (DE_PROVIDERS_FILE); default file: dashboard-<account>.html beside"
    )
    dashboard.set_defaults(command=dashboard_command, name="dashboard")

    session = commands.add_parser("session", help="fetch one customer journey live and compare it with the warehouse")
    session.add_argument("customersessionid")
    session.add_argument("--start", type=_day, help="first day to look in (default: 6 days ago)")
    session.add_argument("--end", type=_day, help="last day to look in (default: today)")
    session.add_argument("--account", help="the account (DE_PROVIDERS_FILE name); needed when there are several")
    session.set_defaults(command=session_command, name="session")

    check = commands.add_parser(
        "check",
        help="probe the configured API (or the embedded simulator): the key's form, the epoch unit, paging, "
        "field types, placeholders; print the settings to use",
    )
    check.add_argument(
        "--write-env",
        type=Path,
        metavar="FILE",
        help="write the settings that differ from the defaults as DE_NAME=value lines (never the key), e.g. .env",
    )
    check.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="save the questions and answers, key removed and message texts blanked, for a bug report",
    )
    check.add_argument("--account", help="the account (DE_PROVIDERS_FILE name); needed when there are several")
    check.set_defaults(command=check_command, name="check")

    simulate = commands.add_parser("simulate", help="serve the simulated API on 127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--latency-ms", type=int, help="answer each request this late (default: DE_SIM_LATENCY_MS)")
    simulate.add_argument(
        "--rate-limit", type=int, help="429 past this many requests a second (default: DE_SIM_RATE_LIMIT, 0 = none)"
    )
    simulate.add_argument(
        "--replay", type=Path, metavar="DIR", help="serve the answers `de-pipeline check --record DIR` saved"
    )
    simulate.set_defaults(command=simulate_command, name="simulate")

    ui = commands.add_parser(
        "ui", help="start the Dagster UI (dagster dev) on the Dagster home the CLI's runs use (data/dagster_home)"
    )
    ui.add_argument("--port", type=_positive, default=3000, help="the UI's port on 127.0.0.1 (default 3000)")
    ui.set_defaults(command=ui_command, name="ui")
    return parser


def ui_command(args: argparse.Namespace) -> int:
    """`dagster dev` with DAGSTER_HOME set to the home of the CLI's runs: the UI shows what
    `demo` and `backfill` did, and keeps its history across restarts."""
    from de_pipeline.orchestration.instance import dagster_home, open_instance, prepare_home

    home = prepare_home(dagster_home())
    os.environ["DAGSTER_HOME"] = str(home)  # whatever DE_RUN_HISTORY says: the UI keeps its history
    with open_instance():  # made (or repaired) under its lock, the pools checked, before Dagster starts
        pass
    command = [sys.executable, "-m", "dagster", "dev", "-m", "de_pipeline.defs.definitions", "-p", str(args.port)]
    print(f"de-pipeline ui: DAGSTER_HOME={home}; running {' '.join(command[1:])}", file=sys.stderr, flush=True)
    # `dagster dev` warns that `dg dev` supersedes it: a note for Dagster's users, not ours
    quiet = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:Function `dev_command` is superseded"]))
    os.execve(sys.executable, command, dict(os.environ, PYTHONWARNINGS=quiet))
    return 0  # not reached: dagster dev replaces this process


def demo_command(args: argparse.Namespace) -> int:
    for name in ("DE_API_BASE_URL", "DE_API_KEY", "DE_PROVIDERS_FILE"):
        if os.environ.pop(name, None) is not None:
            print(f"demo: ignoring {name}; the demo always reads the embedded simulator")
    if args.providers > 1:
        from de_pipeline.accounts import write_demo_providers_file
        from de_pipeline.warehouse.settings import WarehouseSettings

        folder = WarehouseSettings.from_env().duckdb_path.parent
        os.environ["DE_PROVIDERS_FILE"] = str(write_demo_providers_file(folder, args.providers))
        print(f"demo: {args.providers} simulated accounts, from {os.environ['DE_PROVIDERS_FILE']}")
    from de_pipeline.defs.runner import last_complete_day

    last = last_complete_day()
    return _materialise(last - timedelta(days=args.days - 1), last, "all_assets")


def backfill_command(args: argparse.Namespace) -> int:
    return _materialise(args.start, args.end, "rebuild_from_archive" if args.from_archive else "all_assets")


def _materialise(first: date, last: date, job_name: str) -> int:
    from de_pipeline.dashboard.settings import DashboardSettings
    from de_pipeline.defs.runner import run_range
    from de_pipeline.warehouse.connection import reader
    from de_pipeline.warehouse.settings import WarehouseSettings
    from de_pipeline.warehouse.summary import headlines, table_sizes

    settings = WarehouseSettings.from_env()
    dashboard = DashboardSettings.from_env(settings)  # a bad DE_DASHBOARD_* stops it before any fetch
    print(f"materialising {first} .. {last} into {settings.where}", flush=True)
    run_range(
        first,
        last,
        job_name=job_name,
        on_chunk=lambda c: print(f"run {c.number} of {c.total}: {c.first} .. {c.last}", flush=True),
    )
    with reader(settings) as connection:
        print("\nTables")
        for table, rows, first_day, last_day in table_sizes(connection):
            print(f"  {table:<25} {rows:>10,} rows   {first_day} .. {last_day}")
        for title, text in headlines(connection).items():
            print(f"\n{title}\n{text}")
    print('\nQuery it: de-pipeline sql "SELECT * FROM sentiment_trends LIMIT 10"')
    print(f"Dashboard (the job's last step wrote it; open it in a browser): {dashboard.path.resolve()}")
    return 0


def dashboard_command(args: argparse.Namespace) -> int:
    import webbrowser
    from dataclasses import replace

    from de_pipeline.accounts import account_named
    from de_pipeline.dashboard.build import write_dashboard
    from de_pipeline.dashboard.settings import DashboardSettings
    from de_pipeline.warehouse.settings import WarehouseSettings

    warehouse = WarehouseSettings.from_env()
    settings = DashboardSettings.from_env(warehouse)
    account = account_named(args.account).name if args.account else None  # an unknown name: one line
    if account is not None:
        settings = settings.for_account(account)
    settings = replace(settings, path=args.out or settings.path, days=args.days or settings.days)
    written = write_dashboard(warehouse, settings, account)
    days = f"{written.first_day} .. {written.last_day}" if written.last_day else "no data yet"
    size = f"{len(written.drawn)} charts, {written.size_bytes / 1e6:.1f} MB"
    print(f"dashboard of {days} ({size}): {written.path.resolve()}")
    for chart, why in written.missing.items():
        print(f"  {chart}: {why}")
    if args.open:
        webbrowser.open(written.path.resolve().as_uri())
    return 0


def sql_command(args: argparse.Namespace) -> int:
    from de_pipeline.warehouse.connection import reader
    from de_pipeline.warehouse.publish import settings_for_readers
    from de_pipeline.warehouse.query import query_frame
    from de_pipeline.warehouse.settings import WarehouseSettings

    settings, note = settings_for_readers(WarehouseSettings.from_env(), live=args.live)
    if note:
        print(f"de-pipeline sql: {note}", file=sys.stderr)
    # sealed: the warehouse is all it can read, and it writes no file (`export` does that)
    with reader(settings, sealed=True) as connection:
        frame = query_frame(connection, args.query)
    # Chat text is the vendor's: a control character in it must not reach the terminal (see
    # `_visible`). JSON escapes it, losing nothing; CSV is exact data unless on a terminal.
    if args.format == "csv":
        (_shown(frame) if sys.stdout.isatty() else frame).to_csv(sys.stdout, index=False)
    elif args.format == "json":
        text = frame.to_json(orient="records", date_format="iso", force_ascii=False)
        sys.stdout.write(_INVISIBLE.sub(_json_escape, text) + "\n")
    else:
        print(_shown(frame).to_string(index=False) if len(frame.columns) else "(no columns)")
        print(f"({len(frame)} rows)", file=sys.stderr)
    return 0


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each control character of its text and column names shown escaped."""
    import pandas as pd

    shown = frame.copy()
    shown.columns = [_visible(name) for name in frame.columns]
    for position, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):  # text, or objects
            column = frame.iloc[:, position]
            escaped = column.map(lambda value: _visible(value) if isinstance(value, str) else value)
            shown.isetitem(position, escaped)  # type: ignore[arg-type]  # a Series: pandas-stubs leaves it out
    return shown


def publish_command(args: argparse.Namespace) -> int:
    from de_pipeline.warehouse.publish import publish_reader_copy
    from de_pipeline.warehouse.settings import WarehouseSettings

    settings = WarehouseSettings.from_env()
    if settings.reader_copy_path is None:
        print("nothing to publish: DE_READER_COPY_PATH=off")
        return 0
    published = publish_reader_copy(settings, trigger="de-pipeline publish")
    print(published.line() if published else f"nothing to publish: no warehouse at {settings.where} yet")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from de_pipeline.warehouse.export import export_table
    from de_pipeline.warehouse.settings import WarehouseSettings

    done = export_table(WarehouseSettings.from_env(), args.table, Path(args.out), args.format, args.start, args.end)
    print(f"exported {done.rows:,} rows of {args.table} in {done.days} daily files to {done.directory}")
    return 0


def session_command(args: argparse.Namespace) -> int:
    from de_pipeline.accounts import account_named
    from de_pipeline.ingest import fetched_journey, journey_days
    from de_pipeline.warehouse.journeys import compare_journey
    from de_pipeline.warehouse.settings import WarehouseSettings

    account = account_named(args.account)
    settings = account.warehouse_settings(WarehouseSettings.from_env())
    end = args.end or date.today()
    days = journey_days(args.start or end - timedelta(days=6), end, settings.timezone)
    csid = args.customersessionid
    with fetched_journey(account.api_source(), settings, csid, days) as files:
        found = compare_journey(settings, csid, files, days)
    print(transcript_text(csid, days[0].day, days[-1].day, found.transcript, settings.timezone))
    if found.warehouse_messages is None:
        print(f"\nwarehouse: no file at {settings.duckdb_path}, nothing to compare")
        return 0
    print(
        f"\nwarehouse: {found.warehouse_messages} messages of this journey in the window; "
        f"{len(found.missing)} missing from the warehouse, {len(found.extra)} only in the warehouse"
    )
    for label, frame in (("missing", found.missing), ("only in warehouse", found.extra)):
        for row in frame.head(20).itertuples():
            print(
                f"  {label}: {row.ts} {_visible(row.sessionid)} {_visible(row.sendertype)}: "
                f"{_visible(_short(row.text))}"
            )
    return 0


def transcript_text(csid: str, first: date, last: date, transcript: pd.DataFrame, timezone: str) -> str:
    """The journey grouped by segment, each line with its time, sender type and name. Chat
    text is the vendor's: control characters in any field are shown escaped (see `_visible`)."""
    csid = _visible(csid)
    if transcript.empty:
        return f"journey {csid}: no messages between {first} and {last} (unknown id, or outside the window)"
    lines = [f"journey {csid}: {len(transcript)} messages, {transcript.sessionid.nunique()} segments ({timezone})"]
    current = None
    rows: Iterable[Any] = transcript.itertuples()  # pandas-stubs types each field as any scalar
    for row in rows:
        if row.sessionid != current:
            current = row.sessionid
            lines.append(
                f"\n-- segment {_visible(row.sessionid)} "
                f"({_visible(row.chattype or '?')}, {_visible(row.sessionchannel or '?')})"
            )
        moment = row.ts.tz_convert(timezone).strftime("%Y-%m-%d %H:%M:%S")
        sender = f"{row.sendertype or '?'}" + (f" {row.sendername}" if isinstance(row.sendername, str) else "")
        lines.append(f"  {moment}  {_visible(sender)}: {_visible(row.text if isinstance(row.text, str) else '')}")
    return "\n".join(lines)


# Characters a terminal acts on instead of showing: C0/C1 controls and DEL (ESC starts a
# sequence that can clear the screen or retitle the window), line and paragraph separators,
# and the bidirectional overrides that reorder what follows them.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(value: object) -> str:
    """`value` as text that is safe to print: each control character shown as an escape
    (ESC as `\\x1b`, a newline as `\\n`), so one message stays one line."""
    return _INVISIBLE.sub(_escape, value if isinstance(value, str) else str(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _json_escape(match: re.Match[str]) -> str:
    """The character as a JSON escape: the same text to a JSON reader, nothing to a terminal."""
    return f"\\u{ord(match.group()):04x}"


def _short(text: object, width: int = 80) -> str:
    text = " ".join(str(text).split()) if isinstance(text, str) else ""
    return text if len(text) <= width else text[: width - 1] + "…"


class CheckFailedError(Exception):
    """`check` found no working configuration; the message says why, in one line."""


def check_command(args: argparse.Namespace) -> int:
    from de_pipeline.accounts import account_named
    from de_pipeline.connection_check import check_connection, render, usage_lines, write_env_file
    from de_pipeline.warehouse.settings import WarehouseSettings

    account = account_named(args.account)
    warehouse = account.warehouse_settings(WarehouseSettings.from_env())
    report = check_connection(account.api_source(), warehouse, record=args.record)
    print(render(report), flush=True)
    if args.record is not None:
        print(
            f"\nRecorded {len(report.result.exchanges)} answers in {args.record} (the key removed, message texts "
            f"blanked): attach it to a bug report; `de-pipeline simulate --replay {args.record}` serves it."
        )
    if not report.ok:
        if args.write_env is not None:
            print(f"\n{args.write_env} not written: no working configuration was found")
        raise CheckFailedError(report.result.failure)
    written = write_env_file(report, args.write_env) if args.write_env is not None else 0
    print("\n" + "\n".join(usage_lines(args.write_env, written)))
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    from de_pipeline.simulator import Simulator, simulator_config_from_env
    from de_pipeline.warehouse.settings import timezone_from_env

    if args.replay is not None:
        return _replay(args)
    flags = {"DE_SIM_LATENCY_MS": args.latency_ms, "DE_SIM_RATE_LIMIT": args.rate_limit}
    environ = dict(os.environ) | {name: str(value) for name, value in flags.items() if value is not None}
    config = simulator_config_from_env(environ, timezone=timezone_from_env())  # checks the flags too
    simulator = Simulator(config)
    base_url = simulator.start(port=args.port)
    print(
        f"simulator serving on {base_url} ({config.messages_per_day} messages/day, seed {config.seed},"
        f" {'hostile' if config.hostile else 'well-behaved'}, latency {config.latency_ms} ms,"
        f" rate limit {config.rate_limit or 'none'}); Ctrl-C stops it"
    )
    print(f"  export DE_API_BASE_URL={base_url} DE_API_KEY={config.api_key} DE_PROVIDER_ID={config.provider_id}")
    _serve_until_interrupted(simulator)
    return 0


def _replay(args: argparse.Namespace) -> int:
    from de_pipeline.api.capture import read_capture
    from de_pipeline.simulator.replay import Replay

    capture = read_capture(args.replay)
    replay = Replay(capture)
    base_url = replay.start(port=args.port)
    print(f"replaying {len(capture.answers)} answers of {capture.base_url} on {base_url}; Ctrl-C stops it", flush=True)
    forms = " ".join(f"{name}={_shell_word(value)}" for name, value in capture.configured.items())
    print(f"  export DE_API_BASE_URL={base_url} DE_API_KEY=any-key {forms}", flush=True)
    _serve_until_interrupted(replay)
    return 0


def _shell_word(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:@%+=-]+", value) else "'" + value.replace("'", "'\\''") + "'"


def _serve_until_interrupted(server: LoopbackServer) -> None:
    try:
        threading.Event().wait()
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
