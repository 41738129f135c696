"""The renderer masks the decoded yuv420p planes: the same boxes as the RGB mask, nothing
outside them changed beyond re-encoding loss, odd sizes refused before anything is
written, and the decode read-ahead gives every frame in order."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from evidence.redaction.detect import FaceDetector
from evidence.redaction.gating import ChangeGate
from evidence.redaction.picture import Picture
from evidence.redaction.pipeline import (
    DETECTOR_THREADS,
    gate_parameters,
    preview_jpeg,
    propose,
    render_clip,
)
from evidence.redaction.render import even_boxes, redact_picture
from evidence.redaction.tracking import Box
from evidence.redaction.video import (
    RENDER_PIXEL_FORMAT,
    frames,
    pictures,
    render_parameters,
    video_facts,
    write_redacted,
)
from storage.errors import InvalidInputError
from tests.evidence.redaction.footage import (
    astronaut_face,
    background,
    lfw_face,
    paste,
    street_frames,
    write_clip,
)


def _detail(img: np.ndarray) -> float:
    """High-frequency energy (mean absolute Laplacian), as the benchmark measures it."""
    import cv2

    gray = img.astype(np.float32).mean(axis=2)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())


def test_a_picture_converts_regions_like_the_whole_frame_and_back() -> None:
    frame = background(320, 192, seed=4)
    paste(frame, astronaut_face(64), 101, 33)
    picture = Picture.from_rgb(frame)
    assert picture.shape == (192, 320) and picture.chroma(1).shape == (96, 160)
    whole = picture.rgb()
    assert np.abs(whole.astype(int) - frame).mean() < 3.0  # 4:2:0 of grainy colour
    # any region, odd edges included, is exactly that part of the whole conversion
    assert np.array_equal(picture.rgb(101, 33, 177, 111), whole[33:111, 101:177])
    assert np.array_equal(picture.rgb(0, 1, 319, 192), whole[1:192, 0:319])


def test_the_yuv_mask_blurs_inside_even_boxes_and_changes_nothing_outside() -> None:
    frame = background(320, 192, seed=2)
    face = astronaut_face(72)
    paste(frame, face, 101, 41)
    picture = Picture.from_rgb(frame)
    boxes = [Box(101, 41, face.shape[1], face.shape[0]), Box(251, 151, 30, 20)]
    masked = redact_picture(picture, boxes)
    # each box grown to even edges, so its chroma samples lie wholly inside it
    grown = even_boxes(boxes, width=320, height=192)
    assert grown == [Box(100, 40, 74, 88), Box(250, 150, 32, 22)]
    inside = np.zeros((192, 320), bool)
    for b in grown:
        inside[b.y:b.y + b.h, b.x:b.x + b.w] = True
    assert np.array_equal(masked.y[~inside], picture.y[~inside])
    half = inside[::2, ::2]
    for index in (0, 1):
        assert np.array_equal(masked.chroma(index)[~half], picture.chroma(index)[~half])
    region = (slice(41, 41 + face.shape[0]), slice(101, 101 + face.shape[1]))
    assert _detail(masked.rgb()[region]) < 0.25 * _detail(picture.rgb()[region])
    # idempotent, in every plane, for both styles
    assert np.array_equal(redact_picture(masked, boxes).data, masked.data)
    filled = redact_picture(picture, boxes, style="fill")
    assert (filled.y[inside] == 16).all() and (filled.chroma(0)[half] == 128).all()
    assert np.array_equal(redact_picture(filled, boxes, style="fill").data, filled.data)
    assert picture.data is not masked.data and np.array_equal(
        picture.data, Picture.from_rgb(frame).data)  # the input is not touched
    with pytest.raises(InvalidInputError, match="is not one of blur, fill"):
        redact_picture(picture, boxes, style="pixelate")


def test_the_rendered_copy_masks_the_boxes_and_keeps_the_rest_within_encoding_loss(
        tmp_path: Path) -> None:
    clip_frames, truth = street_frames(count=6, width=400, height=192, plate=False,
                                       face_size=48)
    source = write_clip(tmp_path / "street.mp4", clip_frames, fps=10)
    facts = video_facts(source)
    boxes = [[Box(p.x, p.y, p.w, p.h) for p in placed] for placed in truth]
    render_clip(source, tmp_path / "redacted.mp4", facts=facts, boxes=boxes,
                style="blur", mute_audio=True)
    write_redacted(source, tmp_path / "plain.mp4", facts=facts,
                   transform=lambda _i, picture: picture, mute_audio=True)
    redacted = list(frames(tmp_path / "redacted.mp4"))
    plain = list(frames(tmp_path / "plain.mp4"))
    decoded = list(frames(source))
    assert len(redacted) == len(plain) == len(decoded) == 6
    with av.open(str(tmp_path / "redacted.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == RENDER_PIXEL_FORMAT
        assert (stream.codec_context.width, stream.codec_context.height) == (400, 192)
    for n, (r, p, s) in enumerate(zip(redacted, plain, decoded, strict=True)):
        outside = np.ones((192, 400), bool)
        for b in boxes[n]:  # what x264 may spread around a box: one macroblock
            outside[max(0, b.y - 16):b.y + b.h + 16, max(0, b.x - 16):b.x + b.w + 16] = False
        loss = np.abs(p.astype(int) - s)[outside].mean()
        assert np.abs(r.astype(int) - p)[outside].mean() < 2 * loss  # two encodings' loss
        assert np.abs(r.astype(int) - s)[outside].mean() < loss + 0.3
        for b in boxes[n]:
            region = (slice(b.y, b.y + b.h), slice(b.x, b.x + b.w))
            assert _detail(r[region]) < 0.25 * _detail(s[region]), n
    # the preview is the rendered frame's mask (the same planes), before encoding
    from io import BytesIO

    from PIL import Image

    still = np.asarray(Image.open(BytesIO(preview_jpeg(source, frame_index=2, boxes=boxes,
                                                       style="blur"))).convert("RGB"))
    assert np.abs(still.astype(int) - redacted[2]).mean() < 3.0
    assert render_parameters()["pixel_format"] == "yuv420p"


def _odd_clip(path: Path) -> Path:
    """641x361: x264 takes it in 4:4:4, but a 4:2:0 copy cannot keep that size."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 641, 361, "yuv444p"
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(background(641, 361, seed=index),
                                               format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_an_odd_frame_size_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = _odd_clip(tmp_path / "odd.mp4")
    facts = video_facts(source)
    assert (facts.width, facts.height) == (641, 361)
    message = r"odd\.mp4 is 641x361: .* needs an even width and height"
    with pytest.raises(InvalidInputError, match=message):
        propose(source, detectors=[])
    out = tmp_path / "out" / "redacted.mp4"
    out.parent.mkdir()
    with pytest.raises(InvalidInputError, match=message):
        render_clip(source, out, facts=facts, boxes=[], style="blur", mute_audio=True)
    assert list(out.parent.iterdir()) == []
    with pytest.raises(InvalidInputError, match="needs an even width"):
        Picture.from_rgb(background(641, 361))


def test_the_read_ahead_gives_every_frame_in_order_and_stops_cleanly(
        tmp_path: Path) -> None:
    clip_frames = [background(64, 48, seed=n) for n in range(12)]
    for n, frame in enumerate(clip_frames):
        frame[:8, :8] = 20 * n  # a frame number the decoder keeps
    source = write_clip(tmp_path / "count.mp4", clip_frames, fps=10)
    levels = [int(np.median(p.rgb()[:8, :8])) for p in pictures(source)]
    assert levels == pytest.approx([20 * n for n in range(12)], abs=3)
    early = pictures(source)
    assert next(early).shape == (48, 64)
    early.close()  # the reader thread is stopped and joined, nothing left running
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InvalidInputError, match="cannot be decoded"):
        list(pictures(broken))


def test_the_gate_on_decoded_planes_finds_the_faces_it_finds_on_rgb() -> None:
    detector = FaceDetector(threads=DETECTOR_THREADS)
    still = background(640, 384, seed=1)
    frame = background(640, 384, seed=2)
    paste(frame, astronaut_face(64), 60, 40)
    paste(frame, lfw_face(3, 48), 420, 250)
    results = []
    for convert in (lambda f: f, Picture.from_rgb):
        gate = ChangeGate(detector, gate_parameters(detector))
        gate.detect(convert(still))
        results.append(gate.detect(convert(frame)))
        assert gate.stats.crop_passes == 1
    rgb_found, yuv_found = results
    assert len(rgb_found) == len(yuv_found) == 2
    for a, b in zip(sorted(rgb_found, key=lambda d: d.x1), sorted(yuv_found,
                                                                 key=lambda d: d.x1),
                    strict=True):
        assert abs(a.x1 - b.x1) < 4 and abs(a.y2 - b.y2) < 4
