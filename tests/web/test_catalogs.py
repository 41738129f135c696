"""The message catalogs: both have every key, every key the code names exists, and no
user-facing literal sits in a page module (pages say everything through ``t(key)``)."""

from __future__ import annotations

import json
import re

from indexer.daynight import DayPhase
from search_api.audit import AuditAction
from search_api.web_ui import I18N_DIR, WEB_DIR
from storage.gaps import GapReason
from storage.models.access import Role
from storage.state_messages import StateMessage

CATALOGS = {lang: json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in ("uk", "en")}
MODULES = {p.relative_to(WEB_DIR).as_posix(): p.read_text(encoding="utf-8")
           for p in sorted(WEB_DIR.rglob("*.js"))}
PAGES = {name: text for name, text in MODULES.items() if name.startswith("pages/")}
STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|`((?:[^`\\]|\\.)*)`')
KEY = re.compile(r"^[a-z_]+\.[a-z0-9_]+$")
# a literal a user would read: Cyrillic, or two words of letters
USER_TEXT = re.compile(r"[А-Яа-яІіЇїЄєҐґ]|[A-Za-z]{2,} +[A-Za-z]{2,}")


def literals(source: str) -> list[str]:
    without_comments = re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)
    without_comments = re.sub(r"/\*.*?\*/", "", without_comments, flags=re.DOTALL)
    # a template literal's ${...} parts are code, not text
    return [m.group(1) if m.group(1) is not None else re.sub(r"\$\{[^}]*\}?\}?", " ", m.group(2))
            for m in STRING.finditer(without_comments)]


def test_both_catalogs_have_the_same_keys_and_no_empty_message() -> None:
    assert CATALOGS["uk"].keys() == CATALOGS["en"].keys()
    for lang, catalog in CATALOGS.items():
        assert all(isinstance(v, str) and v.strip() for v in catalog.values()), lang
        assert CATALOGS["uk"] != CATALOGS["en"]


def test_every_key_the_code_names_is_in_the_catalogs() -> None:
    named = {s for text in MODULES.values() for s in literals(text) if KEY.match(s)}
    assert len(named) > 150  # the pages really go through the catalog
    assert named - CATALOGS["uk"].keys() == set()


def test_keys_built_from_server_values_cover_every_value() -> None:
    expected = ({f"role.{r.value}" for r in Role} | {f"phase.{p.value}" for p in DayPhase}
                | {f"action.{a.value}" for a in AuditAction}
                | {f"gap_reason.{r.value}" for r in GapReason}
                | {f"recorder_message.{m.value}" for m in StateMessage}
                | {f"verdict.{v}" for v in ("valid", "intact_signer_not_trusted", "invalid")}
                | {f"export_status.{s}" for s in ("awaiting_approval", "queued", "running",
                                                  "done", "failed")})
    assert expected - CATALOGS["uk"].keys() == set()


def test_no_user_facing_literal_in_a_page_module() -> None:
    found = {name: [s for s in literals(text) if USER_TEXT.search(s)]
             for name, text in PAGES.items()}
    assert {name: strings for name, strings in found.items() if strings} == {}


def test_the_check_would_catch_a_literal() -> None:
    assert [s for s in literals('h("p", {}, "Nothing was found")') if USER_TEXT.search(s)]
    assert [s for s in literals("h('p', {}, `Справ немає`)") if USER_TEXT.search(s)]
