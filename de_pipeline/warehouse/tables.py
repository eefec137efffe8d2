"""The warehouse's tables, one registry entry each. Everything else is derived from here:
the DDL (with each column's description as a DuckDB comment), the Dagster assets, their
checks, column schemas and plotted metrics, the export allowlist, the demo's summary, the
table docs (docs/tables.md) and the tests' list of tables.

A daily table is computed in SQL from its upstream table by `sql/<name>.sql`, one day per
step inside one transaction per run (aggregates.py). CONTRIBUTING.md shows how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type, with NOT NULL where it holds
    description: str

    @property
    def base_type(self) -> str:
        return self.type.removesuffix(" NOT NULL")


@dataclass(frozen=True)
class Reconcile:
    """Per day, the table's own count of what it was built from, next to the count of that
    in its upstream table; a day where the two differ fails the table's check."""

    counted: str  # an aggregate over the table's rows of a day, e.g. "sum(messages)"
    expected: str  # a query of (day, n) over upstream, for the days in the temp table day_bounds
    where: str = "TRUE"  # which of the table's rows `counted` covers


@dataclass(frozen=True)
class Table:
    name: str
    title: str  # what one row is, e.g. "one row per unique message"
    description: str  # for a newcomer: the Dagster catalog and docs/tables.md
    columns: tuple[Column, ...]
    example: str  # a query that shows what the table answers (run by test_queries.py)
    day_column: str = "day"  # the calendar day in DE_TIMEZONE that partitions it


@dataclass(frozen=True)
class DailyTable(Table):
    """A table computed in SQL (`sql/<name>.sql`) from `upstream`, one day at a time."""

    upstream: str = "messages"
    reconcile: Reconcile | None = None  # required: how its counts add up
    metrics: str = "count(*) AS rows"  # per day, what the Dagster UI plots across partitions
    # "days": each step replaces its days. "journeys": the run's journeys are removed once
    # (`prelude`), then shared out between the steps by the day they were touched.
    steps: Literal["days", "journeys"] = "days"
    prelude: str | None = None  # a SQL file run once per run, before the steps
    reach_back: int = 0  # days before the run that a run also rewrites

    def __post_init__(self) -> None:
        if self.reconcile is None:
            raise TypeError(f"daily table {self.name!r} needs a Reconcile: how its counts add up to {self.upstream}")

    @property
    def sql_files(self) -> tuple[str, ...]:
        return (self.name,) if self.prelude is None else (self.prelude, self.name)


DAY = Column("day", "DATE NOT NULL", "the calendar day in DE_TIMEZONE")
# Every table holds the rows of every account; each run writes one account's (see accounts.py).
PROVIDER = Column("provider", "VARCHAR NOT NULL", "the account: its name in DE_PROVIDERS_FILE, else `default`")
# the rows of one account's run: the days $first_day..$last_day of the account $provider
OF_THE_DAYS = "provider = $provider AND day BETWEEN $first_day AND $last_day"
MESSAGES_PER_DAY = (
    "SELECT day, count(*) AS n FROM messages "
    "WHERE provider = $provider AND day IN (SELECT day FROM day_bounds) GROUP BY day"
)

