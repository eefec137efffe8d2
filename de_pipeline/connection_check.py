"""`de-pipeline check` and the `check_connection` job: probe the configured API (api/probe.py),
judge the placeholders it saw by the warehouse's DE_REDACTION_PATTERN, render one table, and
write the settings that worked as a dotenv file.

Like Airbyte's `check` and Singer's discovery mode, it asks the source before any sync: what
it accepts and what it sends, with the answers that show it.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from de_pipeline.api import ApiSource
from de_pipeline.api.capture import write_capture
from de_pipeline.api.probe import Finding, ProbeResult, Setting, probe
from de_pipeline.env import SettingsError
from de_pipeline.warehouse.settings import DEFAULT_PLACEHOLDER_PATTERN, WarehouseSettings

WIDTH = 120  # of the table, evidence wrapped to it
VERDICT_WIDTH = 34  # a longer verdict has the line to itself, its evidence below
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:{}@%+=-]+")  # written without quotes in a dotenv file


@dataclass(frozen=True)
class CheckReport:
    """What `check` found: the probe's result, with the redaction verdict added."""

    result: ProbeResult
    source: str  # "the embedded simulator ..." or the base URL

    @property
    def ok(self) -> bool:
        return self.result.ok


def check_connection(source: ApiSource, warehouse: WarehouseSettings, *, record: Path | None = None) -> CheckReport:
    """Probe the API of `source`; with `record`, write the questions and answers there."""
    result = probe(source.settings, labels=warehouse.entity_labels, simulated=source.simulated)
    _judge_placeholders(result, warehouse)
    if record is not None:
        write_capture(result, record, configured_forms(source), warehouse.entity_labels)
    where = result.base_url
    if source.simulated:
        where = f"the embedded simulator at {where} (DE_API_BASE_URL is unset)"
    return CheckReport(result, where)


def configured_forms(source: ApiSource) -> dict[str, str]:
    """The request-form settings the probe started from, as DE_* values (never the key)."""
    settings = source.settings
    forms = {
        "DE_PROVIDER_ID": settings.provider_id,
        "DE_AUTH_IN": settings.auth_in,
        "DE_API_KEY_PARAM": settings.api_key_param,
        "DE_API_KEY_HEADER": settings.api_key_header,
        "DE_PROVIDERID_IN": settings.providerid_in,
        "DE_PARTNER_ID": settings.partner_id or "",
        "DE_EPOCH_UNIT": settings.epoch_unit,
        "DE_PROVIDER_PATH": settings.provider_path,
        "DE_CUSTOMER_SESSION_METHOD": settings.customer_session_method,
        "DE_CUSTOMER_SESSION_PATH": settings.customer_session_path,
    }
    return {name: value for name, value in forms.items() if value}


# ---- the placeholders --------------------------------------------------------------------------


def _judge_placeholders(result: ProbeResult, warehouse: WarehouseSettings) -> None:
    """Add whether DE_REDACTION_PATTERN finds each placeholder form seen, and a pattern that
    would when it does not."""
    if not result.messages_seen:
        return
    forms: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for placeholder, count in result.placeholders.items():
        label = next(label for label in sorted(warehouse.entity_labels, key=len, reverse=True) if label in placeholder)
        form = placeholder.replace(label, "LABEL", 1)
        forms[form] += count
        labels[label] += count
        examples.setdefault(form, placeholder)
    if not forms:
        evidence = f"no known label wrapped in the texts of {result.messages_seen} messages"
        result.findings.append(Finding("redaction placeholders", "none seen", evidence))
        return
    pattern = re.compile(warehouse.placeholder_regex)
    missed = [form for form in forms if not pattern.fullmatch(examples[form])]
    seen = ", ".join(f"{form} x{count}" for form, count in forms.most_common())
    by_label = ", ".join(f"{label} x{count}" for label, count in labels.most_common())
    if not missed:
        verdict, evidence = f"DE_REDACTION_PATTERN finds all {len(forms)} forms", f"{seen}; labels: {by_label}"
        result.findings.append(Finding("redaction placeholders", verdict, evidence))
        return
    verdict = f"DE_REDACTION_PATTERN misses {len(missed)} of {len(forms)} forms"
    evidence = f"missed: {', '.join(missed)}; seen: {seen}; labels: {by_label}"
    result.findings.append(Finding("redaction placeholders", verdict, evidence, ok=False))
    wider = "|".join(_form_pattern(form) for form in sorted(missed, key=len, reverse=True))
    value = f"{wider}|{warehouse.placeholder_pattern}"
    configured = warehouse.placeholder_pattern
    result.settings.append(Setting("DE_REDACTION_PATTERN", value, DEFAULT_PLACEHOLDER_PATTERN, configured))


