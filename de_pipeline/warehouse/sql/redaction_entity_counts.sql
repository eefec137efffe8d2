-- redaction_entity_counts for the days $first_day..$last_day, from messages.
-- $placeholder_regex finds every placeholder; $label_regex finds the label inside one.
DELETE FROM redaction_entity_counts WHERE provider = $provider AND day BETWEEN $first_day AND $last_day;

INSERT INTO redaction_entity_counts BY NAME
WITH placeholders AS (
    SELECT
        day,
        sessionchannel,
        sendertype,
        message_key,
        unnest(regexp_extract_all(text, $placeholder_regex)) AS placeholder
    FROM messages
    WHERE provider = $provider AND day BETWEEN $first_day AND $last_day
)
SELECT
    $provider AS provider,
    day,
    regexp_extract(placeholder, $label_regex, 1) AS entity_type,
    sessionchannel,
    sendertype,
    count(*) AS occurrences,
    count(DISTINCT message_key) AS messages
FROM placeholders
GROUP BY ALL
ORDER BY ALL;
