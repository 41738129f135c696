"""Schemathesis hooks for the schema-fuzzing run (loaded through ``SCHEMATHESIS_HOOKS``).

Two classes of input that reached the handlers as 500s (issue 10, finding 7) are tried on
purpose, not left to chance in a few examples per operation:

- ``date-time`` fields get the ends of the calendar (``0001-01-01T00:00:00+05:00`` has no
  UTC equivalent) as often as ordinary times;
- JSON, form and query strings are tried as they were generated and with non-ASCII text.

Every call is appended to the JSON-lines file named by ``OKO_FUZZ_RECORD``, so the test
can check that both classes were really sent.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import schemathesis
from hypothesis import strategies as st

EXTREME_DATETIMES = (
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-05:00",
    "9999-12-31T23:59:59.999999",
    "1800-01-01T00:00:00+00:00",
)
NON_ASCII = "Ключ é ☃ 𝔘 مرحبا\u2028"

_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
schemathesis.openapi.format("date-time", st.one_of(
    st.sampled_from(EXTREME_DATETIMES),
    st.datetimes(timezones=st.none() | _offsets).map(datetime.isoformat)))


def _with_non_ascii(value: Any) -> Any:
    if isinstance(value, str):
        return NON_ASCII + value
    if isinstance(value, dict):
        return {key: _with_non_ascii(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_non_ascii(item) for item in value]
    return value


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([body, _with_non_ascii(body)])


@schemathesis.hook
def flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([query, _with_non_ascii(query)])


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    record = os.environ.get("OKO_FUZZ_RECORD")
    if not record:
        return
    sent = {"method": case.method, "path": case.path, "status": response.status_code,
            "body": case.body, "query": case.query}
    with open(record, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(sent, ensure_ascii=False, default=repr) + "\n")
