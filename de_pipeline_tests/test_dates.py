"""The tests that depend on today's date pass with the clock set to a weekend and to a
daylight-saving change, not only on the day they were written.

Those marked `every_clock` run again at three clocks: a Sunday whose yesterday is a Saturday
and a simulated outage, a Saturday, and a DST change. They are one end-to-end run, the edges
of a day, the retention edge, the empty-day and outage cases and the DST days. The other
`dates` tests take their days from recent_days() as these do, and add nothing but minutes
(replaying all of them at the Sunday took about 4 CPU-minutes of each suite); the day
arithmetic is also tested directly, e.g. test_api_client's 23- and 25-hour days.

libfaketime (Debian's `faketime`, installed by .ci/run) starts the clock of the pytest
process at the chosen moment, and every process it starts goes on from there
(FAKETIME_DONT_RESET), so the pipeline, the embedded simulator, DuckDB and Dagster all see
the chosen day. It works even where the whole run is already under a faked clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from de_pipeline.simulator import SyntheticDataset

TESTS = Path(__file__).resolve().parent
CLOCKS = {
    # yesterday is a Saturday and an outage day of the default seed, and today - 2 a Friday
    "sunday": datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    # yesterday (the 18th) is a Friday; the 16th, in the recent days, is a simulated outage
    "saturday": datetime(2026, 12, 19, 12, 0, tzinfo=UTC),
    # the US spring-forward day, half an hour after the change (07:00 UTC); the 9th is an outage
    "dst-change": datetime(2027, 3, 14, 7, 30, tzinfo=UTC),
}
# the tests each clock runs (not those also marked slow: kills and a 1 s-latency overlap,
# whose days are recent_days' too)
REPLAYED = "dates and every_clock and not slow"


def test_the_chosen_days_are_the_awkward_ones():
    dataset = SyntheticDataset(7)
    assert CLOCKS["saturday"].weekday() == 5 and dataset.is_outage_day(datetime(2026, 12, 16).date())
    assert CLOCKS["sunday"].weekday() == 6 and dataset.is_outage_day(datetime(2026, 11, 28).date())
    assert dataset.is_outage_day(datetime(2027, 3, 9).date())


@pytest.mark.slow
def test_date_sensitive_tests_pass_on_a_weekend_and_a_dst_change(tmp_path: Path):
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("faketime is not installed (apt-get install faketime); .ci/run installs it")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DE_", "DAGSTER_HOME"))}
    env |= {"TZ": "UTC", "FAKETIME_DONT_RESET": "1"}
    runs = {}
    for clock, moment in CLOCKS.items():  # all three at once, so that the suite stays short
        command = [
            faketime, "-f", f"@{moment:%Y-%m-%d %H:%M:%S}",
            sys.executable, "-m", "pytest", str(TESTS), "-m", REPLAYED, "-q", "-x",
            "-p", "no:cacheprovider", "-n", "0", "--basetemp", str(tmp_path / clock),
        ]  # fmt: skip
        runs[clock] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=TESTS.parent
        )
    failures = []
    for clock, process in runs.items():
        try:
            out, _ = process.communicate(timeout=1200)
        finally:
            if process.poll() is None:
                process.kill()
        summary = out.strip().splitlines()[-1] if out.strip() else "(no output)"
        moment = CLOCKS[clock]
        if process.returncode or " passed" not in summary or "failed" in summary or "skipped" in summary:
            failures.append(f"on {moment:%A %Y-%m-%d %H:%M} UTC: {summary}\n{out[-3000:]}")
        assert _today_under(faketime, f"@{moment:%Y-%m-%d %H:%M:%S}") == f"{moment:%Y-%m-%d}"
    assert not failures, "\n\n".join(failures)


def _today_under(faketime: str, start: str) -> str:
    """What `date.today()` says under the same clock: the fake clock really took."""
    out = subprocess.run(
        [faketime, "-f", start, sys.executable, "-c", "import datetime; print(datetime.date.today())"],
        env=os.environ | {"TZ": "UTC"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()
