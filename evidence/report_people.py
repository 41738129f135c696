"""Who the custody entries name, as the report shows them: Oko users by full name, role
and agency, looked up by the username each entry records."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from evidence.report_base import ReportPerson
from storage.models.access import User


def people_of(session: Session, actors: Iterable[str]) -> dict[str, ReportPerson]:
    """The named Oko users among ``actors`` (usernames); other names are left out, and
    the report says what they are (an operating-system account, Oko itself)."""
    names = sorted(set(actors))
    if not names:
        return {}
    users = session.exec(select(User).where(col(User.username).in_(names))).all()
    return {u.username: ReportPerson(full_name=u.full_name, role=u.role.value,
                                     agency=u.agency) for u in users}


def custody_people(session: Session, custody: list[dict[str, Any]],
                   *extra: str) -> dict[str, ReportPerson]:
    """``people_of`` every actor in the custody records, the searchers named in their
    clips' provenance, and ``extra`` (the exporter)."""
    actors = [str(r["actor"]) for r in custody] + list(extra)
    for record in custody:
        provenance = (record.get("details") or {}).get("provenance") or {}
        if provenance.get("searched_by"):
            actors.append(str(provenance["searched_by"]))
    return people_of(session, actors)


def clip_added(custody: list[dict[str, Any]], clip_id: int | None
               ) -> tuple[str, datetime | None]:
    """Who added clip ``clip_id`` to the case and when, from its ``clip`` custody entry."""
    for record in custody:
        if record["action"] == "clip" and (record.get("details") or {}).get("clip_id") == clip_id:
            when = datetime.fromisoformat(str(record["recorded_at"]).replace("Z", "+00:00"))
            return str(record["actor"]), when
    return "", None


__all__ = ["clip_added", "custody_people", "people_of"]
