"""Camera stream URLs: check them before they are stored, and never show their secrets.

A stream URL may carry a user name and password (``rtsp://admin:secret@10.0.0.5/1``) or
a token in its query. ``redact_stream_url`` is the only form that leaves Oko: logs, API
answers, camera status, gap reasons. ``scrub`` removes the secrets from any text that
may quote the URL (ffmpeg's own messages do).

``rtsp+listen://HOST:PORT/PATH`` is for cameras and encoders that push their stream: the
recorder listens there (ffmpeg ``-rtsp_flags listen``) instead of connecting out.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit

from storage.errors import InvalidInputError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtsp+listen", "http", "https", "srt", "rtmp", "rtmps",
                  "udp", "rtp", "tcp")
MAX_URL_LENGTH = 2048
SECRET_QUERY_KEYS = ("password", "passwd", "pass", "pwd", "token", "key", "secret",
                     "passphrase", "auth", "signature", "sig")
_HIDDEN = "***"


class InvalidStreamUrlError(InvalidInputError):
    """A stream URL the recorder could not use; the message never repeats its secrets."""


def _example() -> str:
    return "e.g. rtsp://user:password@10.0.0.5:554/stream1"


def validate_stream_url(url: str) -> str:
    """``url`` stripped, checked to be a stream URL ffmpeg can open; returns it.

    Raises ``InvalidStreamUrlError`` (one sentence, with the URL redacted) for text that
    is no URL, an unknown scheme, a missing host or port, spaces or control characters.
    """
    text = url.strip()
    shown = redact_stream_url(text)
    if not text:
        raise InvalidStreamUrlError(f"The stream URL is empty; give one, {_example()}.")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidStreamUrlError(
            f"The stream URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidStreamUrlError(
            f"The stream URL '{shown}' contains spaces or control characters; "
            "percent-encode them.")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidStreamUrlError(
            f"The stream URL '{shown}' has an invalid host or port; {_example()}.") from exc
    if "://" not in text or not parts.scheme:
        raise InvalidStreamUrlError(
            f"'{shown}' is not a stream URL: expected scheme://host/path, {_example()}.")
    if parts.scheme.lower() not in STREAM_SCHEMES:
        raise InvalidStreamUrlError(
            f"The stream URL '{shown}' uses '{parts.scheme}', which the recorder does not "
            f"read; use one of {', '.join(STREAM_SCHEMES)}.")
    if not parts.hostname:
        raise InvalidStreamUrlError(
            f"The stream URL '{shown}' names no host; {_example()}.")
    if parts.scheme.lower() == "rtsp+listen" and port is None:
        raise InvalidStreamUrlError(
            f"The stream URL '{shown}' must name the port to listen on, "
            "e.g. rtsp+listen://0.0.0.0:8554/cam1.")
    return text


def _netloc_without_secrets(parts: SplitResult) -> str:
    host = parts.netloc.rpartition("@")[2]
    return f"{_HIDDEN}@{host}" if "@" in parts.netloc else host


def redact_stream_url(url: str) -> str:
    """``url`` with its user info and secret query values replaced by ``***``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return _HIDDEN
    if not parts.scheme or "://" not in url:
        return re.sub(r"[^/@]+@", f"{_HIDDEN}@", url.strip())
    query = "&".join(
        f"{key}={_HIDDEN if key.lower() in SECRET_QUERY_KEYS else value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True))
    shown = f"{parts.scheme}://{_netloc_without_secrets(parts)}{parts.path}"
    return f"{shown}?{query}" if query else shown


def secrets_of(url: str) -> list[str]:
    """The pieces of ``url`` that must never be shown: user info and secret query values."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [userinfo, *(piece for piece in userinfo.split(":") if len(piece) >= 3)]
    found += [value for key, value in parse_qsl(parts.query)
              if key.lower() in SECRET_QUERY_KEYS and value]
    return sorted(set(found), key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """``text`` with ``url`` (and any of its secrets) replaced by its redacted form."""
    if not url:
        return text
    cleaned = text.replace(url, redact_stream_url(url))
    for secret in secrets_of(url):
        cleaned = cleaned.replace(secret, _HIDDEN)
    return cleaned


__all__ = [
    "STREAM_SCHEMES",
    "InvalidStreamUrlError",
    "redact_stream_url",
    "scrub",
    "secrets_of",
    "validate_stream_url",
]
