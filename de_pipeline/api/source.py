"""What the pipeline reads: connection settings plus what they point at."""

from __future__ import annotations

from dataclasses import dataclass

from de_pipeline.api.settings import ApiSettings


@dataclass(frozen=True)
class ApiSource:
    """Connection settings plus what they point at, as the warehouse records it."""

    settings: ApiSettings
    label: str
    simulated: bool

    @classmethod
    def real(cls, settings: ApiSettings) -> ApiSource:
        """The vendor's API, recorded as its base URL and provider id."""
        return cls(settings, settings.source, simulated=False)
