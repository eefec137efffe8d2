-- conversation_segments for the journeys with a message in $first_day..$last_day.
-- Needs journey_messages (journey_candidates.sql).
DELETE FROM conversation_segments
WHERE day BETWEEN $first_day AND $last_day
   OR customersessionid IN (SELECT customersessionid FROM journey_messages);

INSERT INTO conversation_segments
WITH topics AS (
    SELECT customersessionid, sessionid, topic, count(*) AS n
    FROM journey_messages WHERE topic IS NOT NULL GROUP BY ALL
),
dominant AS (
    SELECT customersessionid, sessionid, first(topic ORDER BY n DESC, topic) AS dominant_topic
    FROM topics GROUP BY ALL
),
segments AS (
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
        favg(sentiment) FILTER (WHERE sendertype = 'customer') AS avg_customer_sentiment,
        arg_min(topic, message_order) FILTER (WHERE topic IS NOT NULL) AS first_topic,
        arg_min(sessionchannel, message_order) AS sessionchannel
    FROM journey_messages
    GROUP BY customersessionid, sessionid
),
journey_start AS (
    SELECT customersessionid, min(day) AS day FROM journey_messages GROUP BY ALL
)
SELECT
    j.day,
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
    d.dominant_topic,
    s.first_topic,
    s.sessionchannel
FROM segments AS s
JOIN journey_start AS j USING (customersessionid)
LEFT JOIN dominant AS d USING (customersessionid, sessionid)
ORDER BY j.day, s.customersessionid, position;
