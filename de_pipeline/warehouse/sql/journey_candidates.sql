-- The journeys a run over $first_day..$last_day rebuilds, and all of their messages.
-- A journey is rebuilt when it has a message in the run's days. Its messages are read from
-- one day before to one day after the run, so a journey that crosses midnight (into the
-- next day, or from the day before) is rebuilt whole. Journeys are assumed to last less
-- than a day. Messages without a customersessionid or sessionid belong to no journey.
CREATE OR REPLACE TEMP TABLE journey_messages AS
SELECT *
FROM messages
WHERE day BETWEEN CAST($first_day AS DATE) - 1 AND CAST($last_day AS DATE) + 1
  AND sessionid IS NOT NULL
  AND customersessionid IN (
      SELECT customersessionid FROM messages
      WHERE day BETWEEN $first_day AND $last_day AND customersessionid IS NOT NULL
  );
