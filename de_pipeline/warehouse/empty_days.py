"""Days loaded without a message, held against the account's own history: the rule, in one place.

The API answers `[]` for a quiet day, an outage or a holiday, and just the same for a window
it read in another unit (DE_EPOCH_UNIT), another provider's data (DE_PROVIDER_ID) or the
wrong server (DE_API_BASE_URL): an empty day alone does not say which. So:

- A day is *empty* when it was loaded (it is in `loaded_days`) and `messages` holds none of
  its messages: its windows came back empty, or every record was rejected.
- Its *comparable days* are the same weekday in the COMPARABLE_WEEKS weeks before it, those
  the account loaded (a weekend is quieter than a weekday; a day with messages counts as
  loaded, also from before `loaded_days` existed). An empty day is *unexpected* when more
  than half of its comparable days had messages, and *usually empty* when at least half of
  them had none; with no comparable day, neither.
- The check `no_unexpected_empty_days` (a warning) and the dashboard's data-health panel show
  the unexpected days, whatever the rest of the run held.
- A run that stored no message on any of its days logs a WARNING, unless the account's
  history explains it: the account stored messages before, and either every day of the run
  is usually empty (a weekday-only account's weekend), or the run is a single day and the
  account's last loaded day before it had messages (an outage, a holiday: one such day is
  no pattern yet; the check still shows it). So a first run that stores nothing always
  warns, and so does an empty run of several days, or a second empty day in a row, whose
  weekdays used to have messages. A run with a message on any day never warns: a quiet day
  among busy ones is shown by the check, not shouted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from de_pipeline.warehouse.schema import one_row

COMPARABLE_WEEKS = 4
_BACK = 7 * COMPARABLE_WEEKS  # days before $first_day that the comparable days reach

# Per account and loaded day of $first_day..$last_day: its messages, its comparable days and
# how many of them had messages. Days that hold messages count as loaded (before loaded_days).
DAY_HISTORY = f"""
WITH counted AS (
    SELECT provider, day, count(*) AS messages FROM messages
    WHERE day BETWEEN $first_day - {_BACK} AND $last_day GROUP BY ALL
), known AS (
    SELECT provider, day, coalesce(counted.messages, 0) AS messages
    FROM (SELECT provider, day FROM loaded_days WHERE day BETWEEN $first_day - {_BACK} AND $last_day
          UNION SELECT provider, day FROM counted) AS loaded
    LEFT JOIN counted USING (provider, day)
)
SELECT d.provider, d.day, d.messages, count(c.day) AS comparable_days,
       count(c.day) FILTER (WHERE c.messages > 0) AS comparable_with_messages
FROM known AS d
LEFT JOIN known AS c ON c.provider = d.provider
    AND c.day IN ({", ".join(f"d.day - {7 * week}" for week in range(1, COMPARABLE_WEEKS + 1))})
WHERE d.day BETWEEN $first_day AND $last_day
GROUP BY d.provider, d.day, d.messages
"""
# Conditions over a row of DAY_HISTORY
UNEXPECTED = "messages = 0 AND 2 * comparable_with_messages > comparable_days"
USUALLY_EMPTY = "comparable_days > 0 AND 2 * comparable_with_messages <= comparable_days"

# The account's days of $first_day..$last_day, judged; and what came before them
RUN_DAYS = f"""
SELECT day, messages, {UNEXPECTED} AS unexpected, {USUALLY_EMPTY} AS usually_empty
FROM ({DAY_HISTORY}) WHERE provider = $provider ORDER BY day
"""
BEFORE_THE_RUN = """
SELECT (SELECT max(day) FROM messages WHERE provider = $provider AND day < $first_day) AS last_with_messages,
       (SELECT max(day) FROM loaded_days WHERE provider = $provider AND day < $first_day) AS last_loaded,
       EXISTS (SELECT 1 FROM messages WHERE provider = $provider) AS any_message
"""


@dataclass(frozen=True)
class EmptyRun:
    """A run of an account that stored no message, and what its history says of that."""

    days: list[date]
    first_run: bool  # the account has never stored a message
    unexpected: list[date]  # the run's days on whose weekday the account used to have messages


def unexplained_empty_run(
    connection: duckdb.DuckDBPyConnection, account: str, first_day: date, last_day: date
) -> EmptyRun | None:
    """The run of `account` over first_day..last_day (the days it loaded), when it stored no
    message and the account's history does not explain that (the module's rule); else None."""
    params = {"provider": account, "first_day": first_day, "last_day": last_day}
    days = connection.execute(RUN_DAYS, params).fetchall()
    if not days or any(messages for _, messages, _, _ in days):
        return None
    last_with_messages, last_loaded, any_message = one_row(
        connection.execute(BEFORE_THE_RUN, {"provider": account, "first_day": first_day})
    )
    unexpected = [day for day, _, is_unexpected, _ in days if is_unexpected]
    run = EmptyRun([day for day, *_ in days], first_run=not any_message, unexpected=unexpected)
    if run.first_run:
        return run
    if all(usually_empty for *_, usually_empty in days):
        return None
    after_a_busy_day = last_with_messages is not None and (last_loaded is None or last_with_messages >= last_loaded)
    return None if len(days) == 1 and after_a_busy_day else run


def ensure_loaded_days(connection: duckdb.DuckDBPyConnection) -> None:
    """A warehouse from before `loaded_days` (read only, not yet written by a run) reads as
    one with none: an empty temp view of its name."""
    if not one_row(connection.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'loaded_days'"))[0]:
        connection.execute(
            "CREATE OR REPLACE TEMP VIEW loaded_days AS "
            "SELECT CAST(NULL AS VARCHAR) AS provider, CAST(NULL AS DATE) AS day LIMIT 0"
        )
