-- agent_performance for the days $first_day..$last_day, from conversation_segments: one
-- row per day (the day the journeys started) and agent. Only agent segments count. A
-- handoff is an agent segment that comes straight after a bot segment of its journey; a
-- journey's segments share its day, so the window over a day sees the whole journey.
DELETE FROM agent_performance WHERE provider = $provider AND day BETWEEN $first_day AND $last_day;

INSERT INTO agent_performance BY NAME
WITH segments AS (
    SELECT
        day, agent, kind, customer_messages, avg_customer_sentiment,
        lag(kind) OVER (PARTITION BY customersessionid ORDER BY position) AS previous_kind
    FROM conversation_segments
    WHERE provider = $provider AND day BETWEEN $first_day AND $last_day
)
SELECT
    $provider AS provider,
    day,
    agent,
    count(*) AS segments,
    sum(customer_messages) AS customer_messages,
    -- each segment's mean weighted by its customer messages; fsum (Kahan) over the terms in
    -- their own order, so that the result does not depend on the order the rows arrive in
    -- (Kahan alone is not exact: duckdb 1.5's parallel aggregate changed the last digit)
    fsum(avg_customer_sentiment * customer_messages ORDER BY avg_customer_sentiment * customer_messages)
        / nullif(sum(customer_messages) FILTER (WHERE avg_customer_sentiment IS NOT NULL), 0)
        AS avg_customer_sentiment,
    count(*) FILTER (WHERE previous_kind = 'bot') AS handoffs_received
FROM segments
WHERE kind = 'agent'
GROUP BY day, agent
ORDER BY day, agent;
