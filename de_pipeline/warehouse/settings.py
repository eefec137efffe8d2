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
# The name a lake is attached under (connection.py); `USE`d, so the SQL files name no database
LAKE_ALIAS = "lake"
DEFAULT_S3_REGION = "us-east-1"
DEFAULT_SNAPSHOT_DAYS = 7  # a lake's snapshots the weekly upkeep keeps (lake_upkeep.py)
_LAKE_FORMS = (
    "empty (the DuckDB file DE_DUCKDB_PATH), ducklake:postgres:<libpq key=value ...> "
    "(e.g. ducklake:postgres:dbname=lake host=127.0.0.1 user=de) or ducklake:<path>.ducklake"
)


def timezone_from_env(environ: Mapping[str, str] | None = None) -> str:
    """DE_TIMEZONE: the zone whose calendar days are the partitions, the warehouse's `day`
    and the simulator's local days (default UTC)."""
    return Env(environ).timezone("DE_TIMEZONE")


@dataclass(frozen=True)
class LakeSettings:
    """A DuckLake warehouse (DE_WAREHOUSE=ducklake:..., docs/lake.md): its catalog and the
    folder or bucket of its Parquet files. No secret: DuckDB's postgres extension reads
    PGPASSWORD itself, and the S3 keys are read from the environment when a connection
    makes its secret (lake.py), so that no settings object holds them."""

    catalog: str  # what follows `ducklake:`: `postgres:<libpq string>` or a DuckDB file's path
    data_path: str  # DE_LAKE_DATA_PATH: a local folder (absolute) or s3://bucket/prefix/
    s3_endpoint: str | None = None  # DE_LAKE_S3_ENDPOINT: http(s)://host:port of an S3-compatible server
    s3_region: str = DEFAULT_S3_REGION  # AWS_REGION
    snapshot_days: int = DEFAULT_SNAPSHOT_DAYS  # DE_LAKE_SNAPSHOT_DAYS: the time travel the upkeep keeps

    @property
    def attach_target(self) -> str:
        """What ATTACH takes: `ducklake:<catalog>`."""
        return f"ducklake:{self.catalog}"

    @property
    def postgres_catalog(self) -> bool:
        return self.catalog.startswith("postgres:")

    @property
    def on_s3(self) -> bool:
        return self.data_path.startswith("s3://")

    @property
    def parallel_writers(self) -> bool:
        """Whether processes can write at once: a PostgreSQL catalog takes several (DuckLake
        retries nothing itself: connection.write_conflicts_retried does); a DuckDB-file
        catalog is one process's, as the DuckDB file is."""
        return self.postgres_catalog

    def __str__(self) -> str:  # for messages: the catalog (it holds no password) and the data
        return f"the lake {self.attach_target} (data in {self.data_path})"

    @classmethod
    def from_env(cls, env: Env) -> LakeSettings | None:
        """DE_WAREHOUSE and the lake's settings; None for the DuckDB file."""
        value = env.raw("DE_WAREHOUSE")
        if value is None:
            return None
        if not value.startswith("ducklake:"):
            raise SettingsError(f"DE_WAREHOUSE={value!r} must be {_LAKE_FORMS}")
        catalog = value.removeprefix("ducklake:")
        if catalog.startswith("postgres:"):
            catalog = "postgres:" + _libpq_string(catalog.removeprefix("postgres:"))
        elif catalog.endswith(".ducklake"):
            catalog = str(Path(catalog).expanduser().resolve())
        else:
            raise SettingsError(f"DE_WAREHOUSE={value!r} must be {_LAKE_FORMS}")
        data_path = _lake_data_path(env)
        if data_path.startswith("s3://"):
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                env.required(name, f"DE_LAKE_DATA_PATH={data_path} is on S3, and the lake reads its keys from there")
        return cls(
            catalog=catalog,
            data_path=data_path,
            s3_endpoint=_s3_endpoint(env),
            s3_region=env.text("AWS_REGION", DEFAULT_S3_REGION),
            snapshot_days=env.integer("DE_LAKE_SNAPSHOT_DAYS", DEFAULT_SNAPSHOT_DAYS, minimum=0, maximum=3660),
        )


