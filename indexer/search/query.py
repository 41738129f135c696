"""Time-of-day phrases in a query ("at night", "вночі", "in the morning", "21:00–23:00")
become filters.

The phrase is cut out of the text and returned as an applied filter; the rest of the text
goes to CLIP. English and Ukrainian are understood. Phrases are matched as whole words,
case-insensitively, longest first, so "late at night" wins over "at night".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from indexer.daynight import DayPhase
from storage.errors import InvalidInputError


@dataclass(frozen=True)
class HourWindow:
    """Local clock hours [start, end) at the camera; a named part of the day."""

    name: str
    start_hour: int
    end_hour: int

    def contains(self, hour: int) -> bool:
        return self.start_hour <= hour < self.end_hour


MORNING = HourWindow("morning", 5, 12)
AFTERNOON = HourWindow("afternoon", 12, 17)
EVENING = HourWindow("evening", 17, 23)

# phrase -> what it means; a phrase may set a day phase, an hour window, or both.
PHASE_PHRASES: dict[DayPhase, tuple[str, ...]] = {
    DayPhase.NIGHT: (
        "late at night", "at night", "by night", "during the night", "in the night",
        "at nighttime", "at night-time", "nighttime", "night-time", "in the dark", "overnight",
        "вночі", "уночі", "в нічний час", "у нічний час", "нічної пори", "серед ночі",
        "посеред ночі",
    ),
    DayPhase.DAY: (
        "during the day", "in the daytime", "in daylight", "by day", "in the day",
        "daytime", "by daylight",
        "вдень", "удень", "в денний час", "у денний час", "серед дня", "посеред дня",
        "при денному світлі",
    ),
    DayPhase.DUSK: (
        "at dusk", "at dawn", "at twilight", "at sunset", "at sunrise", "at daybreak",
        "in the twilight", "at nightfall",
        "у сутінках", "в сутінках", "на світанку", "на заході сонця", "на сході сонця",
        "присмерком", "смерком", "на зорі",
    ),
}
HOUR_PHRASES: dict[HourWindow, tuple[str, ...]] = {
    MORNING: ("early in the morning", "in the morning", "this morning",
              "вранці", "уранці", "зранку", "рано вранці", "зранечку"),
    AFTERNOON: ("in the afternoon", "this afternoon", "після обіду", "по обіді", "пообіді"),
    EVENING: ("in the evening", "this evening", "ввечері", "увечері", "звечора", "надвечір"),
}


@dataclass(frozen=True)
class ParsedQuery:
    """What the user typed, split into the words for CLIP and the filters phrases implied."""

    original: str
    clip_text: str
    day_phase: DayPhase | None = None
    hours: HourWindow | None = None
    phrases: list[str] = field(default_factory=list)


def _phrase_table() -> list[tuple[str, DayPhase | None, HourWindow | None]]:
    table: list[tuple[str, DayPhase | None, HourWindow | None]] = []
    for phase, phrases in PHASE_PHRASES.items():
        table += [(p, phase, None) for p in phrases]
    for window, phrases in HOUR_PHRASES.items():
        table += [(p, None, window) for p in phrases]
    return sorted(table, key=lambda row: -len(row[0]))


_TABLE = _phrase_table()


def _pattern(phrase: str) -> re.Pattern[str]:
    words = r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", phrase))
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.IGNORECASE)


_PATTERNS = [(_pattern(p), p, phase, window) for p, phase, window in _TABLE]


# "21:00-23:00", "21:00–23:00", "з 21:00 до 23:00", "from 21:00 to 23:00": whole local hours
_CLOCK_WINDOW = re.compile(
    r"(?<![\w:])(?:(?:from|between|з|із|від)\s+)?([01]?\d|2[0-3]):00\s*"
    r"(?:[-–—]|to|and|до|по)\s*([01]?\d|2[0-4]):00(?![\w:])", re.IGNORECASE)


def _clock_window(text: str) -> tuple[HourWindow | None, str | None, str]:
    """A clock-hour window in ``text``, the phrase, and the text without it.

    Raises ``InvalidInputError`` for a window that does not run forward within one day.
    """
    match = _CLOCK_WINDOW.search(text)
    if match is None:
        return None, None, text
    start, end = int(match.group(1)), int(match.group(2))
    if end <= start:
        raise InvalidInputError(
            f"The hours '{match.group(0)}' do not run forward within one day; search "
            "before and after midnight separately.")
    window = HourWindow(f"{start:02d}:00-{end:02d}:00", start, end)
    return window, match.group(0), text[:match.start()] + " " + text[match.end():]


def parse_query(text: str) -> ParsedQuery:
    """Split time-of-day phrases off ``text``.

    Raises ``InvalidInputError`` when the text names two different day phases or two
    different parts of the day ("at night ... вдень").
    """
    hours, clock_phrase, remaining = _clock_window(text)
    phase: DayPhase | None = None
    found: list[str] = [clock_phrase] if clock_phrase else []
    for pattern, _phrase, p_phase, p_hours in _PATTERNS:
        match = pattern.search(remaining)
        if match is None:
            continue
        if p_phase is not None:
            if phase is not None and phase != p_phase:
                raise InvalidInputError(
                    f"The query names both {phase.value} and {p_phase.value} "
                    f"('{match.group(0)}'); search one time of day at a time.")
            phase = p_phase
        if p_hours is not None:
            if hours is not None and hours != p_hours:
                raise InvalidInputError(
                    f"The query names both the {hours.name} and the {p_hours.name}; "
                    "search one part of the day at a time.")
            hours = p_hours
        found.append(match.group(0))
        remaining = pattern.sub(" ", remaining)
    clip_text = re.sub(r"\s+", " ", remaining).strip(" ,.;:!?")
    return ParsedQuery(original=text, clip_text=clip_text, day_phase=phase, hours=hours,
                       phrases=found)


__all__ = ["AFTERNOON", "EVENING", "MORNING", "HourWindow", "ParsedQuery", "parse_query"]
