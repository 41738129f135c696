"""CLI commands: ``oko search`` and ``oko index rebuild | sync``.

The local operator runs with the data dir's own rights, so it searches every camera;
``oko --as USER search ...`` searches as that user.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from indexer.daynight import DayPhase
from indexer.search.engine import DEFAULT_K, MAX_K
from indexer.shards import SyncReport
from search_api.cli.common import cli_context, console, print_json
from search_api.search_support import SearchResultPublic
from search_api.usecases.models import maintain_shards
from search_api.usecases.search import SearchQuery, run_search
from storage.errors import InvalidInputError, NotFoundError

index_app = typer.Typer(help="Maintain the FAISS search index.", no_args_is_help=True)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInputError(f"--{name} '{value}' is not an ISO 8601 time, e.g. "
                                "2026-01-25T21:00 or 2026-01-25T19:00Z.") from exc


def _phase(night: bool, day: bool, dusk: bool) -> DayPhase | None:
    chosen = [p for p, on in ((DayPhase.NIGHT, night), (DayPhase.DAY, day),
                              (DayPhase.DUSK, dusk)) if on]
    if len(chosen) > 1:
        raise InvalidInputError("Choose at most one of --night, --day and --dusk.")
    return chosen[0] if chosen else None


def _read_image(path: Path | None) -> bytes | None:
    if path is None:
        return None
    if not path.is_file():
        raise NotFoundError(f"Image file '{path}' does not exist.")
    return path.read_bytes()


def _print_result(result: SearchResultPublic) -> None:
    table = Table(title=f"{len(result.moments)} moment(s)")
    for column in ("#", "camera", "local time", "score", "frame", "play"):
        table.add_column(column)
    for rank, m in enumerate(result.moments, start=1):
        span = f"{m.start_local:%Y-%m-%d %H:%M:%S}–{m.end_local:%H:%M:%S %z}"
        table.add_row(str(rank), m.camera_id, span, f"{m.score:.3f}", str(m.best_frame_id),
                      f"segment {m.segment_id} @ {m.offset_in_segment_s:.1f}s")
    console.print(table)
    prov = result.provenance
    filters = "; ".join(f"{f.name}={f.value} ({f.source})" for f in prov.filters) or "none"
    console.print(f"model {prov.preset} weights {prov.weights_sha256[:16]}…  k={prov.k}"
                  f"{' (truncated)' if prov.truncated else ''}  {prov.elapsed_ms:.0f} ms",
                  highlight=False)
    console.print(f"filters: {filters}", highlight=False)
    console.print(f"shards: {', '.join(prov.shards_searched) or 'none'}", highlight=False)
    if result.search_id is not None:
        console.print(f"search {result.search_id}: add a moment to a case with oko case "
                      f"add-clip ... --search {result.search_id} --frame FRAME", highlight=False)
    if prov.frames_waiting_for_embedding:
        console.print(f"{prov.frames_waiting_for_embedding} frame(s) in range still wait for "
                      "embedding (`oko reindex`).", highlight=False)


def search_command(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="What to look for, e.g. 'red car at "
                                               "night' or 'червоне авто вночі'.")] = None,
    camera: Annotated[list[str] | None, typer.Option(
        "--camera", help="Camera id (repeatable).")] = None,
    district: Annotated[list[str] | None, typer.Option(
        "--district", help="District (repeatable).")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="ISO 8601; without offset: the cameras' local time.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="ISO 8601, like --from.")] = None,
    night: Annotated[bool, typer.Option("--night", help="Only night frames.")] = False,
    day: Annotated[bool, typer.Option("--day", help="Only daylight frames.")] = False,
    dusk: Annotated[bool, typer.Option("--dusk", help="Only twilight frames.")] = False,
    image: Annotated[Path | None, typer.Option(
        "--image", help="Find frames that look like this image.")] = None,
    similar: Annotated[int | None, typer.Option(
        "--similar", help="Find frames that look like this frame id.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", help=f"Frames to rank (k), 1 to {MAX_K}.")] = DEFAULT_K,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    purpose: Annotated[str | None, typer.Option(
        "--purpose", help="Required: the case number or reason (audited).")] = None,
    plate: Annotated[str | None, typer.Option(
        "--plate", help="A licence plate, whole or with * and ?, e.g. 'AE 12?? KX' "
        "(needs no CLIP model).")] = None,
) -> None:
    """Search footage in plain words and/or by image; filters apply before ranking."""
    if plate is not None:
        _plate_search(ctx, plate=plate, text=text, camera=camera, district=district,
                      start=start, end=end, phase=_phase(night, day, dusk), limit=limit,
                      purpose=purpose, as_json=as_json)
        return
    query = SearchQuery(text=text, similar_to_frame_id=similar, cameras=camera or [],
                        districts=district or [], from_=_time(start, "from"),
                        to=_time(end, "to"), day_phase=_phase(night, day, dusk), k=limit,
                        purpose=purpose)
    image_bytes = _read_image(image)
    with cli_context(ctx).usecase() as usecase:
        public = run_search(usecase, query=query, image=image_bytes)
    if as_json:
        print_json(public.model_dump(mode="json"))
    else:
        _print_result(public)


def _plate_search(ctx: typer.Context, *, plate: str, text: str | None,
                  camera: list[str] | None, district: list[str] | None, start: str | None,
                  end: str | None, phase: DayPhase | None, limit: int, purpose: str | None,
                  as_json: bool) -> None:
    from search_api.cli.plates import print_plate_result
    from search_api.usecases.plates import PlateSearchQuery, search_plates

    query = PlateSearchQuery(plate=plate, cameras=camera or [], districts=district or [],
                             from_=_time(start, "from"), to=_time(end, "to"),
                             day_phase=phase, limit=min(limit, 500), purpose=purpose)
    with cli_context(ctx).usecase() as usecase:
        public = search_plates(usecase, query=query, text=text)
    if as_json:
        print_json(public.model_dump(mode="json"))
    else:
        print_plate_result(public)


def _report(report: SyncReport, verb: str) -> None:
    console.print(f"{verb} {len(report.shards_written)} shard(s) holding "
                  f"{report.frames_indexed} frame(s); removed {len(report.shards_removed)}; "
                  f"day phase computed for {report.phases_computed} frame(s).", highlight=False)
    if report.mixed_model_shards:
        console.print(f"Not indexed (frames of two models in one day, run `oko reindex`): "
                      f"{', '.join(report.mixed_model_shards)}.", highlight=False)


@index_app.command("rebuild")
def rebuild(ctx: typer.Context) -> None:
    """Rewrite every shard from the database (after a crash, a restore or a model change)."""
    with cli_context(ctx).usecase() as usecase:
        _report(maintain_shards(usecase, rebuild=True), "Rebuilt")


@index_app.command("sync")
def sync(ctx: typer.Context) -> None:
    """Add embedded frames that are not in a shard yet (what `oko reindex` runs at its end)."""
    with cli_context(ctx).usecase() as usecase:
        _report(maintain_shards(usecase, rebuild=False), "Wrote")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("search")(search_command)
    app.add_typer(index_app, name="index")
