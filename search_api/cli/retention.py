"""CLI command: ``oko retention run [--dry-run] [--json]``.

It calls the same use case as the worker's periodic sweep, with the operator (or
``--as USER``) named in each deletion's audit entry.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from search_api.cli.common import cli_context, console, print_json
from search_api.usecases import retention as usecases

retention_app = typer.Typer(help="Delete footage past its camera's retention period.",
                            no_args_is_help=True)


@retention_app.command("run")
def run_command(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only list what would be deleted; delete nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete expired originals and what was derived from them (never evidence)."""
    with cli_context(ctx).usecase() as usecase:
        report = usecases.run_retention(usecase, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    verb = "Would delete" if dry_run else "Deleted"
    table = Table("camera", "original (SHA-256)", "from (UTC)", "to (UTC)", "rule")
    for row in report.deleted:
        table.add_row(row.camera_id, row.sha256, row.start_utc.strftime("%Y-%m-%d %H:%M:%S"),
                      row.end_utc.strftime("%Y-%m-%d %H:%M:%S"), row.rule)
    if report.deleted:
        console.print(table)
    console.print(f"{verb} {len(report.deleted)} original(s) "
                  f"({report.bytes_freed / 2**20:.1f} MiB); kept {len(report.kept_locked)} "
                  "under evidence lock.", highlight=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(retention_app, name="retention")
