-- The warehouse's tables. Every table is keyed by `day` (the calendar day in DE_TIMEZONE)
-- and rewritten one partition range at a time, in one transaction.

CREATE TABLE IF NOT EXISTS warehouse_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per unique message.
CREATE TABLE IF NOT EXISTS messages (
    message_key VARCHAR NOT NULL,      -- md5 of customersessionid, sessionid, ts, sendertype, sendername, text
    day DATE NOT NULL,                 -- calendar day of ts in DE_TIMEZONE
    ts TIMESTAMPTZ NOT NULL,
    ts_ms BIGINT NOT NULL,             -- epoch milliseconds, as the API sent it
    sessionid VARCHAR,                 -- "conversation.segment"
    conversation_id BIGINT,            -- NULL when sessionid is not two integers joined by a dot
    segment_id INTEGER,
    customersessionid VARCHAR,
    sendertype VARCHAR,                -- customer, bot or agent (unknown values kept)
    sendername VARCHAR,
    senderemail VARCHAR,
    text VARCHAR,
    sentiment DOUBLE,
    workflow VARCHAR,
    workflownodeid VARCHAR,
    topic VARCHAR,                     -- NULL when no intent matched
    score DOUBLE,                      -- confidence of topic, 0 to 1
    topmatches JSON,                   -- up to 3 {topic, score, text}, best first
    lang VARCHAR,
    sessionchannel VARCHAR,
    sessionchannelinfo JSON,
    chattype VARCHAR,                  -- bot or agent
    timestamp_text VARCHAR,            -- the API's human-readable `timestamp`
    extra_fields JSON,                 -- fields the contract does not name, kept as sent
    fetched_at TIMESTAMPTZ NOT NULL
);

-- Records that are not usable messages, with the reason. Nothing is dropped silently.
CREATE TABLE IF NOT EXISTS rejected_messages (
    archive_day DATE NOT NULL,         -- the partition the record arrived in
    day DATE,                          -- the record's own day, when its ts is known
    ts_ms BIGINT,
    reason VARCHAR NOT NULL,
    raw VARCHAR NOT NULL,              -- the record as the API sent it (JSON text)
    fetched_at TIMESTAMPTZ NOT NULL
);

-- Sentiment per day, channel, sender type and chat type.
CREATE TABLE IF NOT EXISTS sentiment_trends (
    day DATE NOT NULL,
    sessionchannel VARCHAR,
    sendertype VARCHAR,
    chattype VARCHAR,
    messages BIGINT NOT NULL,          -- all messages of the group, with or without sentiment
    avg_sentiment DOUBLE,
    min_sentiment DOUBLE,
    max_sentiment DOUBLE,
    positive BIGINT NOT NULL,          -- sentiment > 0
    neutral BIGINT NOT NULL,           -- sentiment = 0
    negative BIGINT NOT NULL,          -- sentiment < 0
    without_sentiment BIGINT NOT NULL  -- sentiment missing
);

-- Intent confidence per day and topic; topic NULL gathers the messages with no intent.
CREATE TABLE IF NOT EXISTS intent_confidence (
    day DATE NOT NULL,
    topic VARCHAR,
    messages BIGINT NOT NULL,
    avg_score DOUBLE,
    p10_score DOUBLE,                  -- percentiles interpolate (quantile_cont)
    p50_score DOUBLE,
    p90_score DOUBLE,
    low_confidence BIGINT NOT NULL,    -- score below DE_LOW_CONFIDENCE
    avg_margin DOUBLE                  -- mean of topmatches[1].score - topmatches[2].score
);

-- Redaction placeholders per day, entity type, channel and sender type.
CREATE TABLE IF NOT EXISTS redaction_entity_counts (
    day DATE NOT NULL,
    entity_type VARCHAR NOT NULL,
    sessionchannel VARCHAR,
    sendertype VARCHAR,
    occurrences BIGINT NOT NULL,       -- placeholders found
    messages BIGINT NOT NULL           -- messages with at least one
);

-- Views for the common questions.
CREATE OR REPLACE VIEW daily_overview AS
SELECT
    day,
    sessionchannel,
    count(*) AS messages,
    count(DISTINCT conversation_id) AS conversations,
    count(DISTINCT customersessionid) AS customer_journeys,
    favg(sentiment) AS avg_sentiment,
    favg(sentiment) FILTER (WHERE sendertype = 'customer') AS avg_customer_sentiment
FROM messages
GROUP BY day, sessionchannel;

CREATE OR REPLACE VIEW low_confidence_intents AS
SELECT
    day,
    topic,
    messages,
    low_confidence,
    low_confidence / messages AS low_confidence_share,
    avg_score,
    p10_score,
    avg_margin
FROM intent_confidence
WHERE topic IS NOT NULL AND low_confidence > 0;

-- One row per segment (sessionid) of a customer journey (a malformed sessionid that several
-- journeys share gives one row in each). `day` is the day the journey
-- started, so a journey's segments share its partition.
CREATE TABLE IF NOT EXISTS conversation_segments (
    day DATE NOT NULL,                 -- the day of the journey's first message
    customersessionid VARCHAR NOT NULL,
    sessionid VARCHAR NOT NULL,
    conversation_id BIGINT,            -- NULL when sessionid does not parse
    segment_id INTEGER,
    position INTEGER NOT NULL,         -- 1, 2, ... in the journey, by first message
    kind VARCHAR NOT NULL,             -- agent (an agent took part) or bot
    is_survey BOOLEAN NOT NULL,        -- a bot segment whose workflow is a survey
    chattype VARCHAR,                  -- the chattype of the segment's first message
    first_ts TIMESTAMPTZ NOT NULL,
    last_ts TIMESTAMPTZ NOT NULL,
    messages BIGINT NOT NULL,
    customer_messages BIGINT NOT NULL,
    bot_messages BIGINT NOT NULL,
    agent_messages BIGINT NOT NULL,
    agent VARCHAR,                     -- sendername of the (first) agent, if any
    avg_customer_sentiment DOUBLE,
    dominant_topic VARCHAR,            -- the most frequent topic (ties: alphabetical)
    first_topic VARCHAR,
    sessionchannel VARCHAR
);

-- One row per customer journey (customersessionid), across bot and agent segments.
CREATE TABLE IF NOT EXISTS customer_journeys (
    day DATE NOT NULL,                 -- the day of the journey's first message
    customersessionid VARCHAR NOT NULL,
    start_ts TIMESTAMPTZ NOT NULL,
    end_ts TIMESTAMPTZ NOT NULL,
    duration_seconds DOUBLE NOT NULL,
    segments BIGINT NOT NULL,
    conversations BIGINT NOT NULL,
    path VARCHAR NOT NULL,             -- segment kinds in order, e.g. bot>agent>agent>bot
    handoff_to_agent BOOLEAN NOT NULL, -- a bot segment was followed by an agent segment
    transfers BIGINT NOT NULL,         -- agent segment followed by another agent segment
    ended_with_survey BOOLEAN NOT NULL,
    first_segment_sentiment DOUBLE,    -- the customer's average sentiment in the first segment
    last_segment_sentiment DOUBLE,     -- ... and in the last segment
    sentiment_change DOUBLE,           -- last minus first
    first_topic VARCHAR,
    sessionchannel VARCHAR,            -- the channel of the first message
    open_at_load BOOLEAN NOT NULL      -- the day after it started was not loaded yet: it may grow
);
