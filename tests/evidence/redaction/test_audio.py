"""Muting audio on request: a muted redacted clip has no audio stream at all (nothing a
court could later un-mute), an unmuted one keeps the source's audio bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import imageio_ffmpeg

from evidence.redaction.pipeline import render_clip
from evidence.redaction.tracking import Box
from evidence.redaction.video import video_facts
from tests.evidence.redaction.footage import street_frames, write_clip


def _with_audio(tmp_path: Path) -> Path:
    frames, _truth = street_frames(count=10, faces=True)
    silent = write_clip(tmp_path / "video.mp4", frames)
    out = tmp_path / "with-audio.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y",
                    "-i", str(silent), "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                    "-shortest", str(out)], check=True)
    return out


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_a_muted_clip_has_no_audio_stream_and_an_unmuted_one_keeps_it(tmp_path: Path) -> None:
    source = _with_audio(tmp_path)
    facts = video_facts(source)
    assert facts.has_audio
    boxes = [[Box(10, 10, 40, 40)] for _ in range(facts.frame_count)]
    muted, kept = tmp_path / "muted.mp4", tmp_path / "kept.mp4"
    render_clip(source, muted, facts=facts, boxes=boxes, style="blur", mute_audio=True)
    render_clip(source, kept, facts=facts, boxes=boxes, style="blur", mute_audio=False)
    with av.open(str(muted)) as container:
        assert len(container.streams.video) == 1 and not container.streams.audio
    assert not video_facts(muted).has_audio
    assert video_facts(muted).frame_count == facts.frame_count
    source_audio = _audio_packets(source)
    assert source_audio and _audio_packets(kept) == source_audio  # stream-copied
    assert not list(tmp_path.glob("*-video.mp4"))  # the intermediate file is gone
