"""What the Dagster catalog shows of every table asset: its columns (from the table registry),
a preview of its rows, owners and tags a team sets, and whether yesterday has loaded by DE_FRESH_BY."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    FreshnessPolicy,
    MetadataValue,
    PartitionsDefinition,
    TableColumn,
    TableMetadataValue,
    TableRecord,
    TableSchema,
)

from de_pipeline.env import Env, SettingsError
from de_pipeline.warehouse.tables import Table

GROUP = "digital_engagement"
_OWNER = re.compile(r"team:[\w.-]+|[^@\s]+@[^@\s]+\.[^@\s]+")  # fullmatch: `$` would allow a final newline
_TAG = re.compile(r"[\w.-]+")


@dataclass(frozen=True)
class CatalogSettings:
    """DE_ASSET_OWNERS (emails or team:name, comma-separated) and DE_ASSET_TAGS (key=value,
    comma-separated): what a team puts on every asset of the pipeline."""

    owners: tuple[str, ...] = ()
    tags: Mapping[str, str] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CatalogSettings:
        env = Env(environ)
        owners = env.names("DE_ASSET_OWNERS")
        for owner in owners:
            if not _OWNER.fullmatch(owner):
                raise SettingsError(f"DE_ASSET_OWNERS: {owner!r} is neither an email nor team:name")
        tags = {}
        for pair in env.names("DE_ASSET_TAGS"):
            key, _, value = pair.partition("=")
            if not (_TAG.fullmatch(key.strip()) and _TAG.fullmatch(value.strip())):
                raise SettingsError(f"DE_ASSET_TAGS: {pair!r} is not key=value (letters, digits, _ . -)")
            tags[key.strip()] = value.strip()
        return cls(owners, tags)


class OwnedArguments(TypedDict):
    """The @asset arguments of `owned`."""

    group_name: str
    owners: list[str]
    tags: dict[str, str]


class CatalogArguments(OwnedArguments):
    """The @asset arguments of `asset_catalog`."""

    description: str
    metadata: dict[str, TableSchema]
    freshness_policy: FreshnessPolicy


class TableAssetArguments(CatalogArguments):
    """The @asset arguments of a warehouse table's asset (defs/assets.py)."""

    key: AssetKey
    partitions_def: PartitionsDefinition
    backfill_policy: BackfillPolicy
    pool: str | None
    kinds: set[str]
    deps: list[AssetsDefinition]
    check_specs: list[AssetCheckSpec]


def owned(catalog: CatalogSettings) -> OwnedArguments:
    """The @asset arguments every asset of the pipeline shares: its group, owners and tags."""
    return {"group_name": GROUP, "owners": list(catalog.owners), "tags": dict(catalog.tags or {})}


def column_schema(table: Table) -> TableSchema:
    """The table's columns, as the registry declares them."""
    return TableSchema(columns=[TableColumn(c.name, c.base_type, description=c.description) for c in table.columns])


def asset_catalog(table: Table, catalog: CatalogSettings, freshness: FreshnessPolicy) -> CatalogArguments:
    """The @asset arguments that put a registry table in the catalog (`freshness`: every
    table's policy, defs/freshness.py)."""
    return {
        **owned(catalog),
        "description": table.description,
        "metadata": {"dagster/column_schema": column_schema(table)},
        "freshness_policy": freshness,
    }


def preview_table(table: Table, rows: list[dict[str, Any]]) -> TableMetadataValue:
    """Rows of `table` as a table in the UI, whose cells are shown as plain text. Never
    Markdown: the vendor's strings in them (texts, names, channels) would be rendered, so
    that a served `![x](http://...)` loaded a remote image when a user opened the preview."""
    return MetadataValue.table(
        [TableRecord({k: _cell(v) for k, v in row.items()}) for row in rows], column_schema(table)
    )


_JS_SAFE_INTEGER = 2**53 - 1  # the UI parses cells with JSON.parse: larger integers lose digits


def _cell(value: Any) -> str | int | float | bool | None:
    """A value as a TableRecord holds it: numbers and booleans as they are, the rest as text
    (a NaN or infinity too, which the UI's JSON parser refuses)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) <= _JS_SAFE_INTEGER:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return round(value, 3)
    return str(value)
