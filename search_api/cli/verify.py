"""CLI command: ``oko verify``, the prosecutor's offline check of a bundle.

It reads no data dir and writes nothing, and its imports stay small: it is the one
command run on computers outside the installation. It takes the options of the
standalone ``oko-verify`` and prints the same report, with the same exit codes:
0 VALID, 3 INTACT, SIGNER NOT TRUSTED, 1 INVALID, 2 unusable input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from oko_verify.cli import TRUST_STORE_ENV, report_lines

from search_api.cli.common import print_json
from search_api.usecases.verify_offline import verify_offline


def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle zip or extracted bag directory.")],
    fingerprint: Annotated[list[str] | None, typer.Option(
        help="Pinned SHA-256 fingerprint of the signing certificate or its root "
             "(repeatable).")] = None,
    trusted_cert: Annotated[list[Path] | None, typer.Option(
        help="A trusted certificate, e.g. the installation's root (PEM; repeatable).")] = None,
    trust_store: Annotated[Path | None, typer.Option(
        envvar=TRUST_STORE_ENV, show_envvar=True,
        help="Directory of trusted *.pem/*.crt certificates and *.crl CRLs.")] = None,
    tsa_ca: Annotated[list[Path] | None, typer.Option(
        help="The CA certificate of a time-stamping authority you trust (PEM; "
             "repeatable); the trust store's certificates count too.")] = None,
    scratch_dir: Annotated[Path | None, typer.Option(
        envvar="OKO_SCRATCH_DIR",
        help="Where a zip is extracted (default: the system temp dir).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify a bundle offline: exit 0 VALID, 3 intact but signer not trusted, 1 INVALID,
    2 unusable input."""
    report = verify_offline(bundle, fingerprints=fingerprint or (),
                            trusted_certs=trusted_cert or (), trust_store=trust_store,
                            scratch_dir=scratch_dir, tsa_certs=tsa_ca or ())
    if as_json:
        print_json(report.to_dict())
    else:
        for line in report_lines(report):
            typer.echo(line)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    """Attach this module's command to the root app."""
    app.command("verify")(verify_command)
