"""The evidence report's words: one message catalog per language, and dates written its way.

The catalogs are ``evidence/report_catalogs/<lang>.json``: flat keys, ``{name}``
placeholders, the same format as the web app's ``web/i18n/*.json``. Ukrainian is the
default; English is given on request (``--lang en``, ``"lang": "en"``).

Dates name the local time first, with its zone and offset, and UTC beside it:
``25.01.2026 21:00:05 EET (UTC+02:00), 19:00:05 UTC`` in Ukrainian,
``25 Jan 2026 21:00:05 EET (UTC+02:00), 19:00:05 UTC`` in English. The UTC part repeats
the date only when it differs from the local one.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from storage.errors import InvalidInputError

CATALOG_DIR = Path(__file__).with_name("report_catalogs")
LANGUAGES: tuple[str, ...] = ("uk", "en")
DEFAULT_LANGUAGE = "uk"
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")


class UnsupportedLanguageError(InvalidInputError):
    """A report language other than those with a catalog."""


def check_language(lang: str) -> str:
    """``lang`` when a catalog exists for it; raises ``UnsupportedLanguageError``."""
    if lang not in LANGUAGES:
        raise UnsupportedLanguageError(
            f"The report language '{lang}' is not available: choose uk (Ukrainian) or "
            "en (English).")
    return lang


def placeholders(message: str) -> set[str]:
    """The ``{name}`` fields of a catalog message."""
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


@cache
def load_catalog(lang: str) -> dict[str, str]:
    """The catalog of ``lang`` (checked), read once per process."""
    path = CATALOG_DIR / f"{check_language(lang)}.json"
    messages: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return messages


@dataclass(frozen=True)
class ReportText:
    """The words and date format of one report language."""

    lang: str

    def t(self, key: str, **values: Any) -> str:
        """The message ``key``, its placeholders filled; a missing key is a bug (KeyError)."""
        message = load_catalog(self.lang)[key]
        return message.format(**values) if values else message

    def has(self, key: str) -> bool:
        return key in load_catalog(self.lang)

    def date_time(self, moment: datetime) -> str:
        """``25.01.2026 21:00:05`` (uk) or ``25 Jan 2026 21:00:05`` (en); no zone."""
        if self.lang == "uk":
            return f"{moment:%d.%m.%Y %H:%M:%S}"
        return f"{moment.day} {_MONTHS_EN[moment.month - 1]} {moment:%Y %H:%M:%S}"

    def when(self, value: datetime, timezone: str) -> str:
        """Local time with zone and offset, then UTC (milliseconds when it has them)."""
        utc = value.astimezone(UTC)
        local = utc.astimezone(ZoneInfo(timezone))
        offset = local.strftime("%z")
        zone = f"{local.tzname()} (UTC{offset[:3]}:{offset[3:]})"
        clock = f"{utc:%H:%M:%S}" + (f".{utc.microsecond // 1000:03d}" if utc.microsecond else "")
        utc_text = (f"{clock} UTC" if utc.date() == local.date()
                    else f"{self.date_time(utc).rsplit(' ', 1)[0]} {clock} UTC")
        return f"{self.date_time(local)} {zone}, {utc_text}"

    def role(self, role: str) -> str:
        """A user role's name in this language (the role's own name if it has none)."""
        return load_catalog(self.lang).get(f"role.{role}", role)


def report_text(lang: str = DEFAULT_LANGUAGE) -> ReportText:
    """The ``ReportText`` of ``lang``; raises ``UnsupportedLanguageError``."""
    return ReportText(check_language(lang))


__all__ = [
    "CATALOG_DIR",
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "ReportText",
    "UnsupportedLanguageError",
    "check_language",
    "load_catalog",
    "placeholders",
    "report_text",
]
