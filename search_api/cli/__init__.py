"""The ``oko`` command line. Commands are thin adapters over the use cases.

A command's module is imported only when that command runs (``search_api.cli.lazy``).
"""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import click
import typer
from pydantic import ValidationError

from search_api.cli.common import CliContext, err_console
from search_api.cli.lazy import LazyCommandGroup
from storage.errors import ConfigurationError, OkoError
from storage.settings import Settings

app = typer.Typer(
    name="oko",
    no_args_is_help=True,
    help="Oko: forensic video search and evidence management.",
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyCommandGroup,
)


@app.callback()
def _root(ctx: typer.Context, act_as: Annotated[str | None, typer.Option(
        "--as", metavar="USER", envvar="OKO_OPERATOR",
        help="Act as this Oko user, with their role; default OKO_OPERATOR, else the local "
             "operator (cli:<os user>, every right of the data dir), who may not add clips, "
             "export or hand over evidence: custody names a person.")] = None) -> None:
    if ctx.obj is None:
        ctx.obj = CliContext(settings=Settings())
    ctx.obj.act_as = act_as


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every ``OkoError`` becomes one sentence on stderr and its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    settings: Settings | None = None
    try:
        try:
            settings = Settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            field_name = "OKO_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
            raise ConfigurationError(f"Invalid setting {field_name}: {first['msg']}.") from exc
        result = app(args=args, standalone_mode=False, obj=CliContext(settings=settings))
        return result if isinstance(result, int) else 0
    except OkoError as exc:
        err_console.print(f"[bold red]error:[/] {exc.diagnostics()}", highlight=False)
        return exc.exit_code
    except ValidationError as exc:  # a command's options did not make a valid request
        err_console.print(f"[bold red]error:[/] {_first_problem(exc)}", highlight=False)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:
        # A bug, not a user error: one sentence here, the traceback in the data dir's log.
        where = _log_unexpected(settings)
        err_console.print(f"[bold red]error:[/] Oko failed unexpectedly ({type(exc).__name__});"
                          f" the details are in {where}.", highlight=False)
        return 70


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]).rstrip("_") or "input"
    return f"Invalid {where}: {first['msg']}."


def _log_unexpected(settings: Settings | None) -> str:
    """Append the current traceback to ``$OKO_HOME/logs/cli-errors.log`` (else stderr)."""
    if settings is not None:
        try:
            log_path = settings.home / "logs" / "cli-errors.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(f"--- {datetime.now(UTC).isoformat()} oko\n{traceback.format_exc()}")
            return str(log_path)
        except OSError:
            pass
    traceback.print_exc()
    return "the traceback above"


def entrypoint() -> None:
    code = main()
    # Everything left is freed with the process; without this, the interpreter's final
    # collections walk every loaded object (about 0.3 s of each short command).
    gc.freeze()
    sys.exit(code)
