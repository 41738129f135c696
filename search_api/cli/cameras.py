"""CLI commands: ``oko cameras add | import | list | show | set | status``.

They call the same use cases as ``/api/cameras``, so every registration writes the API's
``camera_change`` entry in the same transaction, with the operator (or ``--as USER``)
as actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from search_api.cli.common import cli_context, console, print_json
from search_api.usecases import cameras as usecases
from storage.cameras import CameraPublic, validate_camera
from storage.stream_urls import redact_stream_url

if TYPE_CHECKING:
    from search_api.usecases.recording import CameraStatus

cameras_app = typer.Typer(help="Register and list cameras.", no_args_is_help=True)


@cameras_app.command("add")
def add(
    ctx: typer.Context,
    camera_id: Annotated[str, typer.Option("--id", help="Camera id, e.g. CAM-001.")],
    name: Annotated[str, typer.Option(help="Human-readable location.")],
    lat: Annotated[float, typer.Option("--lat", help="Latitude, -90..90.")],
    lon: Annotated[float, typer.Option("--lon", help="Longitude, -180..180.")],
    agency: Annotated[str, typer.Option(help="Owning agency.")],
    district: Annotated[str, typer.Option(help="District.")] = "",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "Europe/Kyiv",
    allow: Annotated[list[str] | None, typer.Option(
        "--allow", help="Another agency that may search this camera (repeatable).")] = None,
    stream_url: Annotated[str | None, typer.Option(
        "--stream-url", help="Record this stream continuously (rtsp://, http://, srt://...;"
        " rtsp+listen:// for a camera that pushes).")] = None,
) -> None:
    """Register one camera."""
    camera = validate_camera(id=camera_id, name=name, district=district, latitude=lat,
                             longitude=lon, agency=agency, timezone=timezone,
                             allowed_agencies=allow or [])
    with cli_context(ctx).usecase() as usecase:
        row = usecases.register_camera(usecase, camera=camera, stream_url=stream_url)
    recorded = (f"; recorded from {redact_stream_url(row.stream_url)}" if row.stream_url
                else "")
    console.print(f"Registered camera {row.id} ({row.name}, {row.timezone}){recorded}.")


@cameras_app.command("set")
def set_command(
    ctx: typer.Context, camera_id: Annotated[str, typer.Argument(help="Camera id.")],
    stream_url: Annotated[str | None, typer.Option(
        "--stream-url", help="The stream to record; the recorders pick it up.")] = None,
    no_stream: Annotated[bool, typer.Option(
        "--no-stream", help="Stop recording this camera (its URL is removed).")] = False,
    retention_days: Annotated[int | None, typer.Option(
        "--retention-days", help="Keep its footage N days after recording (evidence is "
        "always kept).")] = None,
    default_retention: Annotated[bool, typer.Option(
        "--default-retention", help="Use OKO_RETENTION_DAYS for it again.")] = False,
) -> None:
    """Change a camera's stream URL (shown only with its password hidden) or retention."""
    url_given = stream_url is not None or no_stream
    retention_given = retention_days is not None or default_retention
    if (stream_url is not None and no_stream) or (
            retention_days is not None and default_retention) or not (
            url_given or retention_given):
        raise typer.BadParameter("give --stream-url URL or --no-stream, and/or "
                                 "--retention-days N or --default-retention")
    if url_given:
        with cli_context(ctx).usecase() as usecase:
            row = usecases.set_stream_url(usecase, camera_id=camera_id,
                                          stream_url=None if no_stream else stream_url)
    if retention_given:
        from search_api.usecases.retention import set_retention_days

        with cli_context(ctx).usecase() as usecase:
            row = set_retention_days(usecase, camera_id=camera_id, days=retention_days)
        kept = (f"{row.retention_days} days" if row.retention_days is not None
                else "the installation's default (OKO_RETENTION_DAYS)")
        console.print(f"Camera {row.id} keeps its footage for {kept}.")
    if not url_given:
        return
    if row.stream_url:
        console.print(f"Camera {row.id} is recorded from {redact_stream_url(row.stream_url)}.")
    else:
        console.print(f"Camera {row.id} has no stream URL; it is not recorded.")


