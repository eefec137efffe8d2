"""The embedded simulator of the Digital Engagement data API: a loopback HTTP server that
speaks the client's dialect (api/), with synthetic data. The pipeline starts it where an
account has no base URL (accounts.Account.api_source, the one place that chooses it).

It may import api/; api/ never imports it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TypedDict

from de_pipeline.api.settings import AUTH_FORMS, ApiSettings, checked_path
from de_pipeline.api.source import ApiSource
from de_pipeline.env import Env
from de_pipeline.simulator.dataset import SyntheticDataset
from de_pipeline.simulator.server import (
    LoopbackServer,
    RequestRecord,
    ScriptedResponse,
    Simulator,
    SimulatorConfig,
    provider_seed,
)

__all__ = [
    "SIMULATOR_SOURCE",
    "LoopbackServer",
    "RequestRecord",
    "ScriptedResponse",
    "Simulator",
    "SimulatorConfig",
    "SyntheticDataset",
    "embedded_simulator",
    "simulated_source",
    "simulator_config_from_env",
]

SIMULATOR_SOURCE = "embedded simulator"  # the source the warehouse records for its data

_embedded: dict[SimulatorConfig, Simulator] = {}
_embedded_lock = threading.Lock()


def simulator_config_from_env(environ: Mapping[str, str] | None = None, *, timezone: str = "UTC") -> SimulatorConfig:
    """The simulator's data (DE_SIM_*), speaking the same dialect as the client will: the
    epoch unit, key form and paths come from the client's settings (read and checked there)
    unless a DE_SIM_* variable asks for another form, and the local days from the
    warehouse's time zone, which the caller passes."""
    env = Env(environ)
    client = ApiSettings.shared_from_env(environ)
    provider_id = env.text("DE_PROVIDER_ID", SimulatorConfig.provider_id)
    return SimulatorConfig(
        # an account of DE_PROVIDERS_FILE on the simulator: its own provider, its own data
        seed=env.integer("DE_SIM_SEED", 7, minimum=0, maximum=2**32 - 1) + provider_seed(provider_id),
        provider_id=provider_id,
        messages_per_day=env.integer("DE_SIM_MESSAGES_PER_DAY", 2000, minimum=0, maximum=1_000_000),
        hostile=env.flag("DE_SIM_HOSTILE"),
        max_page_size=env.integer("DE_SIM_PAGE_CAP", 500, minimum=1, maximum=100_000),
        latency_ms=env.integer("DE_SIM_LATENCY_MS", 0, minimum=0, maximum=60_000),
        rate_limit=env.integer("DE_SIM_RATE_LIMIT", 0, minimum=0, maximum=10_000),
        timezone=timezone,
        provider_path=client.provider_path,
        api_key_param=client.api_key_param,
        api_key_header=client.api_key_header,
        **_served_forms(env, client),
    )


class _ServedForms(TypedDict):
    epoch_unit: str
    auth_in: str
    providerid_in: str
    partner_id: str | None
    customer_session_method: str
    customer_session_path: str
    sessionid_type: str
    ts_type: str


def _served_forms(env: Env, client: ApiSettings) -> _ServedForms:
    """The request forms and field types the simulator serves (DE_SIM_*): by default those the
    client sends, so that they agree; another one to try `de-pipeline check` against it."""
    path = checked_path(env, "DE_SIM_CUSTOMER_SESSION_PATH", client.customer_session_path, customer_session=True)
    return {
        "epoch_unit": env.choice("DE_SIM_EPOCH_UNIT", client.epoch_unit, ("s", "ms")),
        "auth_in": env.choice("DE_SIM_AUTH_IN", client.auth_in, AUTH_FORMS),
        "providerid_in": env.choice("DE_SIM_PROVIDERID_IN", "any", ("any", "header", "query")),
        "partner_id": env.raw("DE_SIM_PARTNER_ID"),
        "customer_session_method": env.choice(
            "DE_SIM_CUSTOMER_SESSION_METHOD", client.customer_session_method.lower(), ("get", "post")
        ).upper(),
        "customer_session_path": path,
        "sessionid_type": env.choice("DE_SIM_SESSIONID_TYPE", "string", ("string", "number")),
        "ts_type": env.choice("DE_SIM_TS_TYPE", "integer", ("integer", "string")),
    }


def embedded_simulator(config: SimulatorConfig) -> Simulator:
    """A simulator serving `config` in this process, started on first use."""
    with _embedded_lock:
        if config not in _embedded:
            simulator = Simulator(config)
            simulator.start()
            _embedded[config] = simulator
        return _embedded[config]


def simulated_source(config: SimulatorConfig, client: ApiSettings) -> ApiSource:
    """The embedded simulator serving `config`, started now, and the client's settings
    (`client`, the shared ones) pointed at it."""
    simulator = embedded_simulator(config)
    settings = replace(client, base_url=simulator.base_url, api_key=config.api_key, provider_id=config.provider_id)
    return ApiSource(settings, SIMULATOR_SOURCE, simulated=True)
