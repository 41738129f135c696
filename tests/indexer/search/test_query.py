"""Time-of-day phrases become filters; the rest of the text goes to CLIP."""

from __future__ import annotations

import pytest

from indexer.daynight import DayPhase
from indexer.search.query import MORNING, parse_query
from storage.errors import InvalidInputError


@pytest.mark.parametrize(("text", "clip_text", "phase"), [
    ("red car at night", "red car", DayPhase.NIGHT),
    ("Red car AT NIGHT near the metro", "Red car near the metro", DayPhase.NIGHT),
    ("червоне авто вночі", "червоне авто", DayPhase.NIGHT),
    ("Уночі чоловік з собакою", "чоловік з собакою", DayPhase.NIGHT),
    ("людина вдень біля метро", "людина біля метро", DayPhase.DAY),
    ("bus during the day", "bus", DayPhase.DAY),
    ("cyclist at dusk", "cyclist", DayPhase.DUSK),
    ("велосипедист у сутінках", "велосипедист", DayPhase.DUSK),
    ("night-time taxi", "taxi", DayPhase.NIGHT),
])
def test_day_phase_phrases_become_filters(text: str, clip_text: str, phase: DayPhase) -> None:
    parsed = parse_query(text)
    assert parsed.clip_text == clip_text
    assert parsed.day_phase == phase
    assert len(parsed.phrases) == 1


@pytest.mark.parametrize("text", ["van in the morning", "фургон вранці", "фургон зранку"])
def test_part_of_day_becomes_an_hour_window(text: str) -> None:
    parsed = parse_query(text)
    assert parsed.hours == MORNING
    assert parsed.day_phase is None
    assert parsed.clip_text in {"van", "фургон"}


@pytest.mark.parametrize("text", ["nightclub sign", "daytimer", "a knight on a horse",
                                  "вдень-народження"])
def test_words_that_only_contain_a_phrase_are_left_alone(text: str) -> None:
    parsed = parse_query(text)
    assert parsed.day_phase is None
    assert parsed.hours is None


def test_only_whole_words_are_cut_and_the_text_is_kept() -> None:
    parsed = parse_query("the knight at night")
    assert parsed.clip_text == "the knight"
    assert parsed.phrases == ["at night"]


def test_two_different_phases_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="both night and day"):
        parse_query("car at night or вдень")


@pytest.mark.parametrize(("text", "clip", "hours"), [
    ("red car 21:00–23:00", "red car", (21, 23)),
    ("червоне авто з 21:00 до 23:00", "червоне авто", (21, 23)),
    ("bus from 7:00 to 9:00", "bus", (7, 9)),
    ("van 18:00-24:00", "van", (18, 24)),
])
def test_a_clock_hour_window_becomes_an_hours_filter(text: str, clip: str,
                                                     hours: tuple[int, int]) -> None:
    parsed = parse_query(text)
    assert parsed.clip_text == clip
    assert parsed.hours is not None
    assert (parsed.hours.start_hour, parsed.hours.end_hour) == hours


def test_a_clock_window_across_midnight_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="do not run forward within one day"):
        parse_query("car 23:00-02:00")
