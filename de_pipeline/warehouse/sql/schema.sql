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
