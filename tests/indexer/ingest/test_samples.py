"""The sample footage generator: deterministic, and the scenes look like what they claim."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest

from indexer.media import probe
from indexer.samples import SampleSet, generate_sample_footage
from storage.errors import InvalidInputError


def _frame_at(path: Path, seconds: float) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= seconds:
                return frame.to_ndarray(format="rgb24").astype(np.int16)
    raise AssertionError(f"no frame at {seconds} s")


def test_same_bytes_every_run(samples: SampleSet, tmp_path: Path) -> None:
    again = generate_sample_footage(tmp_path, profile="test")
    assert [c.path.name for c in again.clips] == [c.path.name for c in samples.clips]
    for first, second in zip(samples.clips, again.clips, strict=True):
        assert first.path.read_bytes() == second.path.read_bytes(), first.path.name


def test_clips_have_the_promised_formats(samples: SampleSet) -> None:
    for clip in samples.clips:
        info = probe(clip.path)
        assert (info.video_codec, info.container) == (clip.video_codec, clip.container)
        assert 160 <= info.width <= 320 and 90 <= info.height <= 180
        assert 6 <= info.duration_s <= 20
        assert info.variable_frame_rate == clip.variable_frame_rate
        assert (info.creation_time_utc is not None) == (clip.start_source == "container")
        assert clip.path.name.startswith(f"{clip.camera_id}_20260125T")
    h264 = probe(samples.by_name("CAM-001_20260125T100000.mp4").path)
    assert h264.keyframe_times_s[:3] == [0.0, 2.0, 4.0]  # GOP of 50 at 25 fps


def test_night_is_dark_and_grey_with_a_red_car(samples: SampleSet) -> None:
    night = _frame_at(samples.by_name("CAM-001_20260125T210000.mp4").path, 3.0)
    day = _frame_at(samples.by_name("CAM-001_20260125T100000.mp4").path, 3.0)
    assert night.mean() < 40 < day.mean()
    red = (night[..., 0] > 150) & (night[..., 1] < 60) & (night[..., 2] < 60)
    assert red.mean() > 0.01
    grey = np.abs(night[..., 0] - night[..., 2])[~red]
    assert np.percentile(grey, 99) < 12  # infrared look: no colour outside the car
    saturation = day.max(axis=-1) - day.min(axis=-1)
    assert saturation.mean() > 40


def test_red_car_moves(samples: SampleSet) -> None:
    path = samples.by_name("CAM-001_20260125T210000.mp4").path
    columns = []
    for seconds in (1.0, 3.0):
        frame = _frame_at(path, seconds)
        red = (frame[..., 0] > 150) & (frame[..., 1] < 60)
        columns.append(np.nonzero(red.any(axis=0))[0].mean())
    assert abs(columns[1] - columns[0]) > 20


def test_static_scene_moves_only_during_the_burst(samples: SampleSet) -> None:
    path = samples.by_name("CAM-002_20260125T120000.mp4").path
    still = [_frame_at(path, s) for s in (1.0, 3.0, 11.0)]
    busy = _frame_at(path, 7.5)
    for frame in still[1:]:
        assert np.abs(frame - still[0]).mean() < 1.0
    assert np.abs(busy - still[0]).mean() > 5.0


def test_cameras_csv(samples: SampleSet) -> None:
    assert samples.cameras_csv is not None
    with samples.cameras_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["id"] for r in rows} == {c.camera_id for c in samples.clips}
    assert {r["agency"] for r in rows} == {"police"}
    assert len({r["district"] for r in rows}) == 2
    assert [r["allowed_agencies"] for r in rows if r["allowed_agencies"]] == ["municipal_guard"]


def test_unknown_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"^Unknown sample profile 'huge'"):
        generate_sample_footage(tmp_path, profile="huge")
