-- Parse archived records into the temp table `parsed`: typed fields, a reason for each
-- record that is not a usable message, and the message_key. messages.sql and
-- rejected_messages.sql insert from it.
-- Parameters: $files (archive files of the days), $timezone. Needs the temp tables
-- day_bounds(day, start_ms, end_ms) and archived_files(file, day), the day of each file of
-- $files. Each archive day holds what the API answered for that day's window, so a
-- message's day is its archive day.
-- The day comes from archived_files, not from hive partitioning: DuckDB takes the first
-- `day=` folder of the path, so an archive under a parent folder named like day=2020-01-01
-- gave every record that day, and the join to day_bounds dropped them all.
--
-- Rules (docs/api.md, "6. Messages"; docs/tables.md, "What lands in rejected_messages"):
--   rejected: not a JSON object; ts missing, or not an integer that fits a BIGINT, written as
--             a JSON integer, a number whose fraction is zeros (1732406400123.0) or a string of
--             such digits ("1732406400123"): 1.5, 1.7e12 and "soon" are rejected; ts outside
--             the day's window (the API answered it for a window it does not belong to), also
--             a ts outside the timestamps DuckDB holds (its `day` stays NULL); sentiment
--             or score not a number or not finite (1e400, "NaN", "Infinity"); sentiment
--             outside [-1, 1] (the dashboard's scale: 1e308 made the sums of sentiment_trends
--             infinite); score outside [0, 1], the reason saying how (negative, a percentage
--             up to 100, above 100); topmatches present but not a list. No record raises:
--             one bad record must not block its run's days.
--   coerced:  numeric strings in sentiment/score become numbers; optional text fields and
--             topic that are "" become NULL; any other JSON in a text field is kept as its
--             JSON text; a sessionid or customersessionid sent as a JSON number keeps its
--             digits as written (12.10 is segment 10 of conversation 12, not 12.1);
--             sessionchannelinfo keeps any JSON value; unknown fields go to extra_fields.
-- The reasons are a fixed set of strings: the run's metadata and docs/queries.md (§13) group by them.

-- The identity of a message: each field with its length in bytes before it, so that no two
-- different messages give the same text (joined by a separator, sender "a<US>b" with text
-- "c" and sender "a" with text "b<US>c" did, and one of them was dropped as a duplicate).
-- Missing, null and "" are the same value. journeys.py keys the stored messages with it too.
CREATE OR REPLACE TEMP MACRO key_field(value) AS strlen(coalesce(value, '')) || ':' || coalesce(value, '');
CREATE OR REPLACE TEMP MACRO message_key(customersessionid, sessionid, ts_ms, sendertype, sendername, text) AS
    md5(key_field(customersessionid) || key_field(sessionid) || key_field(CAST(ts_ms AS VARCHAR))
        || key_field(sendertype) || key_field(sendername) || key_field(text));

