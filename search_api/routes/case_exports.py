"""GET /api/cases/{case_id}/exports: a case's exports (the web app follows them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from search_api.deps import DbId, UseCaseDep, requires
from search_api.usecases.case_exports import list_exports
from search_api.usecases.exports import ExportJobPublic
from storage.permissions import Permission

router = APIRouter(tags=["cases"])


@router.get("/cases/{case_id}/exports", response_model=list[ExportJobPublic],
            dependencies=[Depends(requires(Permission.READ_CASES))])
def read_exports(case_id: DbId, ctx: UseCaseDep) -> list[ExportJobPublic]:
    return list_exports(ctx, case_id=case_id)


__all__ = ["router"]
