"""Run by Apache Superset's own Python (test_bi_clients.py): add a DuckDB file to Superset as
a database, through its REST API as its UI does, then a dataset of `messages` and a chart's
query of it (messages per day). Prints what Superset answered, as JSON.

Usage: python superset_chart.py DATABASE_FILE (SUPERSET_CONFIG_PATH set, an admin `admin`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from superset.app import create_app


def main(database_file: str) -> None:
    client = create_app().test_client()
    headers: dict[str, str] = {}

    def call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        response = getattr(client, method)(url, headers=headers, json=body)
        if response.status_code >= 300:
            sys.exit(f"{method.upper()} {url}: {response.status_code} {response.get_data(as_text=True)[:3000]}")
        return response.get_json()

    login = {"username": "admin", "password": "admin", "provider": "db", "refresh": False}
    headers["Authorization"] = "Bearer " + call("post", "/api/v1/security/login", login)["access_token"]
    uri = f"duckdb:///{database_file}?access_mode=read_only"
    database = call("post", "/api/v1/database/", {"database_name": "de_pipeline", "sqlalchemy_uri": uri})["id"]
    tables = call("get", f"/api/v1/database/{database}/tables/?q=(schema_name:main,force:!t)")["result"]
    metadata = call("get", f"/api/v1/database/{database}/table_metadata/?name=messages&schema=main")
    dataset = call("post", "/api/v1/dataset/", {"database": database, "schema": "main", "table_name": "messages"})["id"]
    chart = {
        "datasource": {"id": dataset, "type": "table"},
        "queries": [{"columns": ["day"], "metrics": ["count"], "orderby": [["day", True]], "row_limit": 10000}],
        "result_format": "json",
        "result_type": "full",
    }
    rows = call("post", "/api/v1/chart/data", chart)["result"][0]["data"]
    dataset_columns = call("get", f"/api/v1/dataset/{dataset}")["result"]["columns"]
    print(
        json.dumps(
            {
                "tables": sorted(table["value"] for table in tables),
                "columns": [column["name"] for column in metadata["columns"]],
                "dataset_columns": [column["column_name"] for column in dataset_columns],
                "messages_per_day": [[row["day"], row["count"]] for row in rows],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
