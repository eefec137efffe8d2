"""A lake's upkeep (docs/lake.md, Upkeep): what DuckLake leaves to its owner.

Every step's commit writes small Parquet files, and a day replaced again leaves its old
rows in files that older snapshots still need (DuckLake deletes nothing, for time travel).
So reads slow down and the data folder grows with every run. The upkeep, in this order:

1. expires the snapshots older than DE_LAKE_SNAPSHOT_DAYS (time travel ends there);
2. merges adjacent small files, and rewrites the files that are mostly deleted rows;
3. deletes the files that expired snapshots alone needed, once they were scheduled for
   deletion DE_LAKE_SNAPSHOT_DAYS ago (a reader may still be scanning a fresh one), and
   files no snapshot ever held (a killed writer's) older than that, or than a day, so that
   a running writer's files, not committed yet, are never taken.

Each call is its own transaction; one that loses a race with a writer's commit is run again
(write_conflicts_retried). The tables' rows are the same before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from de_pipeline.warehouse.connection import write_conflicts_retried, writer
from de_pipeline.warehouse.settings import LAKE_ALIAS, WarehouseSettings

ORPHAN_MIN_AGE = timedelta(days=1)  # a file no snapshot holds may be a running writer's


@dataclass(frozen=True)
class LakeUpkeep:
    """What one upkeep did: rows of DuckLake's own results."""

    snapshots_expired: int
    files_merged: int  # new files written by merging and rewriting
    files_deleted: int  # old and orphaned files removed from the data folder


def keep_the_lake(settings: WarehouseSettings, now: datetime | None = None) -> LakeUpkeep:
    """Run the upkeep of the lake of `settings` (never of a DuckDB file)."""
    lake = settings.lake
    if lake is None:
        raise ValueError("the upkeep is for a lake (DE_WAREHOUSE=ducklake:...), not a DuckDB file")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=lake.snapshot_days)
    orphans = min(cutoff, now - ORPHAN_MIN_AGE)
    with writer(settings) as connection:

        def rows(call: str, **params: object) -> int:
            return write_conflicts_retried(
                settings, lambda: len(connection.execute(f"CALL {call}", {"lake": LAKE_ALIAS, **params}).fetchall())
            )

        expired = rows("ducklake_expire_snapshots($lake, older_than => $cutoff)", cutoff=cutoff)
        merged = rows("ducklake_merge_adjacent_files($lake)") + rows("ducklake_rewrite_data_files($lake)")
        deleted = rows("ducklake_cleanup_old_files($lake, older_than => $cutoff)", cutoff=cutoff) + rows(
            "ducklake_delete_orphaned_files($lake, older_than => $orphans)", orphans=orphans
        )
    return LakeUpkeep(expired, merged, deleted)
