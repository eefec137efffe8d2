"""Export a table as files partitioned by day, for loading into another warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from de_pipeline.warehouse.connection import reader
from de_pipeline.warehouse.files import replace_durably
from de_pipeline.warehouse.schema import one_row
from de_pipeline.warehouse.settings import WarehouseSettings
from de_pipeline.warehouse.tables import UnknownTableError, table

FORMATS = ("parquet", "csv")


class ExportError(ValueError):
    """The export cannot be done as asked."""


@dataclass(frozen=True)
class Exported:
    rows: int
    days: int
    directory: Path


def export_table(
    settings: WarehouseSettings,
    table_name: str,
    out_dir: Path,
    file_format: str = "parquet",
    first_day: date | None = None,
    last_day: date | None = None,
) -> Exported:
    """Write `<out_dir>/<table>/day=YYYY-MM-DD/data.<format>`, one file per day, each replaced
    whole. One day per statement, so memory stays flat for any table size."""
    try:
        entry = table(table_name)
    except UnknownTableError as exc:
        raise ExportError(str(exc)) from None
    name, day_column = entry.name, entry.day_column
    if file_format not in FORMATS:
        raise ExportError(f"unknown format {file_format!r}; choose one of {', '.join(FORMATS)}")
    span = {"first_day": first_day or date.min, "last_day": last_day or date.max}
    where = f"{day_column} BETWEEN $first_day AND $last_day"
    target = out_dir / name
    rows = 0
    with reader(settings) as connection:
        days = [
            row[0]
            for row in connection.execute(
                f"SELECT DISTINCT {day_column} FROM {name} WHERE {where} ORDER BY 1", span
            ).fetchall()
        ]
        for day in days:
            folder = target / f"day={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"data.{file_format}"
            partial = folder / f".data.{file_format}.partial"
            options = "FORMAT parquet, COMPRESSION zstd" if file_format == "parquet" else "FORMAT csv, HEADER"
            connection.execute(
                f"COPY (SELECT * EXCLUDE ({day_column}) FROM {name} WHERE {day_column} = $day "
                f"ORDER BY ALL) TO $target ({options})",
                {"day": day, "target": str(partial)},
            )
            replace_durably(partial, path)
            counted = connection.execute(f"SELECT count(*) FROM {name} WHERE {day_column} = $day", {"day": day})
            rows += one_row(counted)[0]
    return Exported(rows, len(days), target)
