-- conversation_segments, one daily step of a run (aggregates.day_steps): the journeys of
-- journey_candidates.sql whose `touched` day is in $step_from..$step_to, from their
-- messages. Steps share out the run's journeys, so each is built once, from the messages a
-- single step over the whole run would read, while DuckDB holds one day's journeys (a week
-- at once ran out of the 128MB budget at 300k messages a day). journey_candidates.sql
-- removed the rows they replace. Built in statements that DuckDB can spill; the per-segment
-- aggregate runs on one thread, which halves the hash-table partitions held at once.

-- the days holding the step's journeys' messages, as constants the scan below can skip by
SET VARIABLE journey_days = (
    SELECT [min(first_seen), max(last_seen)] FROM journey_candidates
    WHERE touched BETWEEN $step_from AND $step_to
);

CREATE OR REPLACE TEMP TABLE journey_messages AS
SELECT
    day, customersessionid, sessionid, conversation_id, segment_id, ts,
    -- message order inside a journey: by ts, and a tie on the millisecond broken by the
    -- message, so that "the first message's chattype" never depends on row order
    ts_ms::HUGEINT * 18446744073709551616 + hash(message_key) AS message_order,
    sendertype, sendername, chattype, workflow, topic, sentiment, sessionchannel
FROM messages
WHERE provider = $provider
  AND day BETWEEN getvariable('journey_days')[1] AND getvariable('journey_days')[2]
  AND sessionid IS NOT NULL
  AND customersessionid IN (
      SELECT customersessionid FROM journey_candidates
      WHERE touched BETWEEN $step_from AND $step_to
  );

SET threads = 1;

CREATE OR REPLACE TEMP TABLE segment_stats AS
SELECT
    customersessionid,
    sessionid,
    any_value(conversation_id) AS conversation_id,
    any_value(segment_id) AS segment_id,
    CASE WHEN bool_or(chattype = 'agent' OR sendertype = 'agent') THEN 'agent' ELSE 'bot' END AS kind,
    coalesce(bool_or(workflow ILIKE '%survey%'), false) AS is_survey,
    arg_min(chattype, message_order) AS chattype,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    count(*) AS messages,
    count(*) FILTER (WHERE sendertype = 'customer') AS customer_messages,
    count(*) FILTER (WHERE sendertype = 'bot') AS bot_messages,
    count(*) FILTER (WHERE sendertype = 'agent') AS agent_messages,
    arg_min(sendername, message_order) FILTER (WHERE sendertype = 'agent') AS agent,
    avg(sentiment::DECIMAL(18, 15)) FILTER (WHERE sendertype = 'customer') AS avg_customer_sentiment,
    arg_min(topic, message_order) FILTER (WHERE topic IS NOT NULL) AS first_topic,
    arg_min(sessionchannel, message_order) AS sessionchannel,
    min(day) AS first_day
FROM journey_messages
GROUP BY customersessionid, sessionid;

RESET threads;

-- the segment's most frequent topic; a tie goes to the first in alphabetical order
CREATE OR REPLACE TEMP TABLE segment_topics AS
SELECT customersessionid, sessionid, topic AS dominant_topic
FROM (
    SELECT customersessionid, sessionid, topic, count(*) AS n
    FROM journey_messages WHERE topic IS NOT NULL GROUP BY ALL
)
QUALIFY row_number() OVER (PARTITION BY customersessionid, sessionid ORDER BY n DESC, topic) = 1;

INSERT INTO conversation_segments BY NAME
SELECT
    $provider AS provider,
    -- a journey's day is the day it started
    min(s.first_day) OVER (PARTITION BY s.customersessionid) AS day,
    s.customersessionid,
    s.sessionid,
    s.conversation_id,
    s.segment_id,
    row_number() OVER (PARTITION BY s.customersessionid
                       ORDER BY s.first_ts, s.conversation_id, s.segment_id, s.sessionid) AS position,
    s.kind,
    s.is_survey,
    s.chattype,
    s.first_ts,
    s.last_ts,
    s.messages,
    s.customer_messages,
    s.bot_messages,
    s.agent_messages,
    s.agent,
    s.avg_customer_sentiment,
    t.dominant_topic,
    s.first_topic,
    s.sessionchannel
FROM segment_stats AS s
LEFT JOIN segment_topics AS t USING (customersessionid, sessionid)
ORDER BY day, s.customersessionid, position;
