-- The journeys a run over $first_day..$last_day rebuilds, and all of their messages.
-- Journeys are assumed to last less than a day, so each lies in the day it started and the
-- next. A run rebuilds every journey with a message in its days or in the day before them:
-- a journey that crosses midnight into the run's days, and one that started the day before
-- and whose "open" flag changes now that its next day is loaded, are rebuilt whole. Their
-- messages are read from two days before to one day after the run.
-- Messages without a customersessionid or sessionid belong to no journey.
CREATE OR REPLACE TEMP TABLE journey_messages AS
SELECT
    day, customersessionid, sessionid, conversation_id, segment_id, ts,
    -- message order inside a journey: by ts, and a tie on the millisecond broken by the
    -- message, so that "the first message's chattype" never depends on row order
    ts_ms::HUGEINT * 18446744073709551616 + hash(message_key) AS message_order,
    sendertype, sendername, chattype, workflow, topic, sentiment, sessionchannel
FROM messages
WHERE day BETWEEN CAST($first_day AS DATE) - 2 AND CAST($last_day AS DATE) + 1
  AND sessionid IS NOT NULL
  AND customersessionid IN (
      SELECT customersessionid FROM messages
      WHERE day BETWEEN CAST($first_day AS DATE) - 1 AND $last_day
        AND customersessionid IS NOT NULL
  );
