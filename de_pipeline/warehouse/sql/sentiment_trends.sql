-- sentiment_trends for the days $first_day..$last_day, from messages. The average is of
-- DECIMALs (sentiment is in [-1, 1]), whose sum is exact: the same in any row order.
DELETE FROM sentiment_trends WHERE provider = $provider AND day BETWEEN $first_day AND $last_day;

INSERT INTO sentiment_trends BY NAME
SELECT
    $provider AS provider,
    day,
    sessionchannel,
    sendertype,
    chattype,
    count(*) AS messages,
    avg(sentiment::DECIMAL(18, 15)) AS avg_sentiment,
    min(sentiment) AS min_sentiment,
    max(sentiment) AS max_sentiment,
    count(*) FILTER (WHERE sentiment > 0) AS positive,
    count(*) FILTER (WHERE sentiment = 0) AS neutral,
    count(*) FILTER (WHERE sentiment < 0) AS negative,
    count(*) FILTER (WHERE sentiment IS NULL) AS without_sentiment
FROM messages
WHERE provider = $provider AND day BETWEEN $first_day AND $last_day
GROUP BY day, sessionchannel, sendertype, chattype
ORDER BY day, sessionchannel, sendertype, chattype;
