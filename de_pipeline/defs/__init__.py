"""Dagster wiring: assets, checks, jobs, schedules and sensors (definitions.py is the code location)."""

import warnings

# Dagster warns, each time the definitions load, that `backfill_policy` is in beta: a
# warning for us (docs/ui.md says what the policy does), not for every user of `dagster asset list` or the UI.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta")
