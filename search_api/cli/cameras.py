"""CLI commands: ``oko cameras add | import | list``.

Every registration is recorded in the audit log in the same transaction, like the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session

from search_api.audit import AuditAction, cli_actor, record_event
from search_api.cli.common import cli_context, console, print_json
from search_api.state import AppState
from storage.cameras import add_camera, import_cameras_csv, list_cameras, validate_camera
from storage.db import session_scope
from storage.models.media import Camera

cameras_app = typer.Typer(help="Register and list cameras.", no_args_is_help=True)


def camera_record(camera: Camera) -> dict[str, object]:
    return camera.model_dump(mode="json")


def _audit_created(session: Session, state: AppState, camera: Camera) -> None:
    """The same entry as ``POST /api/cameras``, with the CLI as actor."""
    record_event(session, state=state, actor=cli_actor(), agency="", ip="cli",
                 action=AuditAction.CAMERA_CHANGE, details={
                     "change": "create", "camera_id": camera.id, "owner": camera.agency,
                     "allowed_agencies": camera.allowed_agencies})


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
) -> None:
    """Register one camera."""
    camera = validate_camera(id=camera_id, name=name, district=district, latitude=lat,
                             longitude=lon, agency=agency, timezone=timezone,
                             allowed_agencies=allow or [])
    state = cli_context(ctx).state
    with session_scope(state.engine) as session:
        row = add_camera(session, camera=camera)
        _audit_created(session, state, row)
    console.print(f"Registered camera {row.id} ({row.name}, {row.timezone}).")


@cameras_app.command("import")
def import_csv(ctx: typer.Context, file: Annotated[Path, typer.Argument(
        help="CSV: id,name,district,latitude,longitude,agency,timezone[,allowed_agencies]")],
) -> None:
    """Register every camera in a CSV file, or none if any row is bad."""
    state = cli_context(ctx).state
    with session_scope(state.engine) as session:
        rows = import_cameras_csv(session, path=file)
        for row in rows:
            _audit_created(session, state, row)
    console.print(f"Imported {len(rows)} camera(s): {', '.join(r.id for r in rows)}.")


@cameras_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False) -> None:
    """List registered cameras."""
    with session_scope(cli_context(ctx).state.engine) as session:
        rows = list_cameras(session)
    if as_json:
        print_json([camera_record(row) for row in rows])
        return
    table = Table("id", "name", "district", "lat", "lon", "agency", "also", "time zone")
    for row in rows:
        table.add_row(row.id, row.name, row.district, f"{row.latitude:.5f}",
                      f"{row.longitude:.5f}", row.agency, ", ".join(row.allowed_agencies),
                      row.timezone)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(cameras_app, name="cameras")
