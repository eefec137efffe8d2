-- What the table registry (tables.py) does not create: the warehouse's own notes, and the
-- views for the common questions. Every table is keyed by `day` (the calendar day in
-- DE_TIMEZONE) and
-- `provider` (the account), and rewritten one account's partition range at a time, in one
-- transaction.

CREATE TABLE IF NOT EXISTS warehouse_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- Views for the common questions.
CREATE OR REPLACE VIEW daily_overview AS
SELECT
    provider,
    day,
    sessionchannel,
    count(*) AS messages,
    count(DISTINCT conversation_id) AS conversations,
    count(DISTINCT customersessionid) AS customer_journeys,
    avg(sentiment::DECIMAL(18, 15)) AS avg_sentiment,
    avg(sentiment::DECIMAL(18, 15)) FILTER (WHERE sendertype = 'customer') AS avg_customer_sentiment
FROM messages
GROUP BY provider, day, sessionchannel;

CREATE OR REPLACE VIEW low_confidence_intents AS
SELECT
    provider,
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
