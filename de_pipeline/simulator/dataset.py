"""Deterministic synthetic messages of a contact centre, pre-serialised per day.

A customer journey (one `customersessionid`) goes bot -> agent -> sometimes another agent ->
sometimes a survey bot. Each segment is `sessionid` "conversation.segment". Journeys start
more often in business hours; some cross midnight. Sentiment depends on the channel, the
intent, the weekday, a slow seasonal trend and the journey's progress.

Everything follows from (seed, day): the same day always yields the same bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from de_pipeline.simulator import vocabulary as words

DAY_CACHE_SIZE = 20
_TOKEN = re.compile(r"%([A-Z]+)%")
_CUSTOMERSESSIONID = re.compile(r"-?(\d+)\.(\d+)")


def stable_seed(*parts: object) -> int:
    """A seed from any parts, equal across processes (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class DayRecords:
    """The records whose time falls in one local day, sorted by time, serialised."""

    ts: list[int]
    payloads: list[bytes]

    def between(self, start_ms: int, end_ms: int) -> list[bytes]:
        return self.payloads[bisect.bisect_left(self.ts, start_ms) : bisect.bisect_left(self.ts, end_ms)]


@dataclass(frozen=True)
class _Journey:
    customersessionid: str
    records: list[tuple[int, bytes]]


class SyntheticDataset:
    """The messages a simulated account holds, by local day of `timezone`."""

    def __init__(
        self,
        seed: int = 7,
        messages_per_day: int = 2000,
        *,
        hostile: bool = False,
        timezone: str = "UTC",
        long_texts: bool = False,
    ) -> None:
        self.seed = seed
        self.messages_per_day = messages_per_day
        self.hostile = hostile
        self.long_texts = long_texts
        self.zone = ZoneInfo(timezone)
        self._started: OrderedDict[date, list[_Journey]] = OrderedDict()
        self._days: OrderedDict[date, DayRecords] = OrderedDict()
        self._injected: list[tuple[int, bytes]] = []
        self._lock = threading.RLock()

    # ---- what the server serves -------------------------------------------------------

    def payloads_between(self, start_ms: int, end_ms: int) -> list[bytes]:
        """Serialised records with `start_ms <= ts < end_ms`, in time order."""
        payloads: list[bytes] = []
        for day in self._days_touching(start_ms, end_ms):
            payloads.extend(self.day_records(day).between(start_ms, end_ms))
        return payloads

    def journey_payloads(self, customersessionid: str, start_ms: int, end_ms: int) -> list[bytes]:
        """Serialised records of one journey inside the window; [] for an unknown id."""
        match = _CUSTOMERSESSIONID.fullmatch(customersessionid or "")
        if not match:
            return []
        try:
            first_day = date.fromordinal(int(match.group(1)))
        except (ValueError, OverflowError):
            return []
        for journey in self._journeys_started_on(first_day):
            if journey.customersessionid == customersessionid:
                return [p for ts, p in journey.records if start_ms <= ts < end_ms]
        return []

    def day_records(self, day: date) -> DayRecords:
        with self._lock:
            if day not in self._days:
                self._days[day] = self._build_day(day)
                while len(self._days) > DAY_CACHE_SIZE:
                    self._days.popitem(last=False)
            self._days.move_to_end(day)
            return self._days[day]

    def inject(self, records: list[tuple[int, bytes]]) -> None:
        """Serve extra raw records (any bytes, even invalid JSON) at the given times."""
        with self._lock:
            self._injected.extend(records)
            self._days.clear()

    # ---- for tests: what was served, parsed ---------------------------------------------

    def messages_between(self, start_ms: int, end_ms: int) -> list[Any]:
        return [orjson.loads(p) for p in self.payloads_between(start_ms, end_ms)]

    def day_bounds_ms(self, day: date) -> tuple[int, int]:
        start = datetime.combine(day, datetime.min.time(), self.zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.zone)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def is_outage_day(self, day: date) -> bool:
        """A day on which no journey starts (an outage, a holiday): some real days are empty."""
        return Random(stable_seed(self.seed, "outage", day.toordinal())).random() < 0.03

    # ---- generation -------------------------------------------------------------------

    def _days_touching(self, start_ms: int, end_ms: int) -> list[date]:
        if end_ms <= start_ms:
            return []
        first = datetime.fromtimestamp(start_ms / 1000, self.zone).date()
        last = datetime.fromtimestamp((end_ms - 1) / 1000, self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def _build_day(self, day: date) -> DayRecords:
        start_ms, end_ms = self.day_bounds_ms(day)
        records = [
            record
            for first_day in (day - timedelta(days=1), day)
            for journey in self._journeys_started_on(first_day)
            for record in journey.records
            if start_ms <= record[0] < end_ms
        ]
        records.extend(r for r in self._injected if start_ms <= r[0] < end_ms)
        records.sort(key=lambda record: record[0])
        return DayRecords([ts for ts, _ in records], [payload for _, payload in records])

    def _journeys_started_on(self, day: date) -> list[_Journey]:
        with self._lock:
            if day not in self._started:
                self._started[day] = _DayGenerator(self, day).journeys()
                while len(self._started) > DAY_CACHE_SIZE:
                    self._started.popitem(last=False)
            self._started.move_to_end(day)
            return self._started[day]


class _DayGenerator:
    """Generates the journeys that start on one day."""

    def __init__(self, dataset: SyntheticDataset, day: date) -> None:
        self.dataset = dataset
        self.day = day
        self.rng = Random(stable_seed(dataset.seed, "day", day.toordinal()))
        self.start_ms, self.end_ms = dataset.day_bounds_ms(day)
        self.next_day_empty = dataset.is_outage_day(day + timedelta(days=1))
        self.day_mood = self._day_mood()
        # long texts draw from their own generator: the journeys stay those of the default
        self.text_rng = Random(stable_seed(dataset.seed, "long texts", day.toordinal()))

    def journeys(self) -> list[_Journey]:
        if self.dataset.is_outage_day(self.day) or self.dataset.messages_per_day <= 0:
            return []
        weekday_factor = (1.0, 1.0, 1.0, 1.0, 0.95, 0.7, 0.55)[self.day.weekday()]
        target = self.dataset.messages_per_day * weekday_factor * self.rng.uniform(0.92, 1.08)
        journeys: list[_Journey] = []
        produced = 0
        number = 0
        while produced < target:
            number += 1
            journey = self._journey(number)
            if self.next_day_empty and journey.records and journey.records[-1][0] >= self.end_ms:
                continue  # nothing may spill into an empty day
            journeys.append(journey)
            produced += len(journey.records)
        if self.dataset.hostile:
            journeys.extend(self._hostile_extras(number))
        return journeys

    def _day_mood(self) -> float:
        ordinal = self.day.toordinal()
        weekday = (-0.06, 0.0, 0.02, 0.02, 0.04, 0.08, 0.06)[self.day.weekday()]
        season = 0.1 * math.sin(2 * math.pi * ordinal / 91)
        return weekday + season + self.rng.gauss(0, 0.03)

    def _start_time_ms(self) -> int:
        span = self.end_ms - self.start_ms
        if self.rng.random() < 0.8:  # business hours peak around 14:00 local time
            fraction = min(max(self.rng.gauss(14 / 24, 3.5 / 24), 0.0), 0.9999)
        else:
            fraction = self.rng.random()
        return self.start_ms + int(fraction * span)

    def _journey(self, number: int) -> _Journey:
        rng = self.rng
        ordinal = self.day.toordinal()
        sign = "-" if rng.random() < 0.3 else ""
        csid = f"{sign}{ordinal}.{number:04d}"
        channel = _weighted(rng, {name: spec[0] for name, spec in words.CHANNELS.items()})
        channel_bias, channel_info = words.CHANNELS[channel][1], words.CHANNELS[channel][2]
        lang = _weighted(rng, dict(words.LANGUAGES))
        intent = rng.choice(tuple(words.INTENTS))
        customer = rng.choice(words.CUSTOMER_NAMES)
        builder = _JourneyBuilder(self, csid, channel, channel_info, lang, customer)
        builder.now_ms = self._start_time_ms()
        mood = channel_bias + words.INTENTS[intent][2] + self.day_mood

        conversation = ordinal * 1_000_000 + number * 4
        segment = 1
        builder.bot_segment(conversation, segment, intent, mood)
        if rng.random() < 0.65:  # handed off to an agent
            agents = rng.sample(words.AGENTS, 3)
            transfers = 0
            if rng.random() < 0.3:
                transfers = 2 if rng.random() < 0.25 else 1
            for index in range(transfers + 1):
                segment += 1
                last = index == transfers
                mood_now = mood + 0.1 - 0.15 * index
                builder.agent_segment(conversation, segment, agents[index], intent, mood_now, last)
            if rng.random() < 0.45:  # survey, in the same conversation or a new one
                if rng.random() < 0.3:
                    conversation, segment = conversation + 1, 0
                builder.survey_segment(conversation, segment + 1, mood + 0.2)
        if rng.random() < 0.08:  # the customer comes back later in the same journey
            builder.now_ms += rng.randint(600, 3600) * 1000
            builder.bot_segment(conversation + 2, 1, intent, mood)
        return _Journey(csid, builder.records)

    def _hostile_extras(self, number: int) -> list[_Journey]:
        """Messages at the day's first and last millisecond, odd texts, malformed session
        ids, and records that the pipeline must reject."""
        ordinal = self.day.toordinal()
        odd = _JourneyBuilder(self, f"{ordinal}.{number + 1:04d}", "webchat", {}, "en", "Sam Taylor")
        odd.now_ms = self.start_ms
        odd.hostile = False  # the extras are the cases promised every day: never roughened away
        odd.add(
            sessionid=f"{ordinal * 1_000_000 + 999_998}.1",
            sendertype="customer",
            chattype="bot",
            text="first message of the day",
            sentiment=0.0,
            gap=(0, 0),
        )
        huge = ("very long message " * (words.HUGE_TEXT_BYTES // 18 + 1))[: words.HUGE_TEXT_BYTES]
        for text in (*words.ODD_TEXTS, huge):
            odd.add(
                sessionid=f"{ordinal * 1_000_000 + 999_998}.1",
                sendertype="customer",
                chattype="bot",
                text=text,
                sentiment=-0.2,
            )
        for sessionid in words.MALFORMED_SESSIONIDS:
            odd.add(
                sessionid=sessionid, sendertype="customer", chattype="bot", text="which session am I in?", sentiment=0.1
            )
        last = _JourneyBuilder(self, f"{ordinal}.{number + 2:04d}", "sms", {}, "en", "Tom Reed")
        last.now_ms = self.end_ms - 1
        last.hostile = False
        last.add(
            sessionid=f"{ordinal * 1_000_000 + 999_999}.1",
            sendertype="customer",
            chattype="bot",
            text="last message of the day",
            sentiment=0.0,
            gap=(0, 0),
        )
        bad = [
            (self.start_ms + 1000, orjson.dumps(f"not a message ({self.day})")),
            # a string of digits is read as the integer: a date string is what must be rejected
            (self.start_ms + 2000, orjson.dumps({"text": "ts is a date string", "ts": _iso(self.start_ms + 2000)})),
            (self.start_ms + 3000, orjson.dumps({"text": f"ts is missing ({self.day})", "sessionid": "1.1"})),
        ]
        return [_Journey(odd.csid, odd.records), _Journey(last.csid, last.records), _Journey("", bad)]


class _JourneyBuilder:
    """Appends the messages of one journey, advancing its clock."""

    def __init__(
        self,
        generator: _DayGenerator,
        csid: str,
        channel: str,
        channel_info: dict[str, str],
        lang: str,
        customer: str,
    ) -> None:
        self.generator = generator
        self.rng = generator.rng
        self.hostile = generator.dataset.hostile
        self.text_rng = generator.text_rng if generator.dataset.long_texts else None
        self.csid = csid
        self.channel = channel
        self.channel_info = channel_info
        self.lang = lang
        self.customer = customer
        self.now_ms = 0
        self.records: list[tuple[int, bytes]] = []

    def bot_segment(self, conversation: int, segment: int, intent: str, mood: float) -> None:
        rng = self.rng
        sessionid = f"{conversation}.{segment}"
        workflow = rng.choice(words.WORKFLOWS)
        self.bot(sessionid, workflow, rng.choice(words.BOT_LINES[:1]))
        self.customer_says(sessionid, "bot", intent, mood - 0.1, first=True)
        for _ in range(rng.randint(0, 2)):
            self.bot(sessionid, workflow, rng.choice(words.BOT_LINES[1:]))
            self.customer_says(sessionid, "bot", intent, mood - 0.1)
        self.bot(sessionid, workflow, words.BOT_HANDOFF)

    def agent_segment(self, conversation: int, segment: int, agent: str, intent: str, mood: float, last: bool) -> None:
        rng = self.rng
        sessionid = f"{conversation}.{segment}"
        self.now_ms += rng.randint(20, 600) * 1000  # waiting in the queue
        first_name = agent.split()[0]
        for index in range(rng.randint(2, 6)):
            line = rng.choice(words.AGENT_LINES).replace("{agent}", first_name)
            self.agent(sessionid, agent, line)
            self.customer_says(sessionid, "agent", intent, mood + 0.05 * index)
        self.agent(sessionid, agent, words.AGENT_LINES[-1] if last else words.AGENT_TRANSFER)

    def survey_segment(self, conversation: int, segment: int, mood: float) -> None:
        sessionid = f"{conversation}.{segment}"
        self.now_ms += self.rng.randint(2, 20) * 1000
        self.bot(sessionid, words.SURVEY_WORKFLOW, words.SURVEY_LINES[0])
        answer = self.rng.choice(words.SURVEY_ANSWERS)
        self.add(
            sessionid=sessionid,
            sendertype="customer",
            chattype="bot",
            text=answer,
            sentiment=_clamp(mood + (0.4 if answer[0] in "45" else -0.4)),
            sendername=self.customer,
        )
        self.bot(sessionid, words.SURVEY_WORKFLOW, words.SURVEY_LINES[1])

    def bot(self, sessionid: str, workflow: str, line: str) -> None:
        self.add(
            sessionid=sessionid,
            sendertype="bot",
            chattype="bot",
            text=self.redacted(line),
            sentiment=0.0 if self.rng.random() < 0.6 else round(self.rng.uniform(0, 0.3), 3),
            sendername=words.BOT_NAME,
            workflow=workflow,
            workflownodeid=f"node-{self.rng.randint(1, 40)}",
            gap=(1, 3),
        )

    def agent(self, sessionid: str, agent: str, line: str) -> None:
        self.add(
            sessionid=sessionid,
            sendertype="agent",
            chattype="agent",
            text=self.redacted(line),
            sentiment=round(self.rng.uniform(0.05, 0.45), 3),
            sendername=agent,
            senderemail=agent.lower().replace(" ", ".") + "@acme.example",
            gap=(10, 90),
        )

    def customer_says(self, sessionid: str, chattype: str, intent: str, mood: float, first: bool = False) -> None:
        rng = self.rng
        phrases, templates, _, mean_score = words.INTENTS[intent]
        topic_fields: dict[str, Any]
        if first or rng.random() < 0.45:
            line = rng.choice(templates)
            topic_fields = self.inferred(intent, mean_score)
        else:
            line = rng.choice(words.CUSTOMER_FOLLOW_UPS)
            roll = rng.random()
            if roll < 0.4:
                topic_fields = self.inferred(rng.choice(tuple(words.INTENTS)), 0.45)
            elif roll < 0.7:
                topic_fields = {"topic": "", "score": 0.0, "topmatches": []}
            else:
                topic_fields = {}
        neutral = line in ("yes", "that's right")
        self.add(
            sessionid=sessionid,
            sendertype="customer",
            chattype=chattype,
            text=self.redacted(line),
            sentiment=0.0 if neutral else _clamp(mood + rng.gauss(0, 0.25)),
            sendername=self.customer if rng.random() < 0.7 else None,
            senderemail=None,
            gap=(5, 60),
            **topic_fields,
        )

    def inferred(self, intent: str, mean_score: float) -> dict[str, Any]:
        """An inferred intent with its confidence and the top 3 matches, best first."""
        rng = self.rng
        if intent == words.DRIFTING_INTENT:
            weeks = (self.generator.day.toordinal() % 364) / 7
            mean_score = max(0.3, mean_score - 0.01 * weeks)
        score = round(min(max(rng.gauss(mean_score, 0.1), 0.05), 0.995), 4)
        others = rng.sample([name for name in words.INTENTS if name != intent], 2)
        second = round(score * rng.uniform(0.2, 0.95), 4)
        third = round(second * rng.uniform(0.3, 0.95), 4)
        matches = [
            {"topic": intent, "score": score, "text": rng.choice(words.INTENTS[intent][0])},
            {"topic": others[0], "score": second, "text": words.INTENTS[others[0]][0][0]},
            {"topic": others[1], "score": third, "text": words.INTENTS[others[1]][0][0]},
        ]
        return {"topic": intent, "score": score, "topmatches": matches}

    def redacted(self, line: str) -> str:
        return _TOKEN.sub(lambda m: self.rng.choice(words.PLACEHOLDER_STYLES).format(m.group(1)), line)

    def lengthened(self, text: str, sendertype: str) -> str:
        """`text` with up to a few sentences of detail (long-texts mode): customers and agents
        write from a few words to a few hundred characters, bots keep their short lines."""
        rng = self.text_rng
        assert rng is not None
        sentences = words.LONG_TEXT_DETAILS.get(sendertype, ())
        if not sentences:
            return text
        extra = min(int(rng.expovariate(0.8)), 4)  # none in 45% of messages, 4 in 4%
        details = [
            _TOKEN.sub(lambda m: rng.choice(words.PLACEHOLDER_STYLES).format(m.group(1)), line)
            for line in rng.sample(sentences, extra)
        ]
        return " ".join([text, *details])

    def add(
        self,
        *,
        sessionid: str,
        sendertype: str,
        chattype: str,
        text: str,
        sentiment: float,
        gap: tuple[int, int] = (5, 60),
        **optional: Any,
    ) -> None:
        rng = self.rng
        self.now_ms += rng.randint(gap[0] * 1000, gap[1] * 1000)
        ts = self.now_ms
        if self.text_rng is not None:
            text = self.lengthened(text, sendertype)
        message: dict[str, Any] = {
            "text": text,
            "timestamp": _iso(ts).replace("T", " ") + " UTC",
            "ts": ts,
            "sendertype": sendertype,
            "sessionid": sessionid,
            "sentiment": sentiment,
            "lang": self.lang,
            "customersessionid": self.csid,
            "sessionchannel": self.channel,
            "sessionchannelinfo": self.channel_info,
            "chattype": chattype,
        }
        for name, value in optional.items():
            if name in ("sendername", "senderemail", "workflow", "workflownodeid"):
                roll = rng.random()  # optional fields: sometimes missing, null or empty
                if value is None or roll < 0.05:
                    continue
                value = None if roll < 0.08 else "" if roll < 0.1 else value
            message[name] = value
        if self.hostile:
            self.roughen(message)
        # an exact-size copy: orjson's result keeps a 4 KiB buffer, 8x a message's bytes
        self.records.append((ts, memoryview(orjson.dumps(message)).tobytes()))

    def roughen(self, message: dict[str, Any]) -> None:
        """Hostile mode: malformed session ids, missing fields, odd text."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.01:
            message["sessionid"] = rng.choice(words.MALFORMED_SESSIONIDS)
        elif roll < 0.03:
            for name in rng.sample(("lang", "topmatches", "sessionchannelinfo", "chattype", "topic"), 2):
                message.pop(name, None)
        elif roll < 0.04 and message["sendertype"] == "customer":
            message["text"] = rng.choice(words.ODD_TEXTS)


def _weighted(rng: Random, weights: dict[str, float]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def _iso(ts_ms: int) -> str:
    """An epoch-milliseconds moment as UTC ISO 8601 text, to the millisecond."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat("T", "milliseconds")[:23]


def _clamp(value: float) -> float:
    return round(min(max(value, -1.0), 1.0), 3)
