-- Insert the usable records of `parsed` (parse_records.sql) into messages.
INSERT INTO messages
SELECT
    message_key, day, epoch_ms(ts_ms)::TIMESTAMPTZ AS ts, ts_ms, sessionid,
    session_parts.conversation AS conversation_id, session_parts.segment AS segment_id,
    customersessionid, sendertype, sendername, senderemail, text, sentiment, workflow,
    workflownodeid, topic, score, topmatches, lang, sessionchannel, sessionchannelinfo,
    chattype, timestamp_text, extra_fields, fetched_at
FROM parsed
WHERE reason IS NULL
-- a message that arrived twice is stored once; the choice among copies is deterministic
QUALIFY row_number() OVER (PARTITION BY message_key ORDER BY raw_hash) = 1
ORDER BY day, ts_ms;
