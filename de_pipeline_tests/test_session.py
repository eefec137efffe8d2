"""One journey from the customer-session endpoint: `de-pipeline session` and the
`refresh_journey` job."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from de_pipeline.cli import main
from de_pipeline.defs.definitions import defs
from de_pipeline.defs.runner import failure_message, run_instance, run_range
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days, served, unique_messages


@pytest.fixture
def loaded(start_simulator, monkeypatch, clean_environment):
    simulator = start_simulator(messages_per_day=400)
    point_at(monkeypatch, simulator)
    first, last = recent_days(2)
    run_range(first, last)
    journeys = query("SELECT customersessionid, day FROM customer_journeys WHERE transfers >= 1 ORDER BY ALL")
    csid = journeys.customersessionid[0]
    expected = unique_messages(
        [r for r in served(simulator, first, last) if isinstance(r, dict) and r.get("customersessionid") == csid]
    )
    return csid, first, last, expected, clean_environment


def damage(path, csid: str) -> None:
    """Lose two of the journey's messages and invent one, as a stale copy would."""
    connection = duckdb.connect(str(path))
    connection.execute(
        "DELETE FROM messages WHERE message_key IN (SELECT message_key FROM messages "
        "WHERE customersessionid = $csid ORDER BY ts_ms LIMIT 2)",
        {"csid": csid},
    )
    connection.execute(
        "INSERT INTO messages SELECT * REPLACE ('invented' AS message_key, 'invented' AS text) "
        "FROM messages WHERE customersessionid = $csid LIMIT 1",
        {"csid": csid},
    )
    connection.close()


def test_session_prints_the_transcript_and_the_differences(loaded, capsys):
    csid, first, last, expected, path = loaded
    damage(path, csid)
    assert main(["session", csid, "--start", str(first), "--end", str(last)]) == 0
    out = capsys.readouterr().out
    assert f"journey {csid}: {len(expected)} messages" in out
    assert out.count("-- segment ") == expected.sessionid.nunique()
    assert "2 missing from the warehouse, 1 only in the warehouse" in out
    assert "only in warehouse:" in out and "invented" in out


def test_session_compares_days_stored_with_the_older_message_key(loaded, capsys):
    csid, first, last, expected, path = loaded
    with duckdb.connect(str(path)) as connection:  # the key's older form: the fields joined by U+001F
        connection.execute(
            "UPDATE messages SET message_key = md5(concat_ws(chr(31), coalesce(customersessionid, ''), "
            "coalesce(sessionid, ''), CAST(ts_ms AS VARCHAR), coalesce(sendertype, ''), coalesce(sendername, ''), "
            "coalesce(text, '')))"
        )
    assert main(["session", csid, "--start", str(first), "--end", str(last)]) == 0
    out = capsys.readouterr().out
    assert f"journey {csid}: {len(expected)} messages" in out
    assert "0 missing from the warehouse, 0 only in the warehouse" in out


def test_session_for_an_unknown_id_is_empty(loaded, capsys):
    _, first, last, _, _ = loaded
    assert main(["session", "no.such", "--start", str(first), "--end", str(last)]) == 0
    assert "no messages between" in capsys.readouterr().out


def test_refresh_journey_restores_the_rows_without_duplicates(loaded):
    csid, first, last, expected, path = loaded
    damage(path, csid)
    job = defs().resolve_job_def("refresh_journey")
    config = {
        "ops": {"refresh_journey_rows": {"config": {"customersessionid": csid, "start": str(first), "end": str(last)}}}
    }
    with run_instance() as instance:
        for _ in range(2):  # twice: a refresh never duplicates
            assert job.execute_in_process(run_config=config, instance=instance).success
    stored = query(f"SELECT * FROM messages WHERE customersessionid = '{csid}' ORDER BY ts_ms")
    assert len(stored) == len(expected) and stored.message_key.is_unique
    assert "invented" not in set(stored.text)
    journey = query(f"SELECT * FROM customer_journeys WHERE customersessionid = '{csid}'")
    assert len(journey) == 1 and journey.segments[0] == expected.sessionid.nunique()
    totals = query(
        "SELECT (SELECT sum(messages) FROM sentiment_trends) AS trends, (SELECT count(*) FROM messages) AS rows"
    )
    assert totals.trends[0] == totals.rows[0]


def test_refresh_journey_rejects_a_backwards_window(loaded):
    csid, first, last, _, _ = loaded
    job = defs().resolve_job_def("refresh_journey")
    config = {
        "ops": {
            "refresh_journey_rows": {
                "config": {"customersessionid": csid, "start": str(last), "end": str(first - timedelta(days=1))}
            }
        }
    }
    with run_instance() as instance:
        result = job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)
    assert not result.success
    assert "ends" in failure_message(result) and "before it starts" in failure_message(result)
