"""CLI commands: ``oko recorder`` (record every camera stream) and ``oko watch DIR``.

``oko serve`` starts the same recorders itself (``OKO_SERVE_RECORDERS``); ``oko
recorder`` is the process to run on recorder machines when recording is scaled out.
Both run until Ctrl-C or SIGTERM, then let each ffmpeg finish its file, ingest it and
open the gap that stopping leaves.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from search_api.cli.common import cli_context, console
from search_api.usecases.recording import build_recorder_pool, build_watcher
from storage.errors import InvalidInputError


def _wait_for_signal() -> int:
    """Block until SIGINT or SIGTERM; returns the signal's number."""
    stopped = threading.Event()
    received: list[int] = []

    def handle(sig: int, _frame: FrameType | None) -> None:
        received.append(sig)
        stopped.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0]


def recorder_command(
    ctx: typer.Context,
    cameras: Annotated[list[str] | None, typer.Option(
        "--camera", help="Record only this camera (repeatable; default: every camera with"
        " a stream URL).")] = None,
) -> int:
    """Record every camera that has a stream URL into the spool and ingest each file."""
    state = cli_context(ctx).state
    pool = build_recorder_pool(state, camera_ids=cameras or None)
    pool.start()
    console.print(f"Recording into {state.settings.spool_dir} in "
                  f"{state.settings.record_segment_seconds:g} s files (Ctrl-C to stop).")
    try:
        sig = _wait_for_signal()
    finally:
        pool.stop()
    return 128 + sig


def _mapping(pairs: list[str]) -> list[tuple[str, str]]:
    mapping: list[tuple[str, str]] = []
    for pair in pairs:
        pattern, _, camera = pair.rpartition("=")
        if not pattern or not camera:
            raise InvalidInputError(f"'{pair}' is not PATTERN=CAMERA, e.g. "
                                    "'CAM-001_*.mp4=CAM-001'.")
        mapping.append((pattern, camera))
    return mapping


def watch_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The folder an NVR writes files into.")],
    camera: Annotated[str | None, typer.Option(
        "--camera", help="Camera every file in the folder comes from.")] = None,
    mapping: Annotated[list[str] | None, typer.Option(
        "--map", help="PATTERN=CAMERA: files whose name matches the glob come from CAMERA"
        " (repeatable; the first match wins).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Ingest what has settled, then exit.")] = False,
) -> int:
    """Ingest each video file dropped in FOLDER once it stopped growing, once per file."""
    if (camera is None) == (not mapping):
        raise InvalidInputError("Give either --camera ID or one or more --map PATTERN=CAMERA.")
    cli = cli_context(ctx)
    with cli.usecase() as usecase:
        watcher = build_watcher(usecase, folder=folder, camera_id=camera,
                                mapping=_mapping(mapping or []))
    if once:
        watcher.scan_once()
        time.sleep(watcher.settle_s)
        results = watcher.scan_once()
        for result in results:
            console.print(f"{result.name}: {result.status}. {result.message}", highlight=False)
        full = watcher.low_space()
        if full is not None:
            console.print(full, highlight=False)
        return 1 if full is not None or any(r.status == "failed" for r in results) else 0
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    console.print(f"Watching {watcher.folder} (Ctrl-C to stop).", highlight=False)
    try:
        sig = _wait_for_signal()
    finally:
        stop.set()
        thread.join(timeout=60)
    return 128 + sig


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("recorder")(recorder_command)
    app.command("watch")(watch_command)
