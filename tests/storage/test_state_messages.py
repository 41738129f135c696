"""Recorder state messages: one English sentence, a code, and values both catalogs name."""

from __future__ import annotations

import json
import re

from search_api.web_ui import I18N_DIR
from storage.gaps import GapReason, gap_reason
from storage.state_messages import (
    ENGLISH,
    Said,
    StateMessage,
    public_args,
    said,
    stored_message,
)

CATALOGS = {lang: json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in ("uk", "en")}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_code_has_a_sentence_and_both_catalogs_name_the_same_values() -> None:
    assert set(ENGLISH) == set(StateMessage)
    for code, sentence in ENGLISH.items():
        names = set(PLACEHOLDER.findall(sentence))
        for lang, catalog in CATALOGS.items():
            entry = catalog[f"recorder_message.{code.value}"]
            assert set(PLACEHOLDER.findall(entry)) == names, (lang, code)
        assert CATALOGS["en"][f"recorder_message.{code.value}"] == sentence


def test_a_reconnecting_message_states_its_gap_reason_in_english_and_splits_it_for_clients(
        ) -> None:
    message = said(StateMessage.RECONNECTING, reason=gap_reason(GapReason.STREAM_TIMEOUT, "10"),
                   delay=2.0, attempt=3)
    assert message.english() == ("The stream did not answer within 10 s. Reconnecting in 2 s "
                                 "(attempt 3).")
    assert message.row_fields() == {
        "message": message.english(), "message_code": "reconnecting",
        "message_args": {"reason": "stream_timeout: 10", "delay": "2", "attempt": "3"}}
    assert public_args(message.args) == {**message.args, "reason_code": "stream_timeout",
                                         "reason_detail": "10"}


def test_scrubbing_reaches_every_value_and_keeps_the_code() -> None:
    message = said(StateMessage.FILE_NOT_INGESTED, error="rtsp://cam:secret@10.0.0.7 failed",
                   kept="/spool/q")
    clean = message.scrubbed(lambda text: text.replace("cam:secret@", ""))
    assert clean == Said(StateMessage.FILE_NOT_INGESTED,
                         {"error": "rtsp://10.0.0.7 failed", "kept": "/spool/q"})
    assert "secret" not in clean.english()


def test_a_row_written_before_codes_keeps_its_own_sentence() -> None:
    assert stored_message("", {}) is None
    assert stored_message("no_such_code", {"x": "1"}) is None
    assert stored_message("watching", {"folder": "/nvr"}) == said(StateMessage.WATCHING,
                                                                 folder="/nvr")
