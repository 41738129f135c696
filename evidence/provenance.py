"""``custody.jsonl`` and ``provenance.jsonld`` (CASE/UCO-style JSON-LD) for a bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oko_verify.provenance import bag_file_hashes  # reading it back: the verifier's part

if TYPE_CHECKING:  # an annotation only: this module loads without the DB
    from storage.models.evidence import Case

CONTEXT = {
    "case-investigation": "https://ontology.caseontology.org/case/investigation/",
    "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
    "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
    "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
    "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
    "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "oko": "urn:oko:vocab:",
    "kb": "urn:oko:kb:",
}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    lines = (json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _hash_facet(sha256: str) -> dict[str, Any]:
    return {"@type": "uco-observable:ContentDataFacet", "uco-observable:hash": [{
        "@type": "uco-types:Hash", "uco-types:hashMethod": "SHA256",
        "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": sha256}}]}


def _file(node_id: str, *, name: str, sha256: str, bag_path: str | None,
          size: int | None = None) -> dict[str, Any]:
    facet: dict[str, Any] = {"@type": "uco-observable:FileFacet",
                             "uco-observable:fileName": name}
    if bag_path is not None:
        facet["uco-observable:filePath"] = bag_path
    if size is not None:
        facet["uco-observable:sizeInBytes"] = size
    return {"@id": node_id, "@type": "uco-observable:File",
            "uco-core:hasFacet": [facet, _hash_facet(sha256)]}


def _action(node_id: str, *, name: str, when: str | None, performer: str | None,
            objects: list[str], results: list[str], **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": node_id, "@type": "case-investigation:InvestigativeAction",
                            "uco-core:name": name}
    if when:
        node["uco-action:startTime"] = {"@type": "xsd:dateTime", "@value": when}
    if performer:
        node["uco-action:performer"] = performer
    if objects:
        node["uco-action:object"] = [{"@id": o} for o in objects]
    if results:
        node["uco-action:result"] = [{"@id": r} for r in results]
    if "instrument" in extra:
        node["uco-action:instrument"] = extra.pop("instrument")
    node.update({f"oko:{k}": v for k, v in extra.items()})
    return node


def _viewing_copy_nodes(clip: dict[str, Any], clip_id: str) -> list[dict[str, Any]]:
    """The viewing copy's File and its derivation from the clip (not from the original):
    a transcode for playing, marked as not the evidence."""
    copy = clip["viewing_copy"]
    copy_id = f"kb:viewing-copy-{copy['sha256']}"
    return [
        _file(copy_id, name=Path(copy["path"]).name, sha256=copy["sha256"],
              bag_path=copy["path"], size=copy["size_bytes"]),
        _action(
            f"kb:derivation-viewing-copy-{clip['clip_id']}",
            name="derivation: viewing copy (H.264/AAC transcode for playback; the clip "
                 "is the evidence)",
            when=None, performer=None, objects=[clip_id], results=[copy_id],
            instrument={"@type": "uco-tool:Tool", "uco-core:name": copy["tool"],
                        "uco-tool:version": copy["tool_version"]},
            command=copy["command"], parameters=copy["parameters"],
            sourceSha256=copy["source_sha256"], derived=True, isEvidence=False,
            codec=copy["codec"], width=copy["width"], height=copy["height"],
            frameRate=copy["frame_rate"],
        ),
    ]


def build_provenance(path: Path, *, case: Case, custody: list[dict[str, Any]],
                     clips: list[dict[str, Any]], originals: list[dict[str, Any]]) -> None:
    """Write the JSON-LD graph: investigation, originals and their acquisition, each
    derivation (source hash, tool, version, command), each clip's viewing copy (derived
    from the clip) and each custody action."""
    graph: list[dict[str, Any]] = [{
        "@id": f"kb:investigation-{case.number}", "@type": "case-investigation:Investigation",
        "uco-core:name": case.number, "uco-core:description": case.title,
        "case-investigation:focus": case.legal_basis,
    }]
    acquisitions = {r["details"].get("sha256"): r for r in custody
                    if r["action"] == "acquisition"}
    for fact in originals:
        original = fact["original"]
        node_id = f"kb:original-{original.sha256}"
        graph.append(_file(node_id, name=original.filename, sha256=original.sha256,
                           bag_path=fact["path"] if fact["included"] else None,
                           size=original.size_bytes))
        acq = acquisitions.get(original.sha256)
        graph.append(_action(
            f"kb:acquisition-{original.sha256}", name="acquisition",
            when=acq["recorded_at"] if acq else None, performer=acq["actor"] if acq else None,
            objects=[], results=[node_id], sourceSha256=original.sha256,
            custodyEntryHash=acq["entry_hash"] if acq else None,
            includedInBundle=fact["included"], bagPath=fact["path"],
        ))
    for clip in clips:
        source = f"kb:original-{clip['original_sha256']}"
        clip_id, still_id = f"kb:clip-{clip['sha256']}", f"kb:still-{clip['still_sha256']}"
        graph.append(_file(clip_id, name=Path(clip["path"]).name, sha256=clip["sha256"],
                           bag_path=clip["path"]))
        graph.append(_file(still_id, name=Path(clip["still_path"]).name,
                           sha256=clip["still_sha256"], bag_path=clip["still_path"]))
        tool = {"@type": "uco-tool:Tool", "uco-core:name": clip["tool"],
                "uco-tool:version": clip["tool_version"]}
        graph.append(_action(
            f"kb:derivation-clip-{clip['clip_id']}", name="derivation: clip (stream copy)",
            when=None, performer=None, objects=[source], results=[clip_id],
            instrument=tool, command=clip["command"], sourceSha256=clip["original_sha256"],
            requestedStartUtc=clip["requested_start_utc"],
            requestedEndUtc=clip["requested_end_utc"],
            actualStartUtc=clip["actual_start_utc"], actualEndUtc=clip["actual_end_utc"],
            searchProvenance=clip["provenance"] or None,
        ))
        graph.append(_action(
            f"kb:derivation-still-{clip['clip_id']}", name="derivation: still frame",
            when=None, performer=None, objects=[source], results=[still_id],
            instrument={"@type": "uco-tool:Tool", "uco-core:name": clip["still_tool"],
                        "uco-tool:version": clip["still_tool_version"]},
            parameters=clip["still_parameters"], sourceSha256=clip["original_sha256"],
        ))
        if clip.get("viewing_copy"):
            graph += _viewing_copy_nodes(clip, clip_id)
    for record in custody:
        graph.append(_action(
            f"kb:custody-{record['entry_hash']}", name=f"custody: {record['action']}",
            when=record["recorded_at"], performer=record["actor"], objects=[], results=[],
            custodyEntryHash=record["entry_hash"], previousEntryHash=record["prev_hash"],
            chain=record["chain"], sequence=record["seq"],
        ))
    document = {"@context": CONTEXT, "@graph": graph}
    path.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")


__all__ = ["CONTEXT", "bag_file_hashes", "build_provenance", "write_jsonl"]
