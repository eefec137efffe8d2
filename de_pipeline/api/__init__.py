"""The Digital Engagement data API: client, settings and errors.

Knows HTTP; knows nothing of Dagster, DuckDB or the simulator (de_pipeline/simulator/).
"""

from de_pipeline.api.client import ClientStats, DigitalEngagementClient, Page
from de_pipeline.api.errors import (
    ApiAuthError,
    ApiBadRequestError,
    ApiEpochUnitError,
    ApiError,
    ApiNotFoundError,
    ApiRedirectError,
    ApiResponseError,
    ApiRetriesExhausted,
    ApiStatusError,
)
from de_pipeline.api.settings import DAY_MS, MAX_WINDOW_MS, RETENTION_DAYS, ApiSettings
from de_pipeline.api.source import ApiSource
from de_pipeline.api.windows import Window, split_window

__all__ = [
    "DAY_MS",
    "MAX_WINDOW_MS",
    "RETENTION_DAYS",
    "ApiAuthError",
    "ApiBadRequestError",
    "ApiEpochUnitError",
    "ApiError",
    "ApiNotFoundError",
    "ApiRedirectError",
    "ApiResponseError",
    "ApiRetriesExhausted",
    "ApiSettings",
    "ApiSource",
    "ApiStatusError",
    "ClientStats",
    "DigitalEngagementClient",
    "Page",
    "Window",
    "split_window",
]