-- A top-level number of the record as the API wrote it. DuckDB's JSON functions re-write a
-- number (12.10 becomes 12.1: a sessionid's segment 10 became 1), so the raw text is searched
-- for the field: its key where an object starts or after a comma (inside a string a quote is
-- escaped, so no text can imitate a key), a nested field of the same name told apart by its
-- value. NULL unless that leaves one literal. Only called for numbers with a fraction or an
-- exponent, which are rare: the search costs a pass over the record's text.
CREATE OR REPLACE TEMP MACRO numbers_written(raw, name, value) AS list_distinct(list_filter(
    regexp_extract_all(raw, '[{,]\s*"' || name || '"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)', 1),
    lambda literal: TRY_CAST(literal AS DOUBLE) = TRY_CAST(value AS DOUBLE)));
CREATE OR REPLACE TEMP MACRO number_as_written(raw, name, value) AS
    CASE WHEN len(numbers_written(raw, name, value)) = 1 THEN numbers_written(raw, name, value)[1] END;
-- A JSON value as text: a string's content, a number as written (see above), any other JSON
-- as its JSON text.
CREATE OR REPLACE TEMP MACRO text_of(raw, name, value) AS
    CASE WHEN json_type(value) = 'DOUBLE' THEN coalesce(number_as_written(raw, name, value), value ->> '$')
         ELSE value ->> '$' END;

-- One thread: the parse holds about 45MB per thread (a row group of the archive, 16384
-- records, with its JSON parsed and every field derived), so with DuckDB's default of a
-- thread per core it took 56MB on one thread, 130MB on two and 355MB on eight for a day of
-- 100,000 messages, past the default DE_DUCKDB_MEMORY_LIMIT=192MB from two cores on (the
-- build's DuckDB gets 122MiB of it), and a lake's run of 30,000 a day failed there too.
SET threads = 1;

CREATE OR REPLACE TEMP TABLE parsed AS
WITH archived AS (
    SELECT
        files.day AS archive_day,
        coalesce(r.raw, 'null') AS raw,  -- archives written before read_json_objects hold a null as NULL
        r.fetched_at,
        json_transform(r.raw, '{
            "ts": "JSON", "timestamp": "VARCHAR", "text": "VARCHAR", "sessionid": "JSON",
            "customersessionid": "JSON", "sendertype": "VARCHAR", "sendername": "VARCHAR",
            "senderemail": "VARCHAR", "sentiment": "JSON", "workflow": "VARCHAR",
            "workflownodeid": "VARCHAR", "topic": "VARCHAR", "score": "JSON",
            "topmatches": "JSON", "lang": "VARCHAR", "sessionchannel": "VARCHAR",
            "sessionchannelinfo": "JSON", "chattype": "VARCHAR"}') AS f
    FROM read_parquet($files, hive_partitioning = false, filename = true) AS r
    JOIN archived_files AS files ON files.file = r.filename
),
typed AS (
    SELECT
        *,
        starts_with(raw, '{') AS is_object,
        json_type(f.ts) AS ts_type,
        -- an integer, as a JSON integer, a number with a fraction of zeros, or a string
        CASE WHEN json_type(f.ts) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR')
                 AND regexp_full_match(text_of(raw, 'ts', f.ts), '-?\d+(\.0+)?')
             THEN TRY_CAST(split_part(text_of(raw, 'ts', f.ts), '.', 1) AS BIGINT) END AS ts_ms,
        text_of(raw, 'sessionid', f.sessionid) AS sessionid,
        -- a number whose digits as written cannot be told (a nested field of the same name and
        -- value written otherwise) is kept, not split: 12.1 may have been 12.10
        json_type(f.sessionid) = 'DOUBLE' AND number_as_written(raw, 'sessionid', f.sessionid) IS NULL
            AS sessionid_unsure,
        text_of(raw, 'customersessionid', f.customersessionid) AS customersessionid,
        json_type(f.sentiment) AS sentiment_type,
        TRY_CAST(f.sentiment ->> '$' AS DOUBLE) AS sentiment,
        json_type(f.score) AS score_type,
        TRY_CAST(f.score ->> '$' AS DOUBLE) AS score,
        json_type(f.topmatches) AS topmatches_type
    FROM archived JOIN day_bounds AS b ON b.day = archived.archive_day
),
classified AS (
    SELECT
        *,
        CASE
            WHEN NOT is_object THEN 'not a JSON object'
            WHEN ts_type IS NULL OR ts_type = 'NULL' THEN 'ts is missing'
            WHEN ts_ms IS NULL THEN 'ts is not an integer (epoch milliseconds)'
            WHEN ts_ms < start_ms OR ts_ms >= end_ms
                THEN 'ts is outside the requested window'
            WHEN sentiment_type NOT IN ('NULL', 'BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR')
                OR (sentiment_type = 'VARCHAR' AND sentiment IS NULL)
                THEN 'sentiment is not a number'
            WHEN NOT isfinite(sentiment) THEN 'sentiment is not finite'
            WHEN sentiment < -1 OR sentiment > 1 THEN 'sentiment is outside [-1, 1]'
            WHEN score_type NOT IN ('NULL', 'BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR')
                OR (score_type = 'VARCHAR' AND score IS NULL)
                THEN 'score is not a number'
            WHEN NOT isfinite(score) THEN 'score is not finite'
            WHEN score < 0 THEN 'score is outside [0, 1] (negative)'
            WHEN score > 1 AND score <= 100 THEN 'score is outside [0, 1] (looks like a percentage)'
            WHEN score > 100 THEN 'score is outside [0, 1] (above 100)'
            WHEN topmatches_type NOT IN ('NULL', 'ARRAY') THEN 'topmatches is not a list'
        END AS reason
    FROM typed
)
SELECT
    c.archive_day,
    c.fetched_at,
    c.reason,
    c.ts_ms,
    CASE WHEN c.reason IS NULL THEN c.archive_day
         -- NULL for a ts outside DuckDB's timestamps (290,000 years from 1970): rejected, not an error
         ELSE try(CAST(timezone($timezone, epoch_ms(c.ts_ms)::TIMESTAMPTZ) AS DATE)) END AS day,
    CASE WHEN c.reason IS NULL THEN NULL ELSE c.raw END AS raw,
    hash(c.raw) AS raw_hash,
    message_key(c.customersessionid, c.sessionid, c.ts_ms, c.f.sendertype, c.f.sendername, c.f.text)
        AS message_key,
    c.sessionid,
    CASE WHEN NOT c.sessionid_unsure AND regexp_full_match(c.sessionid, '\d+\.\d+')
             AND TRY_CAST(split_part(c.sessionid, '.', 1) AS BIGINT) IS NOT NULL
             AND TRY_CAST(split_part(c.sessionid, '.', 2) AS INTEGER) IS NOT NULL
         THEN struct_pack(
             conversation := CAST(split_part(c.sessionid, '.', 1) AS BIGINT),
             segment := CAST(split_part(c.sessionid, '.', 2) AS INTEGER))
    END AS session_parts,
    c.customersessionid,
    NULLIF(c.f.sendertype, '') AS sendertype,
    NULLIF(c.f.sendername, '') AS sendername,
    NULLIF(c.f.senderemail, '') AS senderemail,
    c.f.text AS text,
    c.sentiment,
    NULLIF(c.f.workflow, '') AS workflow,
    NULLIF(c.f.workflownodeid, '') AS workflownodeid,
    NULLIF(c.f.topic, '') AS topic,
    c.score,
    CASE WHEN c.topmatches_type = 'ARRAY' THEN c.f.topmatches END AS topmatches,
    NULLIF(c.f.lang, '') AS lang,
    NULLIF(c.f.sessionchannel, '') AS sessionchannel,
    CASE WHEN json_type(c.f.sessionchannelinfo) <> 'NULL' THEN c.f.sessionchannelinfo END
        AS sessionchannelinfo,
    NULLIF(c.f.chattype, '') AS chattype,
    c.f.timestamp AS timestamp_text,
    -- only the rare record with a field the contract does not name pays for the merge. The
    -- test is an IN list per key: list_has_all over the literal list cost 2.5 times the
    -- json_keys parse itself (0.35 s and 0.14 s per 282,000 records on one thread)
    CASE WHEN c.reason IS NULL AND len(list_filter(json_keys(c.raw), lambda key: key NOT IN (
        'text', 'timestamp', 'ts', 'sendername', 'senderemail', 'sendertype', 'sessionid',
        'sentiment', 'workflow', 'workflownodeid', 'topic', 'score', 'topmatches', 'lang',
        'customersessionid', 'sessionchannel', 'sessionchannelinfo', 'chattype'))) > 0
    THEN NULLIF(CAST(json_merge_patch(c.raw, '{
        "text": null, "timestamp": null, "ts": null, "sendername": null, "senderemail": null,
        "sendertype": null, "sessionid": null, "sentiment": null, "workflow": null,
        "workflownodeid": null, "topic": null, "score": null, "topmatches": null, "lang": null,
        "customersessionid": null, "sessionchannel": null, "sessionchannelinfo": null,
        "chattype": null}') AS VARCHAR), '{}') END AS extra_fields
FROM classified AS c;

RESET threads;