def _print_status(rows: list[CameraStatus]) -> None:
    table = Table("id", "state", "last file (UTC)", "lag s", "kbit/s", "fps", "gaps 24 h",
                  "message")
    for row in rows:
        gaps = (f"{len(row.gaps_last_24h)} ({row.gap_seconds_last_24h:.0f} s)"
                if row.gaps_last_24h else "0")
        table.add_row(
            row.camera_id, row.state,
            row.last_file_end_utc.strftime("%Y-%m-%d %H:%M:%S") if row.last_file_end_utc
            else "-", f"{row.ingest_lag_s:.1f}" if row.ingest_lag_s is not None else "-",
            f"{row.bitrate_bps / 1000:.0f}" if row.bitrate_bps else "-",
            f"{row.fps:.1f}" if row.fps else "-", gaps, row.message)
    console.print(table)
    recent = [(row.camera_id, gap) for row in rows for gap in row.gaps_last_24h]
    if not recent:
        return
    console.print("Gaps in the last 24 h (UTC):", highlight=False)
    for camera_id, gap in recent:  # one line each, so a long reason wraps as text
        until = (f"{gap.end_utc:%Y-%m-%d %H:%M:%S} ({gap.seconds:.0f} s)"
                 if gap.end_utc and gap.seconds is not None else "still open")
        console.print(f"  {camera_id}  {gap.start_utc:%Y-%m-%d %H:%M:%S} to {until}: "
                      f"{gap.reason}", highlight=False, markup=False)


@cameras_app.command("status")
def status_command(
    ctx: typer.Context,
    camera_id: Annotated[str | None, typer.Argument(help="Camera id (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recording health: state, last file, ingest lag, bitrate, fps, gaps in 24 h."""
    from search_api.usecases import recording  # loads the recorder only when asked

    with cli_context(ctx).usecase() as usecase:
        rows = ([recording.camera_status(usecase, camera_id=camera_id)] if camera_id
                else recording.cameras_status(usecase))
    if as_json:
        data = [row.model_dump(mode="json") for row in rows]
        print_json(data[0] if camera_id else data)
    else:
        _print_status(rows)


@cameras_app.command("import")
def import_csv(ctx: typer.Context, file: Annotated[Path, typer.Argument(
        help="CSV: id,name,district,latitude,longitude,agency,timezone[,allowed_agencies]")],
) -> None:
    """Register every camera in a CSV file, or none if any row is bad."""
    with cli_context(ctx).usecase() as usecase:
        rows = usecases.import_cameras(usecase, path=file)
    console.print(f"Imported {len(rows)} camera(s): {', '.join(r.id for r in rows)}.")


def _print_table(rows: list[CameraPublic]) -> None:
    table = Table("id", "name", "district", "lat", "lon", "agency", "also", "time zone")
    for row in rows:
        table.add_row(row.id, row.name, row.district, f"{row.latitude:.5f}",
                      f"{row.longitude:.5f}", row.agency, ", ".join(row.allowed_agencies),
                      row.timezone)
    console.print(table)


@cameras_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the cameras you may see (every camera for the operator)."""
    with cli_context(ctx).usecase() as usecase:
        rows = [CameraPublic.of(c) for c in usecases.list_visible_cameras(usecase)]
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
    else:
        _print_table(rows)


@cameras_app.command("show")
def show(ctx: typer.Context, camera_id: Annotated[str, typer.Argument(help="Camera id.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show one camera."""
    with cli_context(ctx).usecase() as usecase:
        row = CameraPublic.of(usecases.read_camera(usecase, camera_id=camera_id))
    if as_json:
        print_json(row.model_dump(mode="json"))
    else:
        _print_table([row])


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(cameras_app, name="cameras")
