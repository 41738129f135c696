"""Shared plumbing for CLI commands: the per-invocation context and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console

from search_api.state import AppState, build_state
from storage.settings import Settings

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliContext:
    """Settings read once in ``main``; the state (engine, stores) is built on first use."""

    settings: Settings
    _state: AppState | None = field(default=None, repr=False)

    @property
    def state(self) -> AppState:
        if self._state is None:
            self._state = build_state(self.settings)
        return self._state


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
