"""Distillation from video files: frames sampled evenly or at scene changes, labelled by the teacher."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from i2i.errors import I2IError
from i2i.train.loop import TrainConfig, train
from i2i.train.methods.distill import DistillConfig
from i2i.train.video_frames import choose_frames, frame_changes, sample_video

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"


def _clip(path: Path, colours: list[tuple[int, int, int]], per_scene: int) -> Path:
    """A clip of flat-colour scenes (``per_scene`` frames each) with a little noise: cuts are known."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 32))
    rng = np.random.default_rng(0)
    for colour in colours:
        for _ in range(per_scene):
            frame = np.clip(np.full((32, 48, 3), colour, np.int16) + rng.integers(-2, 3, (32, 48, 3)), 0, 255)
            writer.write(frame.astype(np.uint8))
    writer.release()
    return path


def test_choose_frames_evenly_and_at_scene_changes() -> None:
    assert choose_frames([0.0] * 10, 4, "evenly") == [0, 3, 6, 9]
    assert choose_frames([0.0] * 3, 8, "evenly") == [0, 1, 2]  # a short clip gives all it has
    changes = [0.0, 1, 1, 50, 1, 1, 1, 60, 1, 2, 1, 1]  # cuts at 3 and 7
    assert choose_frames(changes, 3, "scenes") == [0, 3, 7]
    with pytest.raises(I2IError, match="choose one of evenly, scenes"):
        choose_frames(changes, 3, "random")


def test_scene_sampling_finds_the_cuts_of_a_clip(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "cuts.avi", [(20, 40, 200), (200, 40, 20), (40, 200, 40)], per_scene=8)
    changes = frame_changes(clip)
    # Grey levels (0.114 B + 0.587 G + 0.299 R) of the scenes: 85.6, 52.3, 131.9: cuts of 33 and 80
    # levels (less a little JPEG blur); the ±2 noise within a scene averages to under one level.
    assert len(changes) == 24 and changes[8] > 25 and changes[16] > 60 and max(changes[1:8]) < 2
    frames = sample_video(clip, tmp_path / "frames", 3, "scenes")
    assert [p.name for p in frames] == ["cuts_000000.png", "cuts_000008.png", "cuts_000016.png"]
    red, blue, green = (cv2.imread(str(p))[16, 24] for p in frames)  # one frame of each scene (BGR)
    assert red[2] > 150 and blue[0] > 150 and green[1] > 150
    stamp = frames[0].stat().st_mtime_ns
    assert sample_video(clip, tmp_path / "frames", 3, "scenes") == frames  # reused, not rewritten
    assert frames[0].stat().st_mtime_ns == stamp
    assert len(sample_video(clip, tmp_path / "frames", 4, "evenly")) == 4  # other options: redone
    assert len(list((tmp_path / "frames").glob("*.png"))) == 4  # no frame of the earlier sampling stays


def test_not_a_video_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(I2IError, match=r"bad\.mp4"):
        sample_video(bad, tmp_path / "frames", 4, "evenly")


def test_distill_from_videos_and_a_folder_evaluated_on_another_video(
    tiny_run: Path, demo_data: Path, tmp_path: Path
) -> None:
    clips = [
        _clip(tmp_path / "one.avi", [(20, 40, 200), (200, 40, 20)], per_scene=6),
        _clip(tmp_path / "two.avi", [(90, 90, 90), (10, 200, 200)], per_scene=6),
    ]
    held_out = _clip(tmp_path / "held.avi", [(200, 200, 20), (30, 30, 30)], per_scene=5)
    data = ",".join([*map(str, clips), str(demo_data / "trainA")])
    config = TrainConfig(data=data, out=str(tmp_path / "run"), eval_data=str(held_out), load_size=64,
                         crop_size=64, batch_size=2, max_steps=2, workers=0, progress=False)  # fmt: skip
    method = DistillConfig(teacher=str(tiny_run / "model.pt"), ngf=4, n_blocks=1, video_frames=3)
    result = train("distill", method, config)
    sources = sorted(p.name for p in (tmp_path / "run" / "teacher" / "train" / "A").iterdir())
    assert len(sources) == 3 + 3 + len(list((demo_data / "trainA").iterdir()))
    assert {"one_000000.png", "two_000000.png"} <= set(sources)
    assert result.metrics["model.pt"]["images"] == 3  # the held-out clip's frames, labelled by the teacher
    (tmp_path / "copy").mkdir()
    namesake = _clip(tmp_path / "copy" / "one.avi", [(0, 0, 0)], per_scene=3)  # another clip, the same name
    with pytest.raises(I2IError, match="two source images named 'one_000000'"):
        twice = dataclasses.replace(config, data=f"{clips[0]},{namesake}", out=str(tmp_path / "twice"))
        train("distill", method, twice)


@pytest.mark.skipif(not (MEDIA / "walk.mkv").is_file(), reason=f"the real clips are not at {MEDIA}")
def test_real_clip_frames(tmp_path: Path) -> None:
    frames = sample_video(MEDIA / "walk.mkv", tmp_path, 5, "evenly")
    assert [p.name for p in frames] == [f"walk_{i:06d}.png" for i in (0, 22, 44, 66, 88)]  # 89 frames
    assert cv2.imread(str(frames[0])).shape == (480, 640, 3)
