"""Where the warehouse lives and how its tables are shaped (DE_* environment variables)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

import duckdb

from de_pipeline.env import DAY_SECONDS, Env, SettingsError, parse_size

# The settings of a DuckDB connection, as duckdb.connect(config=...) takes them
DuckDBConfig: TypeAlias = dict[str, str | bool | int | float | list[str]]

DEFAULT_DUCKDB_PATH = "data/de_pipeline.duckdb"
DEFAULT_ACCOUNT = "default"  # the name (the `provider` column) of the single account of DE_PROVIDER_ID
ENTITY_LABELS = ("GPE", "DATE", "TIME", "ORG", "PERSON", "MONEY", "EMAIL", "NUMERIC", "ID")
# LABEL stands for any entity label. The 4-star form comes before the 2-star one so that
# ****GPE**** counts once, whole.
DEFAULT_PLACEHOLDER_PATTERN = r"\[LABEL\]|<LABEL>|\{LABEL\}|#LABEL#|\*{4}LABEL\*{4}|\*{2}LABEL\*{2}"


# DuckDB spills to disk beyond this, the fetch's archive writer and the warehouse's
# connections together (FETCH_MEMORY_SHARE); a run's peak RSS stays flat (benchmarks/ingest.py)
DEFAULT_MEMORY_LIMIT = "192MB"
# The share of DE_DUCKDB_MEMORY_LIMIT that a fetch's archive writer keeps to; the warehouse's
# own connections keep to the rest. A backfill fetches a week while the week before builds
# (one process, or two under the UI's run queue): each with the whole budget (128MB then),
# the two together could hold twice it. A third: the writer's JSON reader alone takes a
# 32 MiB buffer, and a day of 300,000 messages of 840 bytes needed 56MB in all
# (archive_pages.sql); the `messages` step of a day of 120,000 failed in 64MB and keeps
# the 128MB it had.
FETCH_MEMORY_SHARE = 1 / 3
# The page bytes one fetch may stage. A run fetches at most 7 days: 7 days of a busy
# account (300,000 messages a day at about 1 KB each) are about 2 GB, so 8 GiB leaves room
# for four times that, and stops a server that never says `[]` (20 MB/s) in about 7
# minutes, where DE_MAX_PAGES_PER_WINDOW would take about 11 hours.
DEFAULT_MAX_STAGED_BYTES = 8 << 30
# A fetch stops before the archive's disk has less free: the warehouse's transaction and
# DuckDB's spill file need room too, and a full disk breaks other programs.
DEFAULT_MIN_FREE_DISK_BYTES = 1 << 30
# the most a reader (`de-pipeline sql`, `session`, the dashboard) spills, in a private folder
DEFAULT_READER_SPILL_LIMIT = "1GiB"
# The storage format DuckDB writes new warehouse files in: DuckDB 1.4 and 1.5, which BI
# drivers often bundle, open it (DuckDB 2's own format, v2.0.0, they refuse), so the
# readers' copy, a copy of the file, opens in them too (publish.py)
READERS_STORAGE_VERSION = "v1.4.0"
_SIZE = re.compile(r"\d+(\.\d+)?\s*[KMGT]i?B", re.IGNORECASE)


def timezone_from_env(environ: Mapping[str, str] | None = None) -> str:
    """DE_TIMEZONE: the zone whose calendar days are the partitions, the warehouse's `day`
    and the simulator's local days (default UTC)."""
    return Env(environ).timezone("DE_TIMEZONE")