def _form_pattern(form: str) -> str:
    """`__LABEL__` as the pattern `__LABEL__`, its wrapping escaped (RE2 reads `\\*` as Python does)."""
    before, _, after = form.partition("LABEL")
    return f"{re.escape(before)}LABEL{re.escape(after)}"


# ---- the table --------------------------------------------------------------------------------


def render(report: CheckReport) -> str:
    """The findings as one table, then the settings to use."""
    result = report.result
    lines = [f"de-pipeline check: {report.source}, {len(result.exchanges)} requests", ""]
    topic_width = max((len(f.topic) for f in result.findings), default=5) + 2
    verdict_width = min(max((len(f.verdict) for f in result.findings), default=5), VERDICT_WIDTH) + 2
    lines.append(f"    {'looked at':<{topic_width}}{'found':<{verdict_width}}evidence")
    indent = 4 + topic_width + verdict_width
    for finding in result.findings:
        mark = "ok  " if finding.ok else "!!  "
        verdict = finding.verdict if len(finding.verdict) < verdict_width else finding.verdict + "\n"
        head = f"{mark}{finding.topic:<{topic_width}}{verdict:<{verdict_width}}"
        evidence = textwrap.wrap(finding.evidence, max(WIDTH - indent, 40)) or [""]
        if head.endswith("\n"):
            lines.append(head.rstrip("\n"))
            head = " " * indent
        lines.append(head + evidence[0])
        lines += [" " * indent + more for more in evidence[1:]]
    lines.append("")
    lines += _settings_lines(result.settings)
    return "\n".join(lines)


def _settings_lines(settings: list[Setting]) -> list[str]:
    if not settings:
        return ["No settings found: the probe stopped before (see the table)."]
    lines = ["Settings to use:"]
    for setting in settings:
        note = "the default" if not setting.differs_from_default else f"default: {setting.default or 'unset'}"
        lines.append(f"  {setting.name}={setting.value}    ({note})")
    for setting in settings:
        if setting.configured is not None and setting.configured != setting.value and not setting.differs_from_default:
            lines.append(
                f"  note: your environment sets {setting.name}={setting.configured}; unset it (a .env file "
                "does not override a variable already set)"
            )
    lines.append("  DE_API_KEY is never written: keep it in the environment or a secret store.")
    return lines


def usage_lines(env_file: Path | None, written: int) -> list[str]:
    """How to use the settings: the file written, or how to write one."""
    if env_file is None:
        return ["Write them to a file: de-pipeline check --write-env .env"]
    return [
        f"Wrote {written} settings that differ from the defaults to {env_file} (no key in it).",
        "  `de-pipeline` reads .env from the directory it runs in (variables already set win);",
        "  `dagster dev` reads .env from its working directory too (there the file's values win);",
        f"  elsewhere: set -a; . {env_file}; set +a",
    ]


# ---- the env file -------------------------------------------------------------------------------


def env_file_text(report: CheckReport) -> str:
    """`DE_NAME=value` lines of the settings that differ from their defaults; never the key."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# written by `de-pipeline check` on {stamp} against {report.source}"]
    lines += [f"{s.name}={_dotenv_value(s.name, s.value)}" for s in report.result.settings if s.differs_from_default]
    return "\n".join(lines) + "\n"


def write_env_file(report: CheckReport, path: Path) -> int:
    """Write env_file_text to `path`; returns how many settings it holds."""
    text = env_file_text(report)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"--write-env {path}: cannot write it ({exc.strerror or exc})") from None
    return sum(1 for line in text.splitlines() if not line.startswith("#"))


def _dotenv_value(name: str, value: str) -> str:
    """The value as python-dotenv and a POSIX shell (`set -a; . FILE`) both read it back."""
    if _PLAIN_VALUE.fullmatch(value):
        return value
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    raise SettingsError(f"{name}={value!r} cannot be written to a dotenv file: it holds a quote or a newline")
