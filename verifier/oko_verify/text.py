"""Text taken from a bundle, made safe to print: capped and escaped.

A file name or field inside a bundle is attacker-controlled. Before it reaches a
report, a terminal or a custody entry it is cut to ``MAX_SHOWN`` characters and every
control or non-printable character is written the way ``repr`` would (``\\x1b``,
``\\n``), so it can neither forge lines nor drive a terminal.
"""

from __future__ import annotations

from typing import Any

MAX_SHOWN = 200


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``value`` as at most ``limit`` printable characters (an ellipsis marks a cut)."""
    text = value if isinstance(value, str) else repr(value)
    cut = len(text) > limit
    text = text[:limit]
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(escaped) > limit:
        escaped, cut = escaped[:limit], True
    return escaped + ("…" if cut else "")


__all__ = ["MAX_SHOWN", "shown"]
