"""Reading ``data/provenance.jsonld`` (CASE/UCO-style JSON-LD) back: which bag file has
which hash. Oko's ``evidence.provenance`` writes the document and re-exports this."""

from __future__ import annotations

from typing import Any


class ProvenanceShapeError(ValueError):
    """The document is not shaped as Oko writes it."""


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProvenanceShapeError(f"{where} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProvenanceShapeError(f"{where} is not a list")
    return value


def bag_file_hashes(document: Any) -> dict[str, str]:
    """``bag path -> SHA-256`` for every File node with a path in the bag.

    Raises ``ProvenanceShapeError`` (a ``ValueError``) when the document is not shaped
    as Oko writes it: never ``KeyError``, ``TypeError`` or ``AttributeError``.
    """
    result: dict[str, str] = {}
    for node in _list(_dict(document, "the document").get("@graph"), "@graph"):
        node = _dict(node, "a @graph node")
        if node.get("@type") != "uco-observable:File":
            continue
        path = sha = None
        for facet in _list(node.get("uco-core:hasFacet"), "uco-core:hasFacet"):
            facet = _dict(facet, "a facet")
            if facet.get("@type") == "uco-observable:FileFacet":
                path = facet.get("uco-observable:filePath")
            if facet.get("@type") == "uco-observable:ContentDataFacet":
                hashes = _list(facet.get("uco-observable:hash"), "uco-observable:hash")
                if not hashes:
                    raise ProvenanceShapeError("uco-observable:hash is empty")
                value = _dict(_dict(hashes[0], "a hash").get("uco-types:hashValue"),
                              "uco-types:hashValue")
                sha = value.get("@value")
        if isinstance(path, str) and isinstance(sha, str):
            if path in result and result[path] != sha:
                raise ProvenanceShapeError("a file path is given two different hashes")
            result[path] = sha
    return result


__all__ = ["ProvenanceShapeError", "bag_file_hashes"]
