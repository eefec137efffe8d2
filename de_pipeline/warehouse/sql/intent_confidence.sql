-- intent_confidence for the days $first_day..$last_day, from messages.
-- Messages with no topic form one row per day with topic NULL. Averages are of DECIMALs,
-- whose sum is exact, so they never depend on the order in which DuckDB reads the rows.
DELETE FROM intent_confidence WHERE provider = $provider AND day BETWEEN $first_day AND $last_day;

INSERT INTO intent_confidence BY NAME
WITH scored AS (
    SELECT
        day,
        topic,
        score,
        TRY_CAST(topmatches ->> '$[0].score' AS DOUBLE) AS best,
        TRY_CAST(topmatches ->> '$[1].score' AS DOUBLE) AS second
    FROM messages
    WHERE provider = $provider AND day BETWEEN $first_day AND $last_day
)
SELECT
    $provider AS provider,
    day,
    topic,
    count(*) AS messages,
    avg(score::DECIMAL(18, 15)) AS avg_score,
    quantile_cont(score, 0.1) AS p10_score,
    quantile_cont(score, 0.5) AS p50_score,
    quantile_cont(score, 0.9) AS p90_score,
    count(*) FILTER (WHERE score < $low_confidence) AS low_confidence,
    -- topmatches' elements are not checked: a gap only between two scores in [0, 1], as score is
    avg(CASE WHEN best BETWEEN 0 AND 1 AND second BETWEEN 0 AND 1 THEN (best - second)::DECIMAL(18, 15) END)
        AS avg_margin
FROM scored
GROUP BY day, topic
ORDER BY day, topic NULLS FIRST;