MESSAGES = Table(
    name="messages",
    title="one row per unique message",
    description=(
        "One row per unique message, typed, rebuilt from the raw archive. A message that "
        "arrived twice is stored once; unusable records go to rejected_messages with a reason."
    ),
    columns=(
        PROVIDER,
        Column(
            "message_key",
            "VARCHAR NOT NULL",
            "md5 of customersessionid, sessionid, ts, sendertype, sendername, text, each length-prefixed",
        ),
        Column("day", "DATE NOT NULL", "the calendar day of ts in DE_TIMEZONE"),
        Column("ts", "TIMESTAMPTZ NOT NULL", "when the message was created"),
        Column("ts_ms", "BIGINT NOT NULL", "ts in epoch milliseconds, as the API sent it"),
        Column("sessionid", "VARCHAR", "the segment, as conversation.segment"),
        Column("conversation_id", "BIGINT", "from sessionid; NULL when it is not two integers joined by a dot"),
        Column("segment_id", "INTEGER", "from sessionid: 1, 2, ... in its conversation"),
        Column("customersessionid", "VARCHAR", "the customer journey, across bot and agent segments"),
        Column("sendertype", "VARCHAR", "customer, bot or agent (unknown values kept)"),
        Column("sendername", "VARCHAR", "the sender's name"),
        Column("senderemail", "VARCHAR", "the sender's email"),
        Column("text", "VARCHAR", "the redacted text, placeholders as sent"),
        Column("sentiment", "DOUBLE", "positive above 0, negative below 0, neutral at 0 (from -1 to 1)"),
        Column("workflow", "VARCHAR", "the bot workflow"),
        Column("workflownodeid", "VARCHAR", "the node of the bot workflow"),
        Column("topic", "VARCHAR", "the inferred intent; NULL when no intent matched"),
        Column("score", "DOUBLE", "the confidence of topic, 0 to 1"),
        Column("topmatches", "JSON", "up to 3 {topic, score, text}, best first"),
        Column("lang", "VARCHAR", "the detected language"),
        Column("sessionchannel", "VARCHAR", "the channel the session started in, e.g. webchat, whatsapp"),
        Column("sessionchannelinfo", "JSON", "channel metadata, e.g. the business's number"),
        Column("chattype", "VARCHAR", "bot or agent: the interaction the message is part of"),
        Column("timestamp_text", "VARCHAR", "the API's human-readable timestamp"),
        Column("extra_fields", "JSON", "fields the API sent that de-pipeline does not name, kept as sent"),
        Column("fetched_at", "TIMESTAMPTZ NOT NULL", "when the raw record was fetched"),
    ),
    example="""SELECT conversation_id, segment_id, sendertype, text FROM messages
WHERE customersessionid = (SELECT customersessionid FROM messages LIMIT 1) ORDER BY ts;""",
)

REJECTED_MESSAGES = Table(
    name="rejected_messages",
    title="records that are not usable messages",
    description="Every record the API sent that is not a usable message, with the reason: nothing is dropped silently.",
    columns=(
        PROVIDER,
        Column("archive_day", "DATE NOT NULL", "the partition the record arrived in"),
        Column("day", "DATE", "the record's own day, when its ts is known"),
        Column("ts_ms", "BIGINT", "its ts, when it is an integer"),
        Column("reason", "VARCHAR NOT NULL", "why it is not a usable message"),
        Column("raw", "VARCHAR NOT NULL", "the record as the API sent it (JSON text)"),
        Column("fetched_at", "TIMESTAMPTZ NOT NULL", "when the raw record was fetched"),
    ),
    example="SELECT reason, count(*) FROM rejected_messages GROUP BY reason;",
    day_column="archive_day",
)

LOADED_DAYS = Table(
    name="loaded_days",
    title="one row per day loaded into messages",
    description=(
        "Each day of an account loaded from the raw archive into messages. A day here without "
        "messages came back empty (or every record was rejected): the check no_unexpected_empty_days "
        "and the dashboard's data health tell a quiet day from one the account's history expected "
        "messages on. The records the API returned are in each messages partition's metadata."
    ),
    columns=(
        PROVIDER,
        DAY,
        Column("messages", "BIGINT NOT NULL", "messages the load stored"),
        Column("rejected", "BIGINT NOT NULL", "records the load put in rejected_messages"),
    ),
    example="SELECT day, messages, rejected FROM loaded_days WHERE messages = 0 ORDER BY day DESC;",
)

SENTIMENT_TRENDS = DailyTable(
    name="sentiment_trends",
    title="one row per day, sessionchannel, sendertype, chattype",
    description="Sentiment per day, channel, sender type and chat type, computed in SQL from messages.",
    columns=(
        PROVIDER,
        DAY,
        Column("sessionchannel", "VARCHAR", "the channel"),
        Column("sendertype", "VARCHAR", "customer, bot or agent"),
        Column("chattype", "VARCHAR", "bot or agent"),
        Column("messages", "BIGINT NOT NULL", "all messages of the group, with or without sentiment"),
        Column("avg_sentiment", "DOUBLE", "mean sentiment"),
        Column("min_sentiment", "DOUBLE", "lowest sentiment"),
        Column("max_sentiment", "DOUBLE", "highest sentiment"),
        Column("positive", "BIGINT NOT NULL", "messages with sentiment > 0"),
        Column("neutral", "BIGINT NOT NULL", "messages with sentiment = 0"),
        Column("negative", "BIGINT NOT NULL", "messages with sentiment < 0"),
        Column("without_sentiment", "BIGINT NOT NULL", "messages without a sentiment"),
    ),
    example="""SELECT day, sessionchannel, sum(negative) / sum(messages) AS negative_share
FROM sentiment_trends WHERE sendertype = 'customer' GROUP BY ALL ORDER BY ALL;""",
    reconcile=Reconcile("sum(messages)", MESSAGES_PER_DAY),
    metrics="""sum(messages) AS messages,
        round(sum(avg_sentiment * (messages - without_sentiment))
              / nullif(sum(messages - without_sentiment), 0), 4) AS avg_sentiment""",
)

