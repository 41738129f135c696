"""CLI commands: ``oko models list | import | download`` and ``oko reindex``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from indexer.clip_presets import PRESETS, preset_dim
from search_api.cli.common import cli_context, console, err_console, print_json
from search_api.usecases.models import (
    download_weights,
    embed_waiting_frames,
    import_weights,
    model_overview,
)
from storage.models.search import EmbeddingModel

models_app = typer.Typer(help="Install and list CLIP models.", no_args_is_help=True)

PresetOption = Annotated[str | None, typer.Option(
    "--preset", help=f"Model preset ({', '.join(PRESETS)}); default OKO_CLIP_PRESET.")]


def _model_record(row: EmbeddingModel) -> dict[str, Any]:
    return row.model_dump(mode="json")


@models_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of tables.")] = False) -> None:
    """Show the presets, the installed weights and which weights search uses."""
    with cli_context(ctx).usecase() as usecase:
        overview = model_overview(usecase)
    rows, active = overview.installed, asdict(overview.active)
    if as_json:
        print_json({"active": active, "installed": [_model_record(r) for r in rows],
                    "presets": [{"name": p.name, "architecture": p.architecture,
                                 "pretrained_tag": p.pretrained_tag, "dim": preset_dim(p),
                                 "test_only": p.test_only} for p in PRESETS.values()]})
        return
    presets = Table("preset", "architecture", "pretrained", "dim", "description",
                    title="Presets")
    for p in PRESETS.values():
        presets.add_row(p.name, p.architecture, p.pretrained_tag or "-", str(preset_dim(p)),
                        p.description)
    console.print(presets)
    if rows:
        installed = Table("preset", "source", "weights sha256", "path", "installed",
                          title="Installed weights")
        for r in rows:
            installed.add_row(r.preset, r.source, r.weights_sha256[:16], r.path,
                              f"{r.installed_at:%Y-%m-%d %H:%M} UTC")
        console.print(installed)
    if active["installed"]:
        console.print(f"Search uses {active['preset']} weights {active['weights_sha256'][:16]} "
                      f"({active['source']}: {active['path']}); "
                      f"{active['pending_frames']} frame(s) wait for embedding.")
    else:
        console.print(f"[bold yellow]No model installed.[/] {active['message']}",
                      highlight=False)


@models_app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="open_clip checkpoint (.pt, .bin, .safetensors).")],
    preset: PresetOption = None,
) -> None:
    """Copy a weights file into the data dir after checking it loads into the preset."""
    with cli_context(ctx).usecase() as usecase:
        row = import_weights(usecase, file=file, preset=preset)
    console.print(f"Imported {file.name} for preset {row.preset} "
                  f"(SHA-256 {row.weights_sha256}); run `oko reindex` to embed waiting frames.")


@models_app.command("download")
def download_command(ctx: typer.Context, preset: PresetOption = None) -> None:
    """Download the preset's weights from Hugging Face into the data dir (needs internet)."""
    with cli_context(ctx).usecase() as usecase:
        row = download_weights(usecase, preset=preset)
    console.print(f"Downloaded {row.preset} weights (SHA-256 {row.weights_sha256}); "
                  "run `oko reindex` to embed waiting frames.")


def reindex(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(min=1, help="Embed at most N frames.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read plates in waiting frames; embed every frame waiting for the current model, then
    update the search index."""
    bar = Progress("embedding", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err_console, disable=as_json)
    task = bar.add_task("embedding", total=None)

    def progress(done: int, total: int) -> None:
        bar.start()  # only once the model has loaded: a missing model is one clean line
        bar.update(task, completed=done, total=total)

    from search_api.usecases.plate_watch import read_plates  # plates first: need no CLIP

    with cli_context(ctx).usecase() as usecase:
        plates, events = read_plates(usecase, limit=limit)
    if not as_json:
        console.print(f"Read plates in {plates.frames_read} frame(s): {plates.reads} read(s), "
                      f"{plates.new_sightings} new sighting(s), {len(events)} event(s).")
    try:
        with cli_context(ctx).usecase() as usecase:
            report, synced = embed_waiting_frames(usecase, limit=limit, progress=progress)
    finally:
        bar.stop()
    if as_json:
        print_json({**report.as_dict(), "frames_indexed": synced.frames_indexed,
                    "shards_written": synced.shards_written,
                    "plates": {**plates.as_dict(), "events": events}})
    else:
        console.print(f"Embedded {report.embedded} frame(s) and linked {report.linked} static "
                      f"frame(s) ({report.skipped_fraction:.0%} skipped by motion gating); "
                      f"indexed {synced.frames_indexed} frame(s) into "
                      f"{len(synced.shards_written)} shard(s).")
    for failure in report.failed:
        err_console.print(f"warning: frame {failure.frame_id} stays pending: {failure.reason}",
                          highlight=False)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(models_app, name="models")
    app.command("reindex")(reindex)
