"""The plate grammar: normalising look-alikes, position-wise fixes, queries and distance."""

from __future__ import annotations

import pytest

from indexer.plates.grammar import (
    PlateQueryError,
    confusion_distance,
    fit,
    format_plate,
    normalise,
    parse_query,
)


def test_cyrillic_look_alikes_become_latin() -> None:
    # every one of the 12 letters, typed in Cyrillic
    assert normalise("АВСЕНІКМОРТХ") == "ABCEHIKMOPTX"
    assert normalise("аі 1234 кх") == "AI1234KX"
    assert normalise("AE-1234 KX") == "AE1234KX"


@pytest.mark.parametrize(("raw", "plate", "fixes"), [
    ("AE 1234 KX", "AE1234KX", 0),
    ("АЕ 1234 КХ", "AE1234KX", 0),  # Cyrillic
    ("AE 12O4 KX", "AE1204KX", 1),  # O in a digit position is 0
    ("AE I234 KX", "AE1234KX", 1),  # I in a digit position is 1
    ("AE 1B34 KX", "AE1834KX", 1),  # B in a digit position is 8
    ("A8 1234 K0", "AB1234KO", 2),  # 8 and 0 in letter positions are B and O
    ("UA AE 1234 KX", "AE1234KX", 0),  # the blue strip read with it
    ("12345 AB", "12345AB", 0),  # 1995-2004 format
])
def test_reads_fit_the_grammar(raw: str, plate: str, fixes: int) -> None:
    fitted = fit(raw)
    assert fitted is not None
    assert (fitted.text, fitted.fixes) == (plate, fixes)


@pytest.mark.parametrize("raw", ["", "AE 1234", "HELLO WORLD", "AY 1234 KX", "AE 12345 KX",
                                 "A$ 1234 KX", "AE 1234 KXA"])
def test_reads_that_fit_no_format_are_no_reads(raw: str) -> None:
    fitted = fit(raw)
    assert fitted is None or fitted.text != normalise(raw)
    if raw in ("", "AE 1234", "HELLO WORLD", "AY 1234 KX"):
        assert fitted is None


def test_a_read_needing_too_many_fixes_is_refused() -> None:
    assert fit("OO OOOO OO") is None  # four digit positions to fix


def test_format_plate_prints_like_the_plate() -> None:
    assert format_plate("AE1234KX") == "AE 1234 KX"
    assert format_plate("12345AB") == "12345 AB"


def test_queries_normalise_like_reads() -> None:
    assert parse_query("ае 12?? кх").pattern == "AE12??KX"
    assert parse_query("AE 12.. KX").pattern == "AE12??KX"  # a witness's dots
    assert parse_query("**34KX").pattern == "*34KX"
    assert parse_query("AE I234 KX").literal == "AE1234KX"
    assert parse_query("AE*").has_wildcards
    assert not parse_query("AE1234KX").has_wildcards
    assert parse_query("AE1234KX").sql_like() == "AE1234KX"
    assert parse_query("AE12??K*").sql_like() == "AE12__K%"
    assert parse_query("AE12??KX").regex().fullmatch("AE1299KX")


@pytest.mark.parametrize(("query", "message"), [
    ("", "empty"),
    ("  - ", "empty"),
    ("***", "only wildcards"),
    ("?*?", "only wildcards"),
    ("AY 1234 KX", "'Y' cannot be on a Ukrainian plate"),
    ("AE%1234", "'%' cannot be on a Ukrainian plate"),
    ("ЖЖ 1234", "'Ж' cannot be on a Ukrainian plate"),
    ("AE 1234 KX 5678", "longer than any plate"),
    ("A" * 41, "at most 40"),
])
def test_bad_queries_get_one_clear_sentence(query: str, message: str) -> None:
    with pytest.raises(PlateQueryError, match=message) as caught:
        parse_query(query)
    assert caught.value.http_status == 422 or caught.value.http_status == 400


def test_confusion_distance_charges_look_alikes_less() -> None:
    assert confusion_distance("AE1234KX", "AE1234KX") == 0
    assert confusion_distance("AE1234KX", "AE12340X") == pytest.approx(1.0)
    assert confusion_distance("AE1234KX", "AE1Z34KX") == pytest.approx(0.3)  # 2/Z
    assert confusion_distance("AE1234KX", "AE1934KX") == pytest.approx(1.0)
    assert confusion_distance("AE1234KX", "AE1234HX") == pytest.approx(0.3)  # H/K
    assert confusion_distance("AB1234KX", "A81234KX") == pytest.approx(0.3)  # B/8
    assert confusion_distance("AE1234KX", "AE123KX") == pytest.approx(1.0)  # one lost
