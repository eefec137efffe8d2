-- Once per run over $first_day..$last_day, before the daily steps of
-- conversation_segments.sql: the journeys the run rebuilds, and the removal of their rows.
-- Journeys are assumed to last less than a day, so each lies in the day it started and the
-- next. A run rebuilds every journey with a message in its days or in the day before them:
-- a journey that crosses midnight into the run's days, and one that started the day before
-- and whose "open" flag changes now that its next day is loaded, are rebuilt whole, from
-- their messages from two days before the run to one day after it.
-- One row per journey: `touched`, the first day of $first_day - 1 .. $last_day with one of
-- its messages, picks the step that rebuilds it; first_seen .. last_seen are the days of
-- the messages it is rebuilt from, which that step reads.
-- Messages without a customersessionid or sessionid belong to no journey.
CREATE OR REPLACE TEMP TABLE journey_candidates AS
SELECT
    customersessionid,
    min(day) FILTER (WHERE day >= CAST($first_day AS DATE) - 1 AND day <= $last_day) AS touched,
    min(day) FILTER (WHERE sessionid IS NOT NULL) AS first_seen,
    max(day) FILTER (WHERE sessionid IS NOT NULL) AS last_seen
FROM messages
WHERE provider = $provider
  AND day BETWEEN CAST($first_day AS DATE) - 2 AND CAST($last_day AS DATE) + 1
  AND customersessionid IS NOT NULL
GROUP BY customersessionid
HAVING touched IS NOT NULL;

-- every row the steps replace goes first, so no step removes what an earlier one wrote
DELETE FROM conversation_segments
WHERE provider = $provider
  AND (day BETWEEN $first_day AND $last_day
       OR customersessionid IN (SELECT customersessionid FROM journey_candidates WHERE first_seen IS NOT NULL));
