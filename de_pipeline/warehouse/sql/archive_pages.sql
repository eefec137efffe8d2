-- One day's pages, exactly as the API returned them, into that day's Parquet file.
-- Each page was fetched for the day's window; its records belong to the day, whatever their
-- `ts` says (parse_records.sql rejects a ts outside it). The day itself is the file's own
-- folder name (day=YYYY-MM-DD, see archive.archive_day).
-- read_json_objects keeps each element's text as sent: read_json re-wrote numbers
-- (a sessionid sent as the number 12.10 became 12.1, segment 1 instead of 10; 1e+308 became 1e308).
-- A row group ends at 16384 records or 8MB, whichever comes first: the writer keeps to a
-- third of the memory budget (settings.FETCH_MEMORY_SHARE) beside the JSON reader's 32 MiB
-- buffer, and 16384 records of 840 bytes did not fit in 64MB.
COPY (
    SELECT
        CAST(json AS VARCHAR) AS raw,
        CAST(regexp_extract(filename, 'page-(\d+)\.json$', 1) AS INTEGER) AS page,
        CAST($fetched_at AS TIMESTAMPTZ) AS fetched_at
    FROM read_json_objects($pages, format = 'array', filename = true)
) TO $target (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384, ROW_GROUP_SIZE_BYTES '8MB', RETURN_STATS);
