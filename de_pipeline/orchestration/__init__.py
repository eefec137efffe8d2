"""Dagster's instance and runs, not its definitions: the Dagster home of CLI runs
(instance.py), the pool slots of runs whose process is gone (pool_slots.py), and a run as
people read it (runs.py). defs/ imports it; it never imports defs/."""