def _libpq_string(text: str) -> str:
    """The libpq `key=value` string of a PostgreSQL catalog, checked: pairs only, no password
    (a secret in a setting lands in logs and process listings; libpq reads PGPASSWORD)."""
    pairs = text.split()
    if not pairs:
        raise SettingsError(f"DE_WAREHOUSE=ducklake:postgres: needs a libpq connection string; must be {_LAKE_FORMS}")
    for pair in pairs:
        key, equals, _ = pair.partition("=")
        if key.strip().lower() == "password":
            raise SettingsError(
                "DE_WAREHOUSE holds a password=: remove it and set PGPASSWORD in the environment instead"
            )
        if not equals or not key:
            raise SettingsError(f"DE_WAREHOUSE: {pair!r} is not a libpq key=value pair (as in dbname=lake host=db)")
    return " ".join(pairs)


def _lake_data_path(env: Env) -> str:
    """DE_LAKE_DATA_PATH: the lake's Parquet files, in a local folder (made absolute, as
    every process must name the same one) or under s3://bucket/prefix/."""
    value = env.required("DE_LAKE_DATA_PATH", "a DuckLake warehouse (DE_WAREHOUSE) keeps its Parquet files there")
    if value.startswith("s3://"):
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?", value):
            raise SettingsError(f"DE_LAKE_DATA_PATH={value!r} must look like s3://bucket/prefix/")
        return value if value.endswith("/") else value + "/"
    if "://" in value:
        raise SettingsError(f"DE_LAKE_DATA_PATH={value!r} must be a local folder or s3://bucket/prefix/")
    path = Path(value).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise SettingsError(f"DE_LAKE_DATA_PATH={value} is a file, not a folder for the lake's Parquet files")
    return str(path) + "/"


def _s3_endpoint(env: Env) -> str | None:
    """DE_LAKE_S3_ENDPOINT: an S3-compatible server (MinIO), as http(s)://host[:port]."""
    value = env.raw("DE_LAKE_S3_ENDPOINT")
    if value is None:
        return None
    if not re.fullmatch(r"https?://[^/\s]+/?", value):
        raise SettingsError(
            f"DE_LAKE_S3_ENDPOINT={value!r} must look like http://127.0.0.1:9000 or https://s3.example.com"
        )
    return value.rstrip("/")


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
    lake: LakeSettings | None = None  # DE_WAREHOUSE: a DuckLake; None: the DuckDB file duckdb_path

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
        lake = LakeSettings.from_env(env)
        settings = cls(
            duckdb_path=duckdb_path,
            lake=lake,
            reader_copy_path=_reader_copy_path(env, duckdb_path, lake),
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
    def where(self) -> str:
        """The warehouse, for messages: the DuckDB file, or the lake."""
        return str(self.duckdb_path) if self.lake is None else str(self.lake)

    @property
    def database_name(self) -> str:
        """The warehouse's database, as DuckDB names it (lineage tools read database.schema.table)."""
        return self.duckdb_path.stem if self.lake is None else LAKE_ALIAS

    @property
    def outputs(self) -> dict[str, Path]:
        """The paths the pipeline writes, by the setting that names each."""
        outputs = {"DE_DUCKDB_PATH": self.duckdb_path} if self.lake is None else {}
        outputs["DE_ARCHIVE_DIR"] = self.archive_dir
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


def _reader_copy_path(env: Env, duckdb_path: Path, lake: LakeSettings | None) -> Path | None:
    """DE_READER_COPY_PATH: the readers' copy, `<warehouse>-readers.duckdb` beside the
    warehouse by default; `off` publishes none. A lake has none by default: its readers
    attach the lake itself (docs/lake.md)."""
    default = duckdb_path.with_name(f"{duckdb_path.stem}-readers{duckdb_path.suffix}")
    value = env.text("DE_READER_COPY_PATH", "off" if lake is not None else str(default))
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
