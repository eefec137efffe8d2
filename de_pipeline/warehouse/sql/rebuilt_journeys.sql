-- Once per run over $first_day..$last_day, before the daily steps of customer_journeys.sql:
-- the journeys the run rebuilds, and the removal of their rows. The run's
-- conversation_segments rebuilt the journeys with a message in the day before the run or
-- in its days; they started from two days before the run (journeys last less than a day),
-- so every journey that started from then on is rebuilt, from its segments. `day` (the day
-- it started) picks the step that rebuilds it.
CREATE OR REPLACE TEMP TABLE rebuilt_journeys AS
SELECT customersessionid, min(day) AS day FROM conversation_segments
WHERE provider = $provider AND day BETWEEN CAST($first_day AS DATE) - 2 AND $last_day
GROUP BY customersessionid;

-- every row the steps replace goes first, so no step removes what an earlier one wrote
DELETE FROM customer_journeys
WHERE provider = $provider
  AND (day BETWEEN CAST($first_day AS DATE) - 2 AND $last_day
       OR customersessionid IN (SELECT customersessionid FROM rebuilt_journeys));
