-- The pages of one run, exactly as the API returned them, into one Parquet file per day.
-- Each page was fetched for one day's window; its records are archived under that day
-- (the staged file is named day=YYYY-MM-DD/page-NNNNNNN.json), whatever their `ts` says.
COPY (
    SELECT
        CAST(regexp_extract(filename, 'day=(\d{4}-\d{2}-\d{2})', 1) AS DATE) AS day,
        CAST(json AS VARCHAR) AS raw,
        CAST(regexp_extract(filename, 'page-(\d+)\.json$', 1) AS INTEGER) AS page,
        CAST($fetched_at AS TIMESTAMPTZ) AS fetched_at
    FROM read_json($pages, format = 'array', records = false,
                   columns = {json: 'JSON'}, filename = true)
) TO $target (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd, ROW_GROUP_SIZE 16384,
       RETURN_STATS);
