-- Insert the unusable records of `parsed` (parse_records.sql), with their reason.
INSERT INTO rejected_messages BY NAME
SELECT DISTINCT ON (archive_day, raw) $provider AS provider, archive_day, day, ts_ms, reason, raw, fetched_at
FROM parsed
WHERE reason IS NOT NULL
ORDER BY archive_day, raw;
