"""The embedded simulator of the Digital Engagement data API."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from de_pipeline.api.settings import CUSTOMER_SESSION_PATH, PROVIDER_PATH
from de_pipeline.api.simulator.dataset import SyntheticDataset
from de_pipeline.api.simulator.server import (
    RequestRecord,
    ScriptedResponse,
    Simulator,
    SimulatorConfig,
)
from de_pipeline.env import Env

__all__ = [
    "RequestRecord",
    "ScriptedResponse",
    "Simulator",
    "SimulatorConfig",
    "SyntheticDataset",
    "embedded_simulator",
    "simulator_config_from_env",
]

_embedded: dict[SimulatorConfig, Simulator] = {}
_embedded_lock = threading.Lock()


def simulator_config_from_env(environ: Mapping[str, str] | None = None) -> SimulatorConfig:
    """The simulator's data (DE_SIM_*) and the transport settings the client will use."""
    env = Env(environ)
    return SimulatorConfig(
        seed=env.integer("DE_SIM_SEED", 7),
        messages_per_day=env.integer("DE_SIM_MESSAGES_PER_DAY", 2000, minimum=0),
        hostile=env.flag("DE_SIM_HOSTILE"),
        max_page_size=env.integer("DE_SIM_PAGE_CAP", 500, minimum=1),
        timezone=env.timezone("DE_TIMEZONE"),
        epoch_unit=env.choice("DE_EPOCH_UNIT", "s", ("s", "ms")),
        provider_path=env.text("DE_PROVIDER_PATH", PROVIDER_PATH),
        customer_session_path=env.text("DE_CUSTOMER_SESSION_PATH", CUSTOMER_SESSION_PATH),
    )


def embedded_simulator(config: SimulatorConfig) -> Simulator:
    """A simulator serving `config` in this process, started on first use."""
    with _embedded_lock:
        if config not in _embedded:
            simulator = Simulator(config)
            simulator.start()
            _embedded[config] = simulator
        return _embedded[config]
