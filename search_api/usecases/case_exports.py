"""Use case: the exports of a case, newest first, for whoever may see the case.

The web app's case page and the prosecutor's inbox list them to follow an export's
progress and to download a finished bundle (downloading re-checks access itself).
"""

from __future__ import annotations

from sqlmodel import col, select

from search_api.usecases.cases import get_visible_case
from search_api.usecases.context import UseCaseContext
from search_api.usecases.exports import ExportJobPublic
from storage.models.evidence import ExportJob
from storage.permissions import Permission


def list_exports(ctx: UseCaseContext, *, case_id: int) -> list[ExportJobPublic]:
    """Every export job of the case, newest first.

    Raises ``PermissionDeniedError`` for a role that may not read cases and
    ``NotFoundError`` for a case the actor may not see (like a missing one).
    """
    ctx.require(Permission.READ_CASES)
    case = get_visible_case(ctx, case_id)
    rows = ctx.session.exec(select(ExportJob).where(ExportJob.case_id == case.id)
                            .order_by(col(ExportJob.id).desc())).all()
    return [ExportJobPublic.from_job(row) for row in rows]


__all__ = ["list_exports"]
