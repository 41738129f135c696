"""CLI command: ``oko verify``, the prosecutor's offline check of a bundle.

It reads no data dir and writes nothing, and its imports stay small: it is the one
command run on computers outside the installation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search_api.cli.common import print_json, print_report
from search_api.usecases.verify_offline import verify_offline


def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle zip or extracted bag directory.")],
    fingerprint: Annotated[str | None, typer.Option(
        help="Expected signer certificate SHA-256 fingerprint.")] = None,
    trusted_cert: Annotated[Path | None, typer.Option(
        help="A trusted signer certificate (PEM).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify a bundle offline: exit 0 valid, 1 invalid, 2 unusable input."""
    report = verify_offline(bundle, fingerprint=fingerprint, trusted_cert=trusted_cert)
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report.checks, ok=report.ok)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's command to the root app."""
    app.command("verify")(verify_command)
