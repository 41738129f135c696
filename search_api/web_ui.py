"""Serves the web app: ``web/static`` at ``/`` and the message catalogs at ``/i18n``.

Plain files, no build step and nothing from a CDN (the command post is offline). The
security headers, the strict CSP among them, come from ``search_api.middleware``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
WEB_DIR = WEB_ROOT / "static"
I18N_DIR = WEB_ROOT / "i18n"


def install_web_ui(app: FastAPI) -> None:
    """Mount the catalogs and the app; call after every API router (``/`` catches all)."""
    if I18N_DIR.is_dir():
        app.mount("/i18n", StaticFiles(directory=I18N_DIR), name="i18n")
    if WEB_DIR.is_dir():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")


__all__ = ["I18N_DIR", "WEB_DIR", "install_web_ui"]