INTENT_CONFIDENCE = DailyTable(
    name="intent_confidence",
    title="one row per day and topic",
    description=(
        "Intent confidence per day and topic, computed in SQL from messages; messages with no "
        "topic form one row with topic NULL."
    ),
    columns=(
        PROVIDER,
        DAY,
        Column("topic", "VARCHAR", "the intent; NULL gathers the messages with no intent"),
        Column("messages", "BIGINT NOT NULL", "messages of the topic"),
        Column("avg_score", "DOUBLE", "mean confidence"),
        Column("p10_score", "DOUBLE", "10th percentile of the confidence (interpolated)"),
        Column("p50_score", "DOUBLE", "median confidence (interpolated)"),
        Column("p90_score", "DOUBLE", "90th percentile of the confidence (interpolated)"),
        Column("low_confidence", "BIGINT NOT NULL", "messages with a score below DE_LOW_CONFIDENCE"),
        Column("avg_margin", "DOUBLE", "mean gap of the first two topmatches scores, where both are in [0, 1]"),
    ),
    example="""SELECT topic, sum(low_confidence) / sum(messages) AS low_share
FROM intent_confidence GROUP BY topic ORDER BY low_share DESC;""",
    reconcile=Reconcile("sum(messages)", MESSAGES_PER_DAY),
    metrics="""sum(messages) AS messages, sum(low_confidence) AS low_confidence,
        round(sum(avg_score * messages) FILTER (WHERE topic IS NOT NULL)
              / nullif(sum(messages) FILTER (WHERE topic IS NOT NULL), 0), 4) AS avg_score""",
)

REDACTION_ENTITY_COUNTS = DailyTable(
    name="redaction_entity_counts",
    title="one row per day, entity_type, sessionchannel, sendertype",
    description=(
        "Redaction placeholders per day, entity type, channel and sender type, computed in SQL "
        "from messages: the nine labels of the API plus DE_REDACTION_LABELS, in every wrapping "
        "of DE_REDACTION_PATTERN."
    ),
    columns=(
        PROVIDER,
        DAY,
        Column("entity_type", "VARCHAR NOT NULL", "the label, e.g. PERSON, GPE, DATE"),
        Column("sessionchannel", "VARCHAR", "the channel"),
        Column("sendertype", "VARCHAR", "customer, bot or agent"),
        Column("occurrences", "BIGINT NOT NULL", "placeholders found"),
        Column("messages", "BIGINT NOT NULL", "messages with at least one"),
    ),
    example="SELECT entity_type, sum(occurrences) FROM redaction_entity_counts GROUP BY ALL ORDER BY 2 DESC;",
    # placeholders counted without grouping by label: one whose label was lost or split
    # differently shows up as a difference
    reconcile=Reconcile(
        "sum(occurrences)",
        "SELECT day, sum(len(regexp_extract_all(text, $placeholder_regex))) AS n FROM messages "
        "WHERE provider = $provider AND day IN (SELECT day FROM day_bounds) GROUP BY day",
        where="entity_type <> ''",
    ),
    metrics="sum(occurrences) AS occurrences",
)

