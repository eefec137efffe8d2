"""Which API the pipeline reads: the real account, or the embedded simulator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from de_pipeline.api.settings import ApiSettings, transport_overrides
from de_pipeline.api.simulator import embedded_simulator, simulator_config_from_env
from de_pipeline.env import Env

SIMULATOR_SOURCE = "embedded simulator"


@dataclass(frozen=True)
class ApiSource:
    """Connection settings plus what they point at, as the warehouse records it."""

    settings: ApiSettings
    label: str
    simulated: bool


def resolve_source(environ: Mapping[str, str] | None = None, *, timezone: str = "UTC") -> ApiSource:
    """The real API when DE_API_BASE_URL is set; otherwise the embedded simulator, started now,
    whose local days are those of `timezone` (the warehouse's DE_TIMEZONE)."""
    settings = ApiSettings.from_env(environ)
    if settings is not None:
        return ApiSource(settings, settings.source, simulated=False)
    config = simulator_config_from_env(environ, timezone=timezone)
    simulator = embedded_simulator(config)
    settings = ApiSettings(
        base_url=simulator.base_url,
        api_key=config.api_key,
        provider_id=config.provider_id,
        **transport_overrides(Env(environ)),
    )
    return ApiSource(settings, SIMULATOR_SOURCE, simulated=True)
