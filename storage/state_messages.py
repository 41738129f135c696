"""What a camera's recorder or watch folder says about its state, as a code and its values.

A ``RecorderState`` row keeps the sentence in English (``message``, for the CLI, the
logs and API clients) beside a stable ``message_code`` (``StateMessage``) and the values
it names (``message_args``: a directory, a number of seconds, a redacted URL, an ffmpeg
or ingest error). The web app builds the sentence from its catalogs
(``recorder_message.<code>``), so the admin page says it in Ukrainian first. A value
``reason`` is a stored gap reason (``storage.gaps``), translated as gaps are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage.gaps import describe_gap_reason, parse_gap_reason


class StateMessage(StrEnum):
    CONNECTING = "connecting"  # url
    RECORDING = "recording"  # url
    RECONNECTING = "reconnecting"  # reason, delay, attempt
    CODEC_NOT_COPYABLE = "codec_not_copyable"  # codec, delay: reconnecting cannot mend it
    STOPPED = "stopped"
    CLOCK_WENT_BACK = "clock_went_back"  # start_utc, seconds, last_end_utc, kept
    FILE_NOT_INGESTED = "file_not_ingested"  # error, kept
    SPOOL_LOW = "spool_low"  # directory, free_mib, need_mib
    STORE_LOW_RECORDING = "store_low_recording"  # directory, free_mib, need_mib
    STORE_LOW_INGEST = "store_low_ingest"  # directory, free_mib, need_mib
    SPACE_RETURNED = "space_returned"
    WATCHING = "watching"  # folder
    WATCH_FOLDER_GONE = "watch_folder_gone"  # folder
    NOT_STARTED = "not_started"
    NO_STREAM_URL = "no_stream_url"
    RECORDER_SILENT = "recorder_silent"  # worker, since_utc


ENGLISH: dict[StateMessage, str] = {
    StateMessage.CONNECTING: "Connecting to {url}.",
    StateMessage.RECORDING: "Recording {url}.",
    StateMessage.RECONNECTING: "{reason} Reconnecting in {delay} s (attempt {attempt}).",
    StateMessage.CODEC_NOT_COPYABLE: "The stream carries {codec} video, which cannot be "
                                     "copied into MPEG-TS recording files; set the camera "
                                     "to H.264 or H.265. Trying again in {delay} s.",
    StateMessage.STOPPED: "The recorder was stopped.",
    StateMessage.CLOCK_WENT_BACK: "The clock went back: a file would start at {start_utc}, "
                                  "{seconds} s before the end of the last recording "
                                  "({last_end_utc}); it is kept in {kept} and not ingested.",
    StateMessage.FILE_NOT_INGESTED: "A recorded file could not be ingested ({error}); it is "
                                    "kept in {kept}.",
    StateMessage.SPOOL_LOW: "The spool dir {directory} has {free_mib} MiB free, less than "
                            "the {need_mib} MiB recording needs; recording is paused so no "
                            "file is cut short.",
    StateMessage.STORE_LOW_RECORDING: "The blob store {directory} has {free_mib} MiB free, "
                                      "less than the {need_mib} MiB recording needs; "
                                      "recording is paused and recorded files wait in the "
                                      "spool until there is room.",
    StateMessage.STORE_LOW_INGEST: "The blob store {directory} has {free_mib} MiB free, "
                                   "less than the {need_mib} MiB ingest needs; files wait "
                                   "where they are until there is room.",
    StateMessage.SPACE_RETURNED: "There is room on the disk again; recording resumes.",
    StateMessage.WATCHING: "Watching {folder}.",
    StateMessage.WATCH_FOLDER_GONE: "Watch folder {folder} disappeared; nothing is ingested "
                                    "from it until it is back.",
    StateMessage.NOT_STARTED: "No recorder has run for this camera yet.",
    StateMessage.NO_STREAM_URL: "No stream URL is set.",
    StateMessage.RECORDER_SILENT: "The recorder ({worker}) has not reported since "
                                  "{since_utc}.",
}


@dataclass(frozen=True)
class Said:
    """One state message: its code and the values its sentence names."""

    code: StateMessage
    args: dict[str, str] = field(default_factory=dict)

    def english(self) -> str:
        values = dict(self.args)
        if "reason" in values:
            values["reason"] = describe_gap_reason(values["reason"])
        return ENGLISH[self.code].format(**values)

    def scrubbed(self, scrub: Callable[[str], str]) -> Said:
        """The same message with ``scrub`` (credential removal) applied to every value."""
        return Said(self.code, {name: scrub(value) for name, value in self.args.items()})

    def row_fields(self) -> dict[str, Any]:
        """The ``RecorderState`` columns that hold this message."""
        return {"message": self.english(), "message_code": self.code.value,
                "message_args": dict(self.args)}


def said(code: StateMessage, **args: object) -> Said:
    """``code`` with its values, each kept as text (numbers as the sentence shows them)."""
    return Said(code, {name: f"{value:g}" if isinstance(value, float) else str(value)
                       for name, value in args.items()})


def stored_message(code: str, args: dict[str, Any]) -> Said | None:
    """The message a row keeps, or None for a row written before codes (or an unknown
    code), whose English ``message`` then stands as it is."""
    try:
        return Said(StateMessage(code), {name: str(value) for name, value in args.items()})
    except ValueError:
        return None


def public_args(args: dict[str, str]) -> dict[str, str]:
    """``args`` for a client: a ``reason`` also split into ``reason_code`` and
    ``reason_detail``, as a gap's is, so the web app translates it the same way."""
    public = dict(args)
    if "reason" in args:
        code, detail = parse_gap_reason(args["reason"])
        public["reason_code"] = code.value if code is not None else ""
        public["reason_detail"] = detail
    return public


__all__ = ["ENGLISH", "Said", "StateMessage", "public_args", "said", "stored_message"]
