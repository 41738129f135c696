"""What each role may do: the one table every layer's authorization reads.

It lives in the bottom layer so that domain rules (who sees which case) and the
application layer's checks read the same declaration instead of naming roles.
"""

from __future__ import annotations

from enum import StrEnum

from storage.models.access import Role


class Permission(StrEnum):
    SEARCH = "search"
    VIEW_FOOTAGE = "view_footage"
    INGEST = "ingest"
    MANAGE_CASES = "manage_cases"
    READ_CASES = "read_cases"
    EXPORT = "export"
    APPROVE_EXPORT = "approve_export"
    RECEIVE_BUNDLE = "receive_bundle"
    VERIFY = "verify"
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"
    MANAGE_CAMERAS = "manage_cameras"
    LIST_CAMERAS = "list_cameras"
    MANAGE_MODELS = "manage_models"
    MANAGE_KEYS = "manage_keys"
    SHARE_AGENCY_CASES = "share_agency_cases"
    """Share any case of one's own agency, not only one's own (supervisors)."""
    MANAGE_WATCHLIST = "manage_watchlist"
    """Keep the list of plates whose new sightings raise an event (administrators)."""


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.MANAGE_USERS, Permission.MANAGE_CAMERAS,
                          Permission.LIST_CAMERAS, Permission.INGEST,
                          Permission.MANAGE_MODELS, Permission.MANAGE_KEYS,
                          Permission.MANAGE_WATCHLIST}),
    Role.INVESTIGATOR: frozenset({Permission.SEARCH, Permission.VIEW_FOOTAGE,
                                  Permission.MANAGE_CASES, Permission.READ_CASES,
                                  Permission.EXPORT,
                                  Permission.LIST_CAMERAS, Permission.VERIFY}),
    Role.SUPERVISOR: frozenset({Permission.SEARCH, Permission.VIEW_FOOTAGE,
                                Permission.MANAGE_CASES, Permission.READ_CASES,
                                Permission.EXPORT,
                                Permission.APPROVE_EXPORT, Permission.LIST_CAMERAS,
                                Permission.VERIFY, Permission.SHARE_AGENCY_CASES}),
    Role.PROSECUTOR: frozenset({Permission.RECEIVE_BUNDLE, Permission.READ_CASES,
                                Permission.VERIFY}),
    Role.AUDITOR: frozenset({Permission.READ_AUDIT, Permission.VERIFY}),
}


def role_may(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())


__all__ = ["ROLE_PERMISSIONS", "Permission", "role_may"]
