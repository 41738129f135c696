"""The root ``oko`` group loads a command's module only when that command runs.

Importing every command module up front made ``oko cameras list`` pay for the search
engine, FAISS and Celery. Each module keeps its ``register(app)``; this group imports
the module that owns the asked-for name and takes the command from it.
"""

from __future__ import annotations

import importlib

import click
import typer
from typer.core import TyperGroup

COMMAND_MODULES: dict[str, str] = {
    "init": "setup", "worker": "setup", "serve": "setup", "demo": "setup",
    "cameras": "cameras",
    "ingest": "ingest", "jobs": "ingest",
    "models": "models", "reindex": "models",
    "search": "search", "index": "search",
    "case": "evidence", "keys": "evidence", "verify": "verify",
    "redact": "redaction",
    "users": "access", "audit": "access",
    "recorder": "recording", "watch": "recording",
    "plates": "plates", "retention": "retention",
    "search-worker": "search_worker",
}


def load_command(name: str) -> click.Command | None:
    """The click command ``name`` as its module registers it, or None if unknown."""
    module_name = COMMAND_MODULES.get(name)
    if module_name is None:
        return None
    module = importlib.import_module(f"search_api.cli.{module_name}")
    holder = typer.Typer()
    module.register(holder)
    built = typer.main.get_command(holder)
    if isinstance(built, click.Group):
        return built.commands.get(name)
    return built if built.name == name else None


class LazyCommandGroup(TyperGroup):
    """A Typer group whose subcommands come from ``COMMAND_MODULES`` on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or load_command(cmd_name)


__all__ = ["COMMAND_MODULES", "LazyCommandGroup", "load_command"]
