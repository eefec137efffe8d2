"""Where the dashboard is written and how many days it shows (DE_DASHBOARD_* variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from de_pipeline.env import Env, SettingsError
from de_pipeline.warehouse.settings import WarehouseSettings, refuse_nested_outputs

DEFAULT_FILE_NAME = "dashboard.html"  # beside the warehouse: data/dashboard.html by default
DEFAULT_DAYS = 90
MAX_DAYS = 3660  # ten years of days keep the file far below 15 MB (docs/dashboard.md)


@dataclass(frozen=True)
class DashboardSettings:
    path: Path  # the HTML file
    days: int  # the days shown, ending at the last loaded day

    @classmethod
    def from_env(cls, warehouse: WarehouseSettings, environ: Mapping[str, str] | None = None) -> DashboardSettings:
        env = Env(environ)
        path = Path(env.text("DE_DASHBOARD_PATH", str(warehouse.duckdb_path.with_name(DEFAULT_FILE_NAME))))
        problem = path_problem(path)
        if problem:
            raise SettingsError(f"DE_DASHBOARD_PATH={path} {problem}")
        refuse_nested_outputs(warehouse.outputs | {"DE_DASHBOARD_PATH": path})
        return cls(path=path, days=env.integer("DE_DASHBOARD_DAYS", DEFAULT_DAYS, minimum=1, maximum=MAX_DAYS))

    def for_account(self, account: str) -> DashboardSettings:
        """One account's dashboard: `<name>-<account>.html` beside the file of all accounts."""
        return replace(self, path=self.path.with_name(f"{self.path.stem}-{account}{self.path.suffix}"))


def path_problem(path: Path) -> str | None:
    """Why `path` cannot be the dashboard file, or None (shared by the setting and `--out`)."""
    if path.is_dir():
        return f"is a directory; name a file such as {path / DEFAULT_FILE_NAME}"
    return None
