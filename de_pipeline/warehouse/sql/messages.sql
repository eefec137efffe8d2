-- Insert the usable records of `parsed` (parse_records.sql) into messages.
-- Runs once per step of a run, a day (messages.load_messages), so the dedup holds one day.
-- No ORDER BY: a run appends its days one after another, so reading one day touches only
-- the row groups that the day's insert wrote, however long the history. Sorting them
-- spilled under the memory limit and took a third of the load (benchmarks/ingest.py).
-- One thread: it writes whole row groups straight to the file. Two threads wrote partial
-- ones, which the next checkpoint rewrote, taking longer than the insert saved.
SET threads = 1;

INSERT INTO messages BY NAME
SELECT
    $provider AS provider, message_key, day, epoch_ms(ts_ms)::TIMESTAMPTZ AS ts, ts_ms, sessionid,
    session_parts.conversation AS conversation_id, session_parts.segment AS segment_id,
    customersessionid, sendertype, sendername, senderemail, text, sentiment, workflow,
    workflownodeid, topic, score, topmatches, lang, sessionchannel, sessionchannelinfo,
    chattype, timestamp_text, extra_fields, fetched_at
FROM parsed
WHERE reason IS NULL
-- a message that arrived twice is stored once; the choice among copies is deterministic
QUALIFY row_number() OVER (PARTITION BY message_key ORDER BY raw_hash) = 1;

RESET threads;
