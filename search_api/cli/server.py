"""The uvicorn server ``oko serve`` runs, with a deterministic exit status after a signal,
and the camera recorders it runs beside it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from search_api.state import AppState


class SignalAwareServer(uvicorn.Server):
    """A uvicorn server that remembers which signal stopped it instead of re-raising it.

    uvicorn re-raises a captured SIGINT after shutdown, and whether that reaches the
    main thread as KeyboardInterrupt depends on where asyncio is at that instant; under
    load it sometimes did not, and ``oko serve`` exited 0 after Ctrl-C. The exit status
    is decided here instead, from the signal recorded when it arrived.
    """

    stop_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stop_signal = sig
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def running_recorders(state: AppState) -> Iterator[None]:
    """Record every camera with a stream URL while serving, and run the retention sweep
    every OKO_RETENTION_INTERVAL_MINUTES (unless OKO_SERVE_RECORDERS=0)."""
    if not state.settings.serve_recorders:
        yield
        return
    from search_api.usecases.recording import build_recorder_pool
    from search_api.usecases.retention import RetentionLoop

    pool = build_recorder_pool(state)
    retention = RetentionLoop(state)
    pool.start()
    retention.start()
    try:
        yield
    finally:
        retention.stop()
        pool.stop()


__all__ = ["SignalAwareServer", "running_recorders"]
