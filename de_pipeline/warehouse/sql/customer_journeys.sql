-- customer_journeys, one daily step of a run (aggregates.day_steps): the journeys of
-- rebuilt_journeys.sql that started in $step_from..$step_to, from their segments. Steps
-- share out the run's journeys, so each is built once, as by one step over the whole run;
-- rebuilt_journeys.sql removed the rows they replace.

-- One thread: on two, this insert ran out of the 128MB budget with a week of 355k
-- messages a day (each thread holds its own partitions of the grouping).
SET threads = 1;

INSERT INTO customer_journeys BY NAME
WITH segments AS (
    SELECT
        *,
        lag(kind) OVER (PARTITION BY customersessionid ORDER BY position) AS previous_kind
    FROM conversation_segments
    WHERE provider = $provider AND customersessionid IN (
        SELECT customersessionid FROM rebuilt_journeys WHERE day BETWEEN $step_from AND $step_to
    )
),
loaded_days AS (
    SELECT DISTINCT day FROM messages
    WHERE provider = $provider AND day BETWEEN CAST($first_day AS DATE) - 1 AND CAST($last_day AS DATE) + 1
)
SELECT
    $provider AS provider,
    any_value(day) AS day,
    customersessionid,
    min(first_ts) AS start_ts,
    max(last_ts) AS end_ts,
    epoch(max(last_ts) - min(first_ts)) AS duration_seconds,
    count(*) AS segments,
    count(DISTINCT conversation_id) AS conversations,
    string_agg(kind, '>' ORDER BY position) AS path,
    count(*) FILTER (WHERE previous_kind = 'bot' AND kind = 'agent') > 0 AS handoff_to_agent,
    count(*) FILTER (WHERE previous_kind = 'agent' AND kind = 'agent') AS transfers,
    arg_max(is_survey, position) AS ended_with_survey,
    arg_min_null(avg_customer_sentiment, position) AS first_segment_sentiment,
    arg_max_null(avg_customer_sentiment, position) AS last_segment_sentiment,
    arg_max_null(avg_customer_sentiment, position) - arg_min_null(avg_customer_sentiment, position)
        AS sentiment_change,
    arg_min(first_topic, position) FILTER (WHERE first_topic IS NOT NULL) AS first_topic,
    arg_min(sessionchannel, position) AS sessionchannel,
    -- the day after the journey started is not in the warehouse yet: more segments may come
    any_value(day) + 1 NOT IN (SELECT day FROM loaded_days) AS open_at_load
FROM segments
GROUP BY customersessionid
ORDER BY day, customersessionid;

RESET threads;
