"""agent_performance against the same numbers computed in pandas from conversation_segments."""

from __future__ import annotations

import pandas as pd
import pytest

from de_pipeline.defs.runner import run_range
from de_pipeline_tests.conftest import point_at
from de_pipeline_tests.helpers import query, recent_days


@pytest.mark.dates
def test_agent_performance_matches_its_segments(start_simulator, monkeypatch):
    simulator = start_simulator(seed=7, messages_per_day=600)
    point_at(monkeypatch, simulator)
    first, last = recent_days(3)
    results = run_range(first, last)

    segments = query("SELECT * FROM conversation_segments ORDER BY customersessionid, position")
    segments["previous_kind"] = segments.groupby("customersessionid").kind.shift()
    agent = segments[segments.kind == "agent"].copy()
    agent["weighted"] = agent.avg_customer_sentiment * agent.customer_messages
    agent["with_sentiment"] = agent.customer_messages.where(agent.avg_customer_sentiment.notna(), 0)
    agent["handoff"] = agent.previous_kind == "bot"
    grouped = agent.groupby(["day", agent.agent.fillna("<none>")], dropna=False)
    expected = pd.DataFrame(
        {
            "segments": grouped.size(),
            "customer_messages": grouped.customer_messages.sum(),
            "avg_customer_sentiment": grouped.weighted.sum() / grouped.with_sentiment.sum().replace(0, float("nan")),
            "handoffs_received": grouped.handoff.sum(),
        }
    )
    actual = query("SELECT * FROM agent_performance")
    actual = actual.set_index(["day", actual.agent.fillna("<none>")]).drop(columns="agent")[expected.columns]

    assert len(expected) > 0 and expected.handoffs_received.sum() > 0
    pd.testing.assert_frame_equal(actual.sort_index(), expected.sort_index(), check_dtype=False, atol=1e-9)
    checks = [
        c
        for r in results
        for c in r.get_asset_check_evaluations()
        if c.asset_key.to_user_string() == "agent_performance"
    ]
    assert checks and all(c.passed for c in checks)
