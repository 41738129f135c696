"""CLI commands: ``oko plates track | read | watch list | watch add | watch remove | events``.

``oko search --plate`` (in ``search_api.cli.search``) searches plates; this module
holds the rest. The local operator sees every camera; ``oko --as USER`` acts as USER.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from search_api.cli.common import cli_context, console, print_json
from search_api.usecases import plate_watch
from search_api.usecases.plates import PlateMomentPublic, PlateSearchResultPublic, plate_journey
from storage.errors import InvalidInputError

plates_app = typer.Typer(help="Licence plates: journeys, reading, the watch list.",
                         no_args_is_help=True)
watch_app = typer.Typer(help="The watch list (administrators).", no_args_is_help=True)
plates_app.add_typer(watch_app, name="watch")


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInputError(f"--{name} '{value}' is not an ISO 8601 time, e.g. "
                                "2026-01-25T21:00 or 2026-01-25T19:00Z.") from exc


def print_sightings(moments: list[PlateMomentPublic], title: str) -> None:
    table = Table(title=title)
    for column in ("#", "plate", "match", "conf", "camera", "local time", "frame", "play"):
        table.add_column(column)
    for rank, m in enumerate(moments, start=1):
        span = f"{m.start_local:%Y-%m-%d %H:%M:%S}–{m.end_local:%H:%M:%S %z}"
        table.add_row(str(rank), m.plate_display, m.plate_match, f"{m.plate_confidence:.2f}",
                      m.camera_id, span, str(m.best_frame_id),
                      f"segment {m.segment_id} @ {m.offset_in_segment_s:.1f}s")
    console.print(table)


def print_plate_result(result: PlateSearchResultPublic) -> None:
    print_sightings(result.moments, f"{len(result.moments)} sighting(s) for "
                                    f"{result.provenance.pattern}")
    prov = result.provenance
    console.print(f"reader {prov.reader}  recogniser "
                  f"{prov.models['recogniser']['sha256'][:16]}…  {prov.candidates} compared"
                  f"{' (truncated)' if prov.truncated else ''}  {prov.elapsed_ms:.0f} ms",
                  highlight=False)
    if prov.text_applied:
        console.print(f"ranked by CLIP {prov.clip_preset} for '{prov.text}' (best frame of "
                      f"each sighting); {prov.sightings_without_embedding} sighting(s) without "
                      "a vector yet, listed last", highlight=False)
    elif prov.text_not_applied:
        console.print(prov.text_not_applied, highlight=False)
    if result.search_id is not None:
        console.print(f"search {result.search_id}: add a moment to a case with oko case "
                      f"add-clip ... --search {result.search_id} --frame FRAME", highlight=False)
    if prov.frames_waiting_for_plates:
        console.print(f"{prov.frames_waiting_for_plates} frame(s) still wait for plate "
                      "reading (`oko plates read` or `oko reindex`).", highlight=False)


@plates_app.command("track")
def track(
    ctx: typer.Context,
    plate: Annotated[str, typer.Argument(help="A whole plate, e.g. 'AE 1234 KX'.")],
    purpose: Annotated[str | None, typer.Option(
        "--purpose", help="Required: the case number or reason (audited).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO 8601.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO 8601.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A plate's journey: every sighting across cameras, in time order."""
    with cli_context(ctx).usecase() as usecase:
        journey = plate_journey(usecase, plate=plate, purpose=purpose,
                                start=_time(start, "from"), end=_time(end, "to"))
    if as_json:
        print_json(journey.model_dump(mode="json"))
        return
    print_sightings(journey.sightings, f"{journey.plate_display}: "
                                       f"{len(journey.sightings)} sighting(s)")
    console.print(f"cameras in order: {' → '.join(journey.cameras) or 'none'}",
                  highlight=False)


@plates_app.command("read")
def read(ctx: typer.Context, limit: Annotated[int | None, typer.Option(
        min=1, help="Read at most N frames.")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Read plates in every frame waiting for it (also part of `oko reindex`)."""
    with cli_context(ctx).usecase() as usecase:
        report, events = plate_watch.read_plates(usecase, limit=limit)
    if as_json:
        print_json({**report.as_dict(), "events": events})
        return
    console.print(f"Read {report.frames_read} frame(s), skipped {report.frames_static} "
                  f"static; {report.reads} plate read(s), {report.new_sightings} new "
                  f"sighting(s), {len(events)} watch-list event(s) in "
                  f"{report.seconds:.1f} s.", highlight=False)


@plates_app.command("events")
def events(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON.")] = False) -> None:
    """Sightings of watched plates, newest first."""
    with cli_context(ctx).usecase() as usecase:
        rows = plate_watch.list_events(usecase)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    table = Table(title=f"{len(rows)} event(s)")
    for column in ("id", "plate", "camera", "seen (UTC)", "reason", "sighting"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.id), row.plate_display, row.camera_id,
                      f"{row.seen_at_utc:%Y-%m-%d %H:%M:%S}", row.reason, str(row.sighting_id))
    console.print(table)


@watch_app.command("list")
def watch_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON.")] = False) -> None:
    """The plates on the watch list."""
    with cli_context(ctx).usecase() as usecase:
        rows = plate_watch.list_watches(usecase)
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    table = Table(title=f"{len(rows)} watched plate(s)")
    for column in ("id", "plate", "reason", "expires (UTC)", "added by", "active"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row.id), row.plate_display, row.reason,
                      f"{row.expires_at:%Y-%m-%d %H:%M}", row.added_by,
                      "yes" if row.active else "expired")
    console.print(table)


@watch_app.command("add")
def watch_add(
    ctx: typer.Context,
    plate: Annotated[str, typer.Argument(help="A whole plate, e.g. 'AE 1234 KX'.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is watched (audited).")],
    expires: Annotated[str, typer.Option("--expires", help="ISO 8601 expiry.")],
) -> None:
    """Watch a plate: new sightings of it raise an event."""
    expires_at = _time(expires, "expires")
    assert expires_at is not None
    with cli_context(ctx).usecase() as usecase:
        row = plate_watch.add_watch(usecase, body=plate_watch.WatchCreate(
            plate=plate, reason=reason, expires_at=expires_at))
    console.print(f"Watching {row.plate_display} until {row.expires_at:%Y-%m-%d %H:%M} UTC "
                  f"(entry {row.id}).", highlight=False)


@watch_app.command("remove")
def watch_remove(ctx: typer.Context, watch_id: Annotated[int, typer.Argument(
        min=1, help="The entry's id (oko plates watch list).")]) -> None:
    """Stop watching a plate (its past events stay)."""
    with cli_context(ctx).usecase() as usecase:
        plate_watch.remove_watch(usecase, watch_id=watch_id)
    console.print(f"Removed watch-list entry {watch_id}.", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(plates_app, name="plates")