CONVERSATION_SEGMENTS = DailyTable(
    name="conversation_segments",
    title="one row per segment of a journey",
    description=(
        "One row per segment (sessionid) of each customer journey, keyed by the day the journey "
        "started. A run rebuilds every journey with a message in its days or the day before."
    ),
    columns=(
        PROVIDER,
        Column("day", "DATE NOT NULL", "the day of the journey's first message"),
        Column("customersessionid", "VARCHAR NOT NULL", "the journey"),
        Column("sessionid", "VARCHAR NOT NULL", "the segment"),
        Column("conversation_id", "BIGINT", "NULL when sessionid does not parse"),
        Column("segment_id", "INTEGER", "NULL when sessionid does not parse"),
        Column("position", "INTEGER NOT NULL", "1, 2, ... in the journey, by first message"),
        Column("kind", "VARCHAR NOT NULL", "agent (an agent took part) or bot"),
        Column("is_survey", "BOOLEAN NOT NULL", "a bot segment whose workflow is a survey"),
        Column("chattype", "VARCHAR", "the chattype of the segment's first message"),
        Column("first_ts", "TIMESTAMPTZ NOT NULL", "its first message"),
        Column("last_ts", "TIMESTAMPTZ NOT NULL", "its last message"),
        Column("messages", "BIGINT NOT NULL", "messages in the segment"),
        Column("customer_messages", "BIGINT NOT NULL", "messages the customer sent"),
        Column("bot_messages", "BIGINT NOT NULL", "messages the bot sent"),
        Column("agent_messages", "BIGINT NOT NULL", "messages agents sent"),
        Column("agent", "VARCHAR", "sendername of the (first) agent, if any"),
        Column("avg_customer_sentiment", "DOUBLE", "the customer's mean sentiment in the segment"),
        Column("dominant_topic", "VARCHAR", "the most frequent topic (ties: alphabetical)"),
        Column("first_topic", "VARCHAR", "the first topic"),
        Column("sessionchannel", "VARCHAR", "the channel of its first message"),
    ),
    example="""SELECT agent, count(*) AS segments, avg(avg_customer_sentiment) AS customer_sentiment
FROM conversation_segments WHERE kind = 'agent' GROUP BY agent ORDER BY customer_sentiment;""",
    # every message of the day's journeys is in one of their segments
    reconcile=Reconcile(
        "sum(messages)",
        """SELECT j.day, count(*) AS n FROM messages AS msg
           JOIN (SELECT DISTINCT day, customersessionid FROM conversation_segments
                 WHERE provider = $provider AND day IN (SELECT day FROM day_bounds)) AS j USING (customersessionid)
           WHERE msg.provider = $provider AND msg.sessionid IS NOT NULL GROUP BY j.day""",
    ),
    metrics="count(*) AS segments, sum(messages) AS messages",
    steps="journeys",
    prelude="journey_candidates",
    reach_back=1,
)

CUSTOMER_JOURNEYS = DailyTable(
    name="customer_journeys",
    title="one row per customersessionid",
    description=(
        "One row per customer journey, keyed by the day it started: the path of its segments, "
        "handoffs, transfers, survey, and the customer's sentiment change."
    ),
    columns=(
        PROVIDER,
        Column("day", "DATE NOT NULL", "the day of the journey's first message"),
        Column("customersessionid", "VARCHAR NOT NULL", "the journey"),
        Column("start_ts", "TIMESTAMPTZ NOT NULL", "its first message"),
        Column("end_ts", "TIMESTAMPTZ NOT NULL", "its last message"),
        Column("duration_seconds", "DOUBLE NOT NULL", "from first to last message"),
        Column("segments", "BIGINT NOT NULL", "segments in the journey"),
        Column("conversations", "BIGINT NOT NULL", "distinct conversation ids"),
        Column("path", "VARCHAR NOT NULL", "segment kinds in order, e.g. bot>agent>agent>bot"),
        Column("handoff_to_agent", "BOOLEAN NOT NULL", "a bot segment was followed by an agent segment"),
        Column("transfers", "BIGINT NOT NULL", "agent segments followed by another agent segment"),
        Column("ended_with_survey", "BOOLEAN NOT NULL", "the last segment is a survey"),
        Column("first_segment_sentiment", "DOUBLE", "the customer's mean sentiment in the first segment"),
        Column("last_segment_sentiment", "DOUBLE", "... and in the last segment"),
        Column("sentiment_change", "DOUBLE", "last minus first"),
        Column("first_topic", "VARCHAR", "the journey's first topic"),
        Column("sessionchannel", "VARCHAR", "the channel of its first message"),
        Column("open_at_load", "BOOLEAN NOT NULL", "the day after it started was not loaded yet: it may grow"),
    ),
    example="""SELECT path, count(*) AS journeys, avg(sentiment_change) AS change
FROM customer_journeys GROUP BY path ORDER BY journeys DESC;""",
    upstream="conversation_segments",
    reconcile=Reconcile(
        "sum(segments)",
        "SELECT day, count(*) AS n FROM conversation_segments "
        "WHERE provider = $provider AND day IN (SELECT day FROM day_bounds) GROUP BY day",
    ),
    metrics="""count(*) AS journeys, avg(handoff_to_agent::INT) AS handoff_share,
        avg(transfers) AS avg_transfers, avg(sentiment_change::DECIMAL(18, 15)) AS avg_sentiment_change""",
    steps="journeys",
    prelude="rebuilt_journeys",
    reach_back=2,
)

