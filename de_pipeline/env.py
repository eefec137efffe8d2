"""Reading typed settings from environment variables, with one clear line per mistake.

Shared by `api/`, `warehouse/` and `defs/`; it knows nothing of any of them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, MutableMapping
from datetime import date
from pathlib import Path
from typing import overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A size as DuckDB writes its memory limit: KB, MB, GB, TB are powers of 1000; KiB, MiB,
# GiB, TiB of 1024 (B or no unit: bytes)
_SIZE_PATTERN = r"(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?"
_SIZE_UNITS = {f"{prefix}{infix}b": base**power for power, prefix in enumerate("kmgt", 1)
               for infix, base in (("", 1000), ("i", 1024))} | {"b": 1}  # fmt: skip


def parse_size(text: str) -> int | None:
    """`8GiB`, `500MB` (powers of 1000, as DuckDB reads them) or a whole number, in bytes;
    None if the text is not a size."""
    match = re.fullmatch(_SIZE_PATTERN, text.strip(), re.IGNORECASE)
    return None if match is None else int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])


def format_size(size: int) -> str:
    """A number of bytes for people: `1.5 GiB`, `812.0 MiB`, `512 bytes`."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


DAY_SECONDS = 86_400  # the upper bound of a waiting time: longer means nothing more, and no timer overflows


def debugging(environ: Mapping[str, str] | None = None) -> bool:
    """DE_DEBUG: any value shows whole errors and stack traces instead of one line. Not
    `Env.flag`: it is read while an error is reported, where a bad value must not raise."""
    return Env(environ).raw("DE_DEBUG") is not None


class SettingsError(ValueError):
    """A missing or invalid setting. The message names the environment variable."""


def load_env_file(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the variables of the dotenv file `.env` in the current directory (the one
    `de-pipeline check --write-env .env` writes) that are not set already; returns their
    names. DE_ENV_FILE names another file, or `off` for none (the tests use that)."""
    from dotenv import dotenv_values  # python-dotenv, a dependency of Dagster

    environ = os.environ if environ is None else environ
    named = Env(environ).raw("DE_ENV_FILE")
    if named is not None and named.lower() == "off":
        return []
    path = Path(named or ".env")
    if not path.is_file():
        if named is not None:
            raise SettingsError(f"DE_ENV_FILE={named}: no such file")
        return []
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read it as a dotenv file ({exc})") from None
    added = [name for name, value in values.items() if value is not None and name not in environ]
    for name in added:
        environ[name] = values[name] or ""
    return added


class Env:
    """Typed access to a mapping of environment variables (os.environ by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    @overload
    def text(self, name: str) -> str | None: ...
    @overload
    def text(self, name: str, default: str) -> str: ...
    @overload
    def text(self, name: str, default: str | None) -> str | None: ...

    def text(self, name: str, default: str | None = None) -> str | None:
        """The value, or `default` when unset (never None when a default is given)."""
        value = self.raw(name)
        return default if value is None else value

    def required(self, name: str, why: str) -> str:
        value = self.raw(name)
        if value is None:
            raise SettingsError(f"{name} is not set: {why}")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        """An integer in [minimum, maximum]: every setting has both bounds, so that no value
        can overflow, or wait for ever, deep inside a library."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not an integer") from None
        if not minimum <= number <= maximum:
            raise SettingsError(f"{name}={value} must be in [{minimum}, {maximum}]")
        return number

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        """A finite number in [minimum, maximum] (see `integer`)."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not a number") from None
        if not math.isfinite(number):  # float() accepts inf and nan; no setting means them
            raise SettingsError(f"{name}={value} must be a finite number")
        if not minimum <= number <= maximum:
            raise SettingsError(f"{name}={value} must be in [{minimum:g}, {maximum:g}]")
        return number

    def size(self, name: str, default: int, *, minimum: int = 0) -> int:
        """A number of bytes: `8GiB`, `500MB` or a whole number (see _SIZE_PATTERN)."""
        value = self.raw(name)
        if value is None:
            return default
        size = parse_size(value)
        if size is None:
            raise SettingsError(f"{name}={value!r} is not a size such as 8GiB, 500MB or a number of bytes")
        if size < minimum:
            raise SettingsError(f"{name}={value} must be at least {format_size(minimum)}")
        return size

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise SettingsError(f"{name}={value!r} must be one of: {', '.join(choices)}")
        return value.lower()

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}={value!r} must be true or false (1/0, yes/no)")

    def timezone(self, name: str, default: str = "UTC") -> str:
        value = self.text(name, default)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"{name}={value!r} is not a known IANA time zone (e.g. UTC, America/New_York)"
            ) from None
        return value

    def day(self, name: str) -> date | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not a date in the form YYYY-MM-DD") from None

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        return tuple(part.strip() for part in value.split(",") if part.strip())
