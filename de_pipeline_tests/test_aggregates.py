"""The daily tables against values computed here, in pandas, from what the simulator served.

Nothing here runs the project's SQL: each expectation is rebuilt from the raw records.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from de_pipeline.defs.runner import run_range
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days, served, unique_messages

LABELS = ("GPE", "DATE", "TIME", "ORG", "PERSON", "MONEY", "EMAIL", "NUMERIC", "ID")
# the wider wrapping first, so that ****X**** is not also counted as **X**
WRAPPINGS = ("****{}****", "**{}**", "[{}]", "<{}>", "{{{}}}", "#{}#")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three simulated days materialised once; the served messages as a pandas frame."""
    monkeypatch = pytest.MonkeyPatch()
    from de_pipeline.simulator import Simulator, SimulatorConfig

    simulator = Simulator(SimulatorConfig(seed=11, messages_per_day=1500, max_page_size=400))
    simulator.start()
    path = str(tmp_path_factory.mktemp("agg") / "w.duckdb")
    monkeypatch.setenv("DE_DUCKDB_PATH", path)
    point_at(monkeypatch, simulator)
    first, last = recent_days(3)
    run_range(first, last)
    frame = unique_messages(served(simulator, first, last))
    frame["day"] = [datetime.fromtimestamp(ts / 1000, UTC).date() for ts in frame.ts]
    for column in ("sessionchannel", "sendertype", "chattype", "topic"):
        frame[column] = frame[column].replace("", None)
    yield frame, path
    simulator.stop()
    monkeypatch.undo()


def _keyed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    for key in keys:
        frame[key] = frame[key].astype(object).where(frame[key].notna(), "<NULL>")
    return frame.set_index(keys).sort_index()


@pytest.mark.dates
def test_sentiment_trends(built):
    built, path = built
    keys = ["day", "sessionchannel", "sendertype", "chattype"]
    rows = []
    for group, part in built.groupby(keys, dropna=False):
        sentiment = part.sentiment.dropna().astype(float)
        rows.append(
            dict(zip(keys, group))
            | {
                "messages": len(part),
                "avg_sentiment": sentiment.mean(),
                "min_sentiment": sentiment.min(),
                "max_sentiment": sentiment.max(),
                "positive": int((sentiment > 0).sum()),
                "neutral": int((sentiment == 0).sum()),
                "negative": int((sentiment < 0).sum()),
            }
        )
    expected = _keyed(pd.DataFrame(rows), keys)
    actual = _keyed(query("SELECT * FROM sentiment_trends", path), keys)[expected.columns]
    assert len(expected) > 20
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, atol=1e-9)


def test_intent_confidence(built):
    built, path = built
    rows = []
    for (day, topic), part in built.groupby(["day", "topic"], dropna=False):
        score = part.score.dropna().astype(float)
        margins = [  # a gap of two scores in [0, 1] (docs/tables.md)
            m[0]["score"] - m[1]["score"]
            for m in part.topmatches
            if isinstance(m, list) and len(m) >= 2 and all(0 <= m[i]["score"] <= 1 for i in (0, 1))
        ]
        rows.append(
            {
                "day": day,
                "topic": topic,
                "messages": len(part),
                "avg_score": score.mean() if len(score) else np.nan,
                "p10_score": np.percentile(score, 10) if len(score) else np.nan,
                "p50_score": np.percentile(score, 50) if len(score) else np.nan,
                "p90_score": np.percentile(score, 90) if len(score) else np.nan,
                "low_confidence": int((score < 0.5).sum()),
                "avg_margin": np.mean(margins) if margins else np.nan,
            }
        )
    expected = _keyed(pd.DataFrame(rows), ["day", "topic"])
    actual = _keyed(query("SELECT * FROM intent_confidence", path), ["day", "topic"])[expected.columns]
    assert expected.index.get_level_values("topic").isin(["<NULL>"]).any(), "no topic-less row"
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, atol=1e-9)


def test_redaction_entity_counts(built):
    built, path = built
    rows = []
    for message in built.itertuples():
        text = message.text if isinstance(message.text, str) else ""
        for label in LABELS:
            found, rest = 0, text
            for wrapping in WRAPPINGS:
                placeholder = wrapping.format(label)
                found += rest.count(placeholder)
                rest = rest.replace(placeholder, " ")
            if found:
                rows.append((message.day, label, message.sessionchannel, message.sendertype, found))
    found = pd.DataFrame(rows, columns=["day", "entity_type", "sessionchannel", "sendertype", "n"])
    keys = ["day", "entity_type", "sessionchannel", "sendertype"]
    expected = found.groupby(keys, dropna=False).agg(occurrences=("n", "sum"), messages=("n", "size"))
    expected = _keyed(expected.reset_index(), keys)
    actual = _keyed(query("SELECT * FROM redaction_entity_counts", path), keys)[expected.columns]
    assert set(expected.index.get_level_values("entity_type")) == set(LABELS)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)
