"""Routes for plates: plate search, a plate's journey, crops, the watch list and events.

Search, journeys and events need ``SEARCH`` (investigators, supervisors); crops need
``VIEW_FOOTAGE``; the watch list needs ``MANAGE_WATCHLIST`` (administrators).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from search_api.deps import DbId, UseCaseDep, requires
from search_api.usecases import plate_watch
from search_api.usecases.plates import (
    JourneyPublic,
    PlateSearchQuery,
    PlateSearchResultPublic,
    plate_journey,
    search_plates,
    sighting_crop,
)
from storage.permissions import Permission

router = APIRouter(prefix="/plates", tags=["plates"])
SEARCH = [Depends(requires(Permission.SEARCH))]
WATCH = [Depends(requires(Permission.MANAGE_WATCHLIST))]


@router.post("/search", response_model=PlateSearchResultPublic, dependencies=SEARCH)
def post_plate_search(body: PlateSearchQuery, ctx: UseCaseDep) -> PlateSearchResultPublic:
    return search_plates(ctx, query=body)


@router.get("/events", response_model=list[plate_watch.PlateEventPublic],
            dependencies=SEARCH)
def read_events(ctx: UseCaseDep, limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                ) -> list[plate_watch.PlateEventPublic]:
    return plate_watch.list_events(ctx, limit=limit)


@router.get("/watchlist", response_model=list[plate_watch.WatchPublic], dependencies=WATCH)
def read_watchlist(ctx: UseCaseDep) -> list[plate_watch.WatchPublic]:
    return plate_watch.list_watches(ctx)


@router.post("/watchlist", response_model=plate_watch.WatchPublic, dependencies=WATCH,
             status_code=status.HTTP_201_CREATED)
def post_watch(body: plate_watch.WatchCreate, ctx: UseCaseDep) -> plate_watch.WatchPublic:
    return plate_watch.add_watch(ctx, body=body)


@router.delete("/watchlist/{watch_id}", status_code=status.HTTP_204_NO_CONTENT,
               response_class=Response, dependencies=WATCH)
def delete_watch(watch_id: DbId, ctx: UseCaseDep) -> Response:
    plate_watch.remove_watch(ctx, watch_id=watch_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sightings/{sighting_id}/crop", response_class=Response,
            dependencies=[Depends(requires(Permission.VIEW_FOOTAGE))],
            responses={200: {"content": {"image/jpeg": {}}, "description": "The plate crop"}})
def read_crop(sighting_id: DbId, ctx: UseCaseDep) -> Response:
    return Response(content=sighting_crop(ctx, sighting_id=sighting_id),
                    media_type="image/jpeg")


@router.get("/{plate}/journey", response_model=JourneyPublic, dependencies=SEARCH)
def read_journey(
    plate: str, ctx: UseCaseDep,
    purpose: Annotated[str | None, Query(max_length=500)] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
) -> JourneyPublic:
    return plate_journey(ctx, plate=plate, purpose=purpose, start=from_, end=to)
