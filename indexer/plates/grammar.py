"""Plate grammar: what a Ukrainian plate may say, and how an OCR read is made to fit it.

1. **Normalise.** Upper-case; the 12 Cyrillic letters that Ukrainian plates use
   (А В С Е Н І К М О Р Т Х) become their Latin look-alikes, so a plate typed on a
   Cyrillic keyboard and one read by the OCR compare equal. Spaces, hyphens and other
   separators are dropped.
2. **Fit.** Each format is a string of positions, ``L`` (one of the 12 letters) or ``D``
   (a digit). A read fits when it has a format's length after position-wise fixes: in a
   digit position O→0, I→1, B→8 (and a few more OCR confusions); in a letter position
   0→O, 8→B, 1→I. A read that fits no format is no read.
3. **Queries.** A search query is normalised the same way; ``*`` stands for any run of
   characters, ``?`` (or ``.``, as in a witness's "AE 12.. KX") for exactly one.

Formats (``FORMATS``): the current national plate ``AA 1234 BB`` (region, number,
series; 2004 on), and the 1995-2004 plate ``12345 AB`` (five digits, then the
region's two letters). Vanity, diplomatic and military plates are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.errors import InvalidInputError

PLATE_LETTERS = "ABCEHIKMOPTX"
CYRILLIC_TO_LATIN = {
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I",
    "К": "K", "М": "M", "О": "O", "Р": "P", "Т": "T", "Х": "X",
    # a Ukrainian letter an OCR or a keyboard may give for the same shape
    "Ї": "I",
}
FORMATS: dict[str, str] = {
    "national": "LLDDDDLL",  # AA 1234 BB, since 2004
    "1995": "DDDDDLL",  # 12345 AB (printed 123-45 AB), 1995-2004
}
MAX_PLATE_LENGTH = max(len(pattern) for pattern in FORMATS.values())
MAX_QUERY_LENGTH = 12  # characters after separators are dropped; wildcards count
MAX_QUERY_TEXT = 40  # characters as typed, separators included
SEPARATORS = " -_\t"
LEFTOVER_COST = 1.5  # per read character a format window leaves out
# position-wise fixes: a letter read where a digit must be, and the reverse
TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "J": "1",
            "B": "8", "S": "5", "Z": "2", "G": "6", "T": "7", "A": "4"}
TO_LETTER = {"0": "O", "8": "B", "1": "I", "4": "A", "7": "T", "6": "C", "3": "B"}
# pairs an OCR confuses, or letters that look alike: a fuzzy match charges them less
CONFUSABLE = frozenset(frozenset(pair) for pair in (
    "O0", "OD", "0D", "OQ", "0Q", "I1", "IL", "1L", "IT", "1T", "B8", "B3", "83", "S5",
    "Z2", "G6", "C6", "A4", "T7", "HK", "HM", "MN", "HN", "KX", "XY", "PR", "EF", "CO",
    "C0", "E3", "56", "68", "38", "DO",
))


class PlateQueryError(InvalidInputError):
    """A plate query that cannot match any plate; nothing was searched or written."""


def normalise(text: str) -> str:
    """Upper-case, Cyrillic look-alikes as Latin, separators and punctuation dropped."""
    upper = text.upper()
    mapped = "".join(CYRILLIC_TO_LATIN.get(char, char) for char in upper)
    return "".join(char for char in mapped if char.isascii() and char.isalnum())


@dataclass(frozen=True)
class GrammarFit:
    """A read that fits a format: the plate text, its format and how many fixes it took."""

    text: str
    format: str
    fixes: int
    start: int  # where in the normalised read the plate began


def _fit_one(text: str, pattern: str) -> tuple[str, int] | None:
    out: list[str] = []
    fixes = 0
    for char, kind in zip(text, pattern, strict=True):
        if kind == "D":
            if char.isdigit():
                out.append(char)
                continue
            fixed = TO_DIGIT.get(char)
        else:
            if char in PLATE_LETTERS:
                out.append(char)
                continue
            fixed = TO_LETTER.get(char)
        if fixed is None:
            return None
        out.append(fixed)
        fixes += 1
    return "".join(out), fixes


def fit(raw: str, *, max_fixes: int = 2) -> GrammarFit | None:
    """The best way ``raw`` (an OCR read) fits a plate format, or None.

    A longer read (the blue strip's "UA" read with the plate) is searched for a window
    that fits; the fit needing the fewest fixes wins, the national format on ties.
    """
    text = normalise(raw)
    best: GrammarFit | None = None
    for name, pattern in FORMATS.items():
        size = len(pattern)
        for start in range(0, len(text) - size + 1):
            fitted = _fit_one(text[start:start + size], pattern)
            if fitted is None or fitted[1] > max_fixes:
                continue
            # a window that leaves characters unexplained is worth less than a whole read
            cost = fitted[1] + (len(text) - size) * LEFTOVER_COST
            if best is None or cost < best.fixes + (len(text) - len(best.text)) * LEFTOVER_COST:
                best = GrammarFit(text=fitted[0], format=name, fixes=fitted[1], start=start)
    return best


def format_plate(text: str) -> str:
    """``AA1234BB`` as printed, ``AA 1234 BB``; other text unchanged."""
    if re.fullmatch(r"[A-Z]{2}\d{4}[A-Z]{2}", text):
        return f"{text[:2]} {text[2:6]} {text[6:]}"
    if re.fullmatch(r"\d{5}[A-Z]{2}", text):
        return f"{text[:5]} {text[5:]}"
    return text


@dataclass(frozen=True)
class PlateQuery:
    """A parsed plate query: ``pattern`` is normalised, with ``*`` and ``?`` kept."""

    text: str  # as typed
    pattern: str

    @property
    def has_wildcards(self) -> bool:
        return "*" in self.pattern or "?" in self.pattern

    @property
    def literal(self) -> str:
        """The query as a plate fitted to the grammar (O→0 in digit positions...)."""
        fitted = fit(self.pattern, max_fixes=MAX_PLATE_LENGTH)
        return fitted.text if fitted is not None and len(fitted.text) == len(
            self.pattern) else self.pattern

    def regex(self) -> re.Pattern[str]:
        body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                       for c in self.pattern)
        return re.compile(body)

    def sql_like(self) -> str:
        """The pattern as SQL LIKE (plates hold no ``%`` or ``_``)."""
        return self.pattern.replace("*", "%").replace("?", "_")


def parse_query(text: str) -> PlateQuery:
    """Parse what a user typed as a plate query.

    Raises ``PlateQueryError`` for an empty query, one that is only wildcards, a
    character no plate has, or one longer than any plate.
    """
    if len(text) > MAX_QUERY_TEXT:
        raise PlateQueryError(f"The plate query is {len(text)} characters long; a plate "
                              f"query has at most {MAX_QUERY_TEXT}.")
    upper = text.strip().upper()
    pattern: list[str] = []
    for char in upper:
        if char in SEPARATORS:
            continue
        if char in "*?.":
            pattern.append("?" if char == "." else char)
            continue
        mapped = CYRILLIC_TO_LATIN.get(char, char)
        if mapped.isascii() and (mapped.isdigit() or mapped in PLATE_LETTERS):
            pattern.append(mapped)
            continue
        raise PlateQueryError(
            f"'{char}' cannot be on a Ukrainian plate: use digits, the letters "
            f"{' '.join(PLATE_LETTERS)} (Latin or Cyrillic), * and ?.")
    joined = re.sub(r"\*+", "*", "".join(pattern))
    if not joined:
        raise PlateQueryError("The plate query is empty: give a plate, e.g. AE 1234 KX, "
                              "or part of one with * and ?.")
    if not joined.strip("*?"):
        raise PlateQueryError("The plate query is only wildcards, which would match every "
                              "plate: give at least one letter or digit.")
    if len(joined) > MAX_QUERY_LENGTH or len(joined.replace("*", "")) > MAX_PLATE_LENGTH:
        raise PlateQueryError(f"The plate query '{text.strip()}' is longer than any plate "
                              f"({MAX_PLATE_LENGTH} characters at most).")
    return PlateQuery(text=text, pattern=joined)


def _substitution_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return 0.3 if frozenset((a, b)) in CONFUSABLE else 1.0


def confusion_distance(a: str, b: str) -> float:
    """Edit distance where OCR confusions and look-alikes (O/0, B/8, H/K...) cost 0.3."""
    previous = [float(i) for i in range(len(b) + 1)]
    for i, char_a in enumerate(a, start=1):
        current = [float(i)]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1.0, current[j - 1] + 1.0,
                               previous[j - 1] + _substitution_cost(char_a, char_b)))
        previous = current
    return previous[-1]


def fuzzy_limit(pattern: str) -> float:
    """The largest distance a fuzzy match may have: one real error, plus look-alikes."""
    return max(1.0, round(0.2 * len(pattern), 2))


__all__ = [
    "CONFUSABLE",
    "CYRILLIC_TO_LATIN",
    "FORMATS",
    "MAX_PLATE_LENGTH",
    "PLATE_LETTERS",
    "GrammarFit",
    "PlateQuery",
    "PlateQueryError",
    "confusion_distance",
    "fit",
    "format_plate",
    "fuzzy_limit",
    "normalise",
    "parse_query",
]
