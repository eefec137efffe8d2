"""The code location that `dagster dev` loads (see workspace.yaml).

`defs` is lazy: Dagster calls it when it loads the code location, so that importing this
module reads no setting (build.py reads them, and a bad one is its one-line SettingsError)."""

from __future__ import annotations

from dagster import Definitions, definitions

from de_pipeline.defs.build import pipeline


@definitions
def defs() -> Definitions:
    return pipeline().defs
