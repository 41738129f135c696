"""CLI commands: ``oko redact ...``, the redacted disclosure copy of a case.

``oko redact propose CASE --clip N`` runs the detectors on every frame of the case's
clip N and prints the proposed tracks; ``box``, ``exclude``, ``include``, ``preview``
and ``approve`` review it; ``export CASE --redact faces,plates --out FILE`` writes the
signed disclosure bundle. Each calls the same use case as the API
(``search_api.usecases.redaction``), so it authorizes and audits the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search_api.cli.common import cli_context, passphrase, print_json

redact_app = typer.Typer(help="Redacted disclosure copies: propose, review, export.",
                         no_args_is_help=True)
Number = Annotated[str, typer.Argument(help="The case number, e.g. KV-2026-001.")]
RedactionId = Annotated[int, typer.Argument(min=1, help="The redaction's id.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (goes on the record).")]


def _print(redaction: object) -> None:
    from search_api.usecases.redaction import RedactionPublic

    assert isinstance(redaction, RedactionPublic)
    typer.echo(f"Redaction {redaction.id} of clip {redaction.clip_id}: {redaction.status}, "
               f"{redaction.frame_count} frames {redaction.width}x{redaction.height} "
               f"at {redaction.fps} fps, style {redaction.style}")
    if not redaction.tracks:
        typer.echo("  no faces or plates found")
    for track in redaction.tracks:
        state = "EXCLUDED (left visible)" if track.excluded else "masked"
        typer.echo(f"  {track.id:10} {track.kind:5} frames {track.first_frame}-"
                   f"{track.last_frame} (detected on {track.detected_frames}) {state}")
    for decision in redaction.decisions:
        typer.echo(f"  decision: {decision.kind} {decision.track_id or ''} by "
                   f"{decision.actor} at {decision.decided_at}: {decision.reason or '-'}")


@redact_app.command("propose")
def propose(ctx: typer.Context, number: Number,
            clip: Annotated[int, typer.Option("--clip", min=1, help="The clip's number.")],
            targets: Annotated[str, typer.Option(help="faces, plates or both")] =
            "faces,plates",
            style: Annotated[str, typer.Option(help="blur or fill")] = "blur",
            mute_audio: Annotated[bool, typer.Option("--mute-audio")] = False,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Detect faces and plates on every frame of clip N and propose tracks to mask."""
    from search_api.usecases import cases, redaction

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        result = redaction.propose_redaction(usecase, case_id=case.id or 0, clip_number=clip,
                                             targets=targets, style=style,
                                             mute_audio=mute_audio, run_in_worker=False)
    print_json(result.model_dump(mode="json")) if as_json else _print(result)


@redact_app.command("show")
def show(ctx: typer.Context, number: Number, redaction_id: RedactionId) -> None:
    """A redaction's tracks and decisions."""
    from search_api.usecases import cases, redaction

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        _print(redaction.read_redaction(usecase, case_id=case.id or 0,
                                        redaction_id=redaction_id))


@redact_app.command("box")
def box(ctx: typer.Context, number: Number, redaction_id: RedactionId,
        x: Annotated[int, typer.Option()], y: Annotated[int, typer.Option()],
        w: Annotated[int, typer.Option()], h: Annotated[int, typer.Option()],
        start: Annotated[float, typer.Option("--from", help="Seconds into the clip.")],
        end: Annotated[float, typer.Option("--to", help="Seconds into the clip.")],
        reason: Reason = "") -> None:
    """Mask a manual box over a time range (a tattoo, a house number)."""
    from search_api.usecases import cases, redaction

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        _print(redaction.add_manual_box(usecase, case_id=case.id or 0,
                                        redaction_id=redaction_id, x=x, y=y, w=w, h=h,
                                        start_s=start, end_s=end, reason=reason))


def _exclude(ctx: typer.Context, number: str, redaction_id: int, track: str, reason: str,
             *, include: bool) -> None:
    from search_api.usecases import cases, redaction

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        _print(redaction.exclude_track(usecase, case_id=case.id or 0,
                                       redaction_id=redaction_id, track_id=track,
                                       reason=reason, include=include))


@redact_app.command("exclude")
def exclude(ctx: typer.Context, number: Number, redaction_id: RedactionId,
            track: Annotated[str, typer.Argument(help="The track, e.g. face-2.")],
            reason: Reason = "") -> None:
    """Leave a track unmasked (e.g. the suspect, for a court copy); needs --reason."""
    _exclude(ctx, number, redaction_id, track, reason, include=False)


@redact_app.command("include")
def include(ctx: typer.Context, number: Number, redaction_id: RedactionId,
            track: Annotated[str, typer.Argument(help="The track, e.g. face-2.")],
            reason: Reason = "") -> None:
    """Mask an excluded track again; needs --reason."""
    _exclude(ctx, number, redaction_id, track, reason, include=True)


@redact_app.command("preview")
def preview(ctx: typer.Context, number: Number, redaction_id: RedactionId,
            out: Annotated[Path, typer.Option("--out", help="The JPEG to write.")],
            at: Annotated[float, typer.Option("--at", help="Seconds into the clip.")] = 0.0,
            ) -> None:
    """Write one frame of the clip masked as the export will mask it."""
    from search_api.usecases import cases, redaction
    from storage.atomic import atomic_write

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        image = redaction.preview_redaction(usecase, case_id=case.id or 0,
                                            redaction_id=redaction_id, at_s=at)
    with atomic_write(out) as handle:
        handle.write(image)
    typer.echo(f"Wrote {out} ({len(image)} bytes)")


@redact_app.command("approve")
def approve(ctx: typer.Context, number: Number, redaction_id: RedactionId) -> None:
    """Sign the redaction off; it takes no more decisions."""
    from search_api.usecases import cases, redaction

    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        _print(redaction.approve_redaction(usecase, case_id=case.id or 0,
                                           redaction_id=redaction_id))


@redact_app.command("export")
def export(ctx: typer.Context, number: Number,
           redact: Annotated[str, typer.Option("--redact", help="faces, plates or both")] =
           "faces,plates",
           out: Annotated[Path | None, typer.Option("--out", help="The bundle zip.")] = None,
           lang: Annotated[str, typer.Option(
               "--lang", metavar="uk|en",
               help="The report's language: uk (Ukrainian, default) or en.")] = "uk",
           ) -> None:
    """Write the signed redacted disclosure bundle (every clip needs an approved one)."""
    from search_api.usecases import cases, redaction

    context = cli_context(ctx)
    with context.usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        passphrase(context)
        result = redaction.export_disclosure(usecase, case_id=case.id or 0, redact=redact,
                                             out_path=out, lang=lang)
    for n, clip in enumerate(result.clips, start=1):
        faces = ("no faces found" if not clip["faces_found"]
                 else f"{clip['faces_masked']} face track(s) masked")
        typer.echo(f"clip {n}: {faces}, {clip['plates_masked']} plate track(s) masked, "
                   f"{clip['manual_boxes']} manual box(es), "
                   f"{len(clip['excluded_tracks'])} excluded")
    typer.echo(f"Wrote {result.bundle_path} ({result.size_bytes} bytes)\n"
               f"bundle SHA-256: {result.bundle_sha256}\n"
               f"tag manifest SHA-256: {result.tag_manifest_sha256}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(redact_app, name="redact")
