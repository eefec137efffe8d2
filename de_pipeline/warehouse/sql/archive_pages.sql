-- One day's pages, exactly as the API returned them, into that day's Parquet file.
-- Each page was fetched for the day's window; its records belong to the day, whatever their
-- `ts` says (parse_records.sql rejects a ts outside it). The day itself is the file's own
-- folder name (day=YYYY-MM-DD, see archive.archive_day).
COPY (
    SELECT
        CAST(json AS VARCHAR) AS raw,
        CAST(regexp_extract(filename, 'page-(\d+)\.json$', 1) AS INTEGER) AS page,
        CAST($fetched_at AS TIMESTAMPTZ) AS fetched_at
    FROM read_json($pages, format = 'array', records = false,
                   columns = {json: 'JSON'}, filename = true)
) TO $target (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384, RETURN_STATS);
