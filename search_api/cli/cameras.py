"""CLI commands: ``oko cameras add | import | list | show``.

They call the same use cases as ``/api/cameras``, so every registration writes the API's
``camera_change`` entry in the same transaction, with the operator (or ``--as USER``)
as actor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from search_api.cli.common import cli_context, console, print_json
from search_api.usecases import cameras as usecases
from storage.cameras import CameraPublic, validate_camera

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
) -> None:
    """Register one camera."""
    camera = validate_camera(id=camera_id, name=name, district=district, latitude=lat,
                             longitude=lon, agency=agency, timezone=timezone,
                             allowed_agencies=allow or [])
    with cli_context(ctx).usecase() as usecase:
        row = usecases.register_camera(usecase, camera=camera)
    console.print(f"Registered camera {row.id} ({row.name}, {row.timezone}).")


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