AGENT_PERFORMANCE = DailyTable(
    name="agent_performance",
    title="one row per day and agent",
    description=(
        "What each agent handled per day (the day the journeys started), from "
        "conversation_segments: segments, customer messages, the customer's sentiment, and "
        "handoffs received from the bot."
    ),
    columns=(
        PROVIDER,
        Column("day", "DATE NOT NULL", "the day the journeys started"),
        Column("agent", "VARCHAR", "the agent's sendername; NULL for agent segments without one"),
        Column("segments", "BIGINT NOT NULL", "agent segments handled"),
        Column("customer_messages", "BIGINT NOT NULL", "messages customers sent in them"),
        Column("avg_customer_sentiment", "DOUBLE", "the customers' mean sentiment, weighted by their messages"),
        Column("handoffs_received", "BIGINT NOT NULL", "segments that took over straight from a bot segment"),
    ),
    example="""SELECT agent, sum(segments) AS segments, sum(handoffs_received) AS handoffs
FROM agent_performance GROUP BY agent ORDER BY segments DESC;""",
    upstream="conversation_segments",
    reconcile=Reconcile(
        "sum(segments)",
        "SELECT day, count(*) AS n FROM conversation_segments "
        "WHERE provider = $provider AND kind = 'agent' AND day IN (SELECT day FROM day_bounds) GROUP BY day",
    ),
    metrics="count(DISTINCT agent) AS agents, sum(segments) AS segments, sum(handoffs_received) AS handoffs",
    reach_back=2,  # conversation_segments rewrites journeys that started up to 2 days before a run
)

TABLES: tuple[Table, ...] = (
    MESSAGES,
    REJECTED_MESSAGES,
    LOADED_DAYS,
    SENTIMENT_TRENDS,
    INTENT_CONFIDENCE,
    REDACTION_ENTITY_COUNTS,
    CONVERSATION_SEGMENTS,
    CUSTOMER_JOURNEYS,
    AGENT_PERFORMANCE,
)
DAILY_TABLES: tuple[DailyTable, ...] = tuple(t for t in TABLES if isinstance(t, DailyTable))
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES)


class UnknownTableError(ValueError):
    """A table name that the registry does not hold."""


def table(name: str) -> Table:
    """The registry entry of `name`; an error naming the tables there are."""
    for entry in TABLES:
        if entry.name == name:
            return entry
    raise UnknownTableError(f"unknown table {name!r}; choose one of {', '.join(TABLE_NAMES)}")


def create_table_sql(entry: Table) -> str:
    """CREATE TABLE and a COMMENT ON COLUMN per column: DuckDB, and every tool that reads
    its catalog, shows each column's description."""
    columns = ",\n    ".join(f"{c.name} {c.type}" for c in entry.columns)
    comments = "".join(column_comment_sql(entry.name, c) + "\n" for c in entry.columns)
    return (
        f"CREATE TABLE {entry.name} (\n    {columns}\n);\n"
        f"COMMENT ON TABLE {entry.name} IS '{_quoted(entry.description)}';\n{comments}"
    )


def column_comment_sql(table_name: str, column: Column) -> str:
    return f"COMMENT ON COLUMN {table_name}.{column.name} IS '{_quoted(column.description)}';"


TABLE_DOCS = "docs/tables.md"  # the page whose table docs markdown() writes, between the markers below


def markdown() -> str:
    """The table docs of TABLE_DOCS: each table's title, description, columns and example."""
    parts = []
    for entry in TABLES:
        columns = "\n".join(f"| `{c.name}` | {c.base_type} | {c.description} |" for c in entry.columns)
        parts.append(
            f"## `{entry.name}`: {entry.title}\n{entry.description}\n\n"
            f"| column | type | meaning |\n|---|---|---|\n{columns}\n\n```sql\n{entry.example}\n```\n"
        )
    return "\n".join(parts)


DOCS_START = "<!-- tables: generated from de_pipeline/warehouse/tables.py"
DOCS_END = "<!-- /tables -->"


def with_table_docs(page: str) -> str:
    """`page` with the text between its table markers replaced by markdown()."""
    start = page.index("\n", page.index(DOCS_START)) + 1
    end = page.index(DOCS_END)
    return page[:start] + markdown() + page[end:]


def _quoted(text: str) -> str:
    return text.replace("'", "''")


if __name__ == "__main__":  # python -m de_pipeline.warehouse.tables docs/tables.md
    import sys
    from pathlib import Path

    page = Path(sys.argv[1] if len(sys.argv) > 1 else TABLE_DOCS)
    page.write_text(with_table_docs(page.read_text()))