@dataclass(frozen=True)
class WarehouseSettings:
    duckdb_path: Path
    archive_dir: Path
    timezone: str = "UTC"
    low_confidence: float = 0.5
    placeholder_pattern: str = DEFAULT_PLACEHOLDER_PATTERN
    custom_labels: tuple[str, ...] = ()
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    reader_spill_limit: str | None = DEFAULT_READER_SPILL_LIMIT  # None: readers never spill
    lock_timeout_seconds: float = 120.0
    unparsed_sessionid_threshold: float = 0.01
    allow_source_change: bool = False  # write another source's data into this warehouse
    reader_copy_path: Path | None = None  # the readers' copy (publish.py); None: none is published
    account: str = DEFAULT_ACCOUNT  # the account whose rows a run writes (accounts.Account.warehouse_settings)
    max_staged_bytes: int = DEFAULT_MAX_STAGED_BYTES  # DE_MAX_STAGED_BYTES
    min_free_disk_bytes: int = DEFAULT_MIN_FREE_DISK_BYTES  # DE_MIN_FREE_DISK_BYTES; 0: not checked

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WarehouseSettings:
        env = Env(environ)
        duckdb_path = Path(env.text("DE_DUCKDB_PATH", DEFAULT_DUCKDB_PATH))
        if duckdb_path.exists() and duckdb_path.is_dir():
            raise SettingsError(f"DE_DUCKDB_PATH={duckdb_path} is a directory, not a DuckDB file")
        archive_dir = Path(env.text("DE_ARCHIVE_DIR", str(duckdb_path.with_name(duckdb_path.stem + "_archive"))))
        custom_labels = env.names("DE_REDACTION_LABELS")
        for label in custom_labels:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", label):
                raise SettingsError(f"DE_REDACTION_LABELS: {label!r} is not a label (letters, digits, underscore)")
        pattern = env.text("DE_REDACTION_PATTERN", DEFAULT_PLACEHOLDER_PATTERN)
        if "LABEL" not in pattern:
            raise SettingsError(f"DE_REDACTION_PATTERN={pattern!r} must contain LABEL where the entity label stands")
        memory_limit = env.text("DE_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT)
        if not _SIZE.fullmatch(memory_limit):
            raise SettingsError(f"DE_DUCKDB_MEMORY_LIMIT={memory_limit!r} must look like 256MB or 2GB")
        settings = cls(
            duckdb_path=duckdb_path,
            reader_copy_path=_reader_copy_path(env, duckdb_path),
            archive_dir=archive_dir,
            timezone=timezone_from_env(environ),
            low_confidence=env.number("DE_LOW_CONFIDENCE", 0.5, minimum=0.0, maximum=1.0),
            placeholder_pattern=pattern,
            custom_labels=custom_labels,
            memory_limit=memory_limit,
            reader_spill_limit=_reader_spill_limit(env),
            lock_timeout_seconds=env.number("DE_LOCK_TIMEOUT_SECONDS", 120.0, minimum=0.0, maximum=DAY_SECONDS),
            unparsed_sessionid_threshold=env.number("DE_UNPARSED_SESSIONID_THRESHOLD", 0.01, minimum=0.0, maximum=1.0),
            allow_source_change=env.flag("DE_ALLOW_SOURCE_CHANGE"),
            max_staged_bytes=env.size("DE_MAX_STAGED_BYTES", DEFAULT_MAX_STAGED_BYTES, minimum=1),
            min_free_disk_bytes=env.size("DE_MIN_FREE_DISK_BYTES", DEFAULT_MIN_FREE_DISK_BYTES),
        )
        refuse_nested_outputs(settings.outputs)
        # checked by the engine that runs it: RE2 refuses what Python's `re` accepts (look-behind)
        complaint = _re2_complaint(settings.placeholder_regex)
        if complaint is not None:
            raise SettingsError(
                f"DE_REDACTION_PATTERN={pattern!r} is not a regular expression DuckDB (RE2) can run: {complaint}"
            )
        return settings

    @property
    def outputs(self) -> dict[str, Path]:
        """The paths the pipeline writes, by the setting that names each."""
        outputs = {"DE_DUCKDB_PATH": self.duckdb_path, "DE_ARCHIVE_DIR": self.archive_dir}
        if self.reader_copy_path is not None:
            outputs["DE_READER_COPY_PATH"] = self.reader_copy_path
        return outputs

    @property
    def duckdb_config(self) -> DuckDBConfig:
        """Database settings for every DuckDB connection the pipeline opens to the warehouse
        (the same for each: DuckDB refuses a second connection to a file with other
        settings): DE_DUCKDB_MEMORY_LIMIT less the fetch's share."""
        return {
            "memory_limit": _kib(self._memory_limit_bytes - self._fetch_memory_bytes),
            "storage_compatibility_version": READERS_STORAGE_VERSION,
        }

    @property
    def fetch_memory_limit(self) -> str:
        """The archive writer's share of DE_DUCKDB_MEMORY_LIMIT (FETCH_MEMORY_SHARE), so a
        fetch beside a build keeps to the one budget."""
        return _kib(self._fetch_memory_bytes)

    @property
    def _memory_limit_bytes(self) -> int:
        size = parse_size(self.memory_limit)
        if size is None:  # from_env refuses it; a settings object made in code may hold anything
            raise SettingsError(f"DE_DUCKDB_MEMORY_LIMIT={self.memory_limit!r} must look like 256MB or 2GB")
        return size

    @property
    def _fetch_memory_bytes(self) -> int:
        return int(self._memory_limit_bytes * FETCH_MEMORY_SHARE)

    @property
    def entity_labels(self) -> tuple[str, ...]:
        return ENTITY_LABELS + tuple(label for label in self.custom_labels if label not in ENTITY_LABELS)

    @property
    def placeholder_regex(self) -> str:
        """The RE2 pattern that finds every placeholder; longer labels are tried first."""
        labels = sorted(self.entity_labels, key=len, reverse=True)
        return self.placeholder_pattern.replace("LABEL", "(?:" + "|".join(labels) + ")")

    @property
    def label_regex(self) -> str:
        """The RE2 pattern that finds the label inside one placeholder."""
        labels = sorted(self.entity_labels, key=len, reverse=True)
        return "(" + "|".join(labels) + ")"


def _kib(size: int) -> str:
    """A number of bytes as DuckDB's memory_limit takes it."""
    return f"{size // 1024}KiB"


def _reader_spill_limit(env: Env) -> str | None:
    """DE_READER_SPILL_LIMIT: the most a reader's query spills to disk beyond
    DE_DUCKDB_MEMORY_LIMIT; `0`: none (the query fails instead)."""
    value = env.text("DE_READER_SPILL_LIMIT", DEFAULT_READER_SPILL_LIMIT)
    if value.strip() == "0":
        return None
    if not _SIZE.fullmatch(value):
        raise SettingsError(f"DE_READER_SPILL_LIMIT={value!r} must look like 1GiB or 500MB, or be 0 (never spill)")
    return value


def _reader_copy_path(env: Env, duckdb_path: Path) -> Path | None:
    """DE_READER_COPY_PATH: the readers' copy, `<warehouse>-readers.duckdb` beside the
    warehouse by default; `off` publishes none."""
    default = duckdb_path.with_name(f"{duckdb_path.stem}-readers{duckdb_path.suffix}")
    value = env.text("DE_READER_COPY_PATH", str(default))
    if value.lower() == "off":
        return None
    path = Path(value)
    if path.is_dir():
        raise SettingsError(f"DE_READER_COPY_PATH={path} is a directory, not a file for the readers' copy")
    if path.resolve() == duckdb_path.resolve():
        raise SettingsError(f"DE_READER_COPY_PATH={path} is the warehouse itself; name another file, or `off`")
    return path


def refuse_nested_outputs(outputs: Mapping[str, Path]) -> None:
    """A SettingsError naming both settings when one output path is another or lies inside
    it (a readers' copy inside the raw archive overwrote a raw day)."""
    resolved = {name: path.resolve() for name, path in outputs.items()}
    for inner, inner_path in resolved.items():
        for outer, outer_path in resolved.items():
            if inner != outer and (inner_path == outer_path or outer_path in inner_path.parents):
                where = "is the same path as" if inner_path == outer_path else "lies inside"
                raise SettingsError(
                    f"{inner}={outputs[inner]} {where} {outer}={outputs[outer]}: give each a place of its own"
                )


@lru_cache(maxsize=16)
def _re2_complaint(regex: str) -> str | None:
    """DuckDB's one-line complaint about `regex`, or None if its RE2 engine accepts it."""
    with duckdb.connect() as connection:
        try:
            connection.execute("SELECT regexp_matches('', $regex)", {"regex": regex})
        except duckdb.Error as exc:
            return " ".join(str(exc).split()).removeprefix("Invalid Input Error: ")
    return None
