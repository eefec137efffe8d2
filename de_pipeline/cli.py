"""The `de-pipeline` command: a thin front over defs/, warehouse/ and the simulator."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from datetime import date, timedelta

ERROR_EXIT = 1
USAGE_EXIT = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except KeyboardInterrupt:
        print("de-pipeline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every error the user can cause ends as one line
        if os.environ.get("DE_DEBUG"):
            raise
        print(f"de-pipeline {args.name}: {_one_line(exc)}", file=sys.stderr)
        return ERROR_EXIT


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="de-pipeline",
        description="Digital Engagement chat history into a DuckDB warehouse, with Dagster.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="materialise the last N days from the embedded simulator")
    demo.add_argument("--days", type=_positive, default=14, help="how many days up to yesterday (default 14)")
    demo.set_defaults(command=demo_command, name="demo")

    backfill = commands.add_parser("backfill", help="materialise a range of days, in runs of at most 7")
    backfill.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--end", type=_day, required=True, help="last day, YYYY-MM-DD (included)")
    backfill.add_argument(
        "--from-archive", action="store_true", help="rebuild the tables from the raw archive, no fetch"
    )
    backfill.set_defaults(command=backfill_command, name="backfill")

    sql = commands.add_parser("sql", help="run a read-only query on the warehouse")
    sql.add_argument("query", help='e.g. "SELECT * FROM daily_overview LIMIT 10"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.set_defaults(command=sql_command, name="sql")

    simulate = commands.add_parser("simulate", help="serve the simulated API on 127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.set_defaults(command=simulate_command, name="simulate")
    return parser


def demo_command(args: argparse.Namespace) -> int:
    for name in ("DE_API_BASE_URL", "DE_API_KEY"):
        if os.environ.pop(name, None) is not None:
            print(f"demo: ignoring {name}; the demo always reads the embedded simulator")
    yesterday = date.today() - timedelta(days=1)
    return _materialise(yesterday - timedelta(days=args.days - 1), yesterday, "all_assets")


def backfill_command(args: argparse.Namespace) -> int:
    return _materialise(args.start, args.end, "rebuild_from_archive" if args.from_archive else "all_assets")


def _materialise(first: date, last: date, job_name: str) -> int:
    from de_pipeline.defs.runs import run_range
    from de_pipeline.warehouse.connection import reader
    from de_pipeline.warehouse.settings import WarehouseSettings
    from de_pipeline.warehouse.summary import headlines, table_sizes

    settings = WarehouseSettings.from_env()
    print(f"materialising {first} .. {last} into {settings.duckdb_path}", flush=True)
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
    return 0


def sql_command(args: argparse.Namespace) -> int:
    from de_pipeline.warehouse.connection import reader
    from de_pipeline.warehouse.query import query_frame
    from de_pipeline.warehouse.settings import WarehouseSettings

    with reader(WarehouseSettings.from_env()) as connection:
        frame = query_frame(connection, args.query)
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", force_ascii=False) + "\n")
    else:
        print(frame.to_string(index=False) if len(frame.columns) else "(no columns)")
        print(f"({len(frame)} rows)", file=sys.stderr)
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    from de_pipeline.api.simulator import Simulator, simulator_config_from_env

    config = simulator_config_from_env()
    simulator = Simulator(config)
    base_url = simulator.start(port=args.port)
    print(f"simulator serving on {base_url} ({config.messages_per_day} messages/day, seed {config.seed},"
          f" {'hostile' if config.hostile else 'well-behaved'}); Ctrl-C stops it")
    print(f"  export DE_API_BASE_URL={base_url} DE_API_KEY={config.api_key} DE_PROVIDER_ID={config.provider_id}")
    try:
        threading.Event().wait()
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
