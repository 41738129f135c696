"""A second copy of every audit checkpoint, sent to syslog (local journald or a remote
collector) as it is committed: ``OKO_AUDIT_CHECKPOINT_SYSLOG``.

Addresses: ``udp://HOST:PORT``, ``tcp://HOST:PORT`` or ``unix:/dev/log`` (journald's and
rsyslog's local socket). Each checkpoint is one message, tagged ``oko-audit:``, whose
text is exactly its checkpoint-log line, so a collector's file of these messages is read
back by ``oko audit verify --checkpoints FILE`` (the part before the JSON is skipped).

Sending is stdlib ``logging.handlers.SysLogHandler`` (facility ``auth``, severity
``warning``); a failure raises ``OSError`` for the caller to log, never silently.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from logging.handlers import SysLogHandler
from urllib.parse import urlsplit

from storage.errors import ConfigurationError

SYSLOG_TAG = "oko-audit: "


class _RaisingSysLogHandler(SysLogHandler):
    """SysLogHandler reports send errors on stderr by default; the caller must see them."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise


@dataclass(frozen=True)
class SyslogAddress:
    """Where checkpoint messages go, parsed once from the setting."""

    target: tuple[str, int] | str
    socktype: socket.SocketKind

    @classmethod
    def parse(cls, text: str) -> SyslogAddress:
        """Raises ``ConfigurationError`` for anything but udp://, tcp:// or unix:PATH."""
        if text.startswith("unix:"):
            path = text.removeprefix("unix:")
            if not path.startswith("/"):
                raise ConfigurationError(
                    f"OKO_AUDIT_CHECKPOINT_SYSLOG '{text[:100]}' needs an absolute socket"
                    " path, e.g. unix:/dev/log.")
            return cls(target=path, socktype=socket.SOCK_DGRAM)
        parts = urlsplit(text)
        kinds = {"udp": socket.SOCK_DGRAM, "tcp": socket.SOCK_STREAM}
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in kinds or not parts.hostname or port is None:
            raise ConfigurationError(
                f"OKO_AUDIT_CHECKPOINT_SYSLOG '{text[:100]}' is not udp://HOST:PORT,"
                " tcp://HOST:PORT or unix:/PATH.")
        return cls(target=(parts.hostname, port), socktype=kinds[parts.scheme])


def send_checkpoint_lines(address: SyslogAddress, lines: list[bytes]) -> None:
    """Send one syslog message a checkpoint line. Raises ``OSError`` when it cannot."""
    handler = _RaisingSysLogHandler(address=address.target,
                                    facility=SysLogHandler.LOG_AUTH,
                                    socktype=address.socktype)
    handler.setFormatter(logging.Formatter(SYSLOG_TAG + "%(message)s"))
    handler.append_nul = False  # TCP frames by newline (RFC 6587 non-transparent framing)
    try:
        for line in lines:
            message = line.decode("utf-8").rstrip("\n")
            suffix = "\n" if address.socktype == socket.SOCK_STREAM else ""
            handler.emit(logging.makeLogRecord({"msg": message + suffix,
                                                "levelno": logging.WARNING,
                                                "levelname": "WARNING"}))
    finally:
        handler.close()


__all__ = ["SYSLOG_TAG", "SyslogAddress", "send_checkpoint_lines"]
