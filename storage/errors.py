"""Error hierarchy shared by every layer.

Each error carries one clear sentence for the user (``str(err)``), an exit code for the
CLI, and a stable ``code`` the web app keys its messages on: by default the class name in
snake case without "_error" (``NotFoundError`` -> ``not_found``), or one given where
raised. The API maps each class to one HTTP status in ``search_api.errors``.
"""

from __future__ import annotations

import re


def _default_code(class_name: str) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()
    return snake.removesuffix("_error") or "error"


class OkoError(Exception):
    """Base class for every error a user may see."""

    exit_code: int = 1
    http_status: int = 400
    code: str = "oko"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = _default_code(cls.__name__)

    def __init__(self, message: str, *, details: list[str] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code

    def diagnostics(self) -> str:
        """The message plus any per-item details, one per line."""
        return "\n".join([self.message, *(f"  - {d}" for d in self.details)])


class ConfigurationError(OkoError):
    """Settings are missing or invalid."""

    exit_code = 2
    http_status = 500


class NotFoundError(OkoError):
    """A named thing (camera, case, frame, path) does not exist."""

    http_status = 404


class InvalidInputError(OkoError):
    """The user gave input that cannot be used (bad time, bad file, bad value)."""

    exit_code = 2
    http_status = 422


class ConflictError(OkoError):
    """The action conflicts with existing state (duplicate, overwrite refused)."""

    http_status = 409


class StorageError(OkoError):
    """Writing to or reading from the data dir failed (disk full, permissions)."""

    exit_code = 3
    http_status = 507


class PermissionDeniedError(OkoError):
    """The user is known but not allowed to do this."""

    http_status = 403


class AuthenticationError(OkoError):
    """No valid credentials were presented."""

    http_status = 401
