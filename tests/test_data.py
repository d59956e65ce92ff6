"""Tests for i2i.train.data (images, transforms, folder datasets) and i2i.train.demo (the demo dataset)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from i2i.errors import I2IError
from i2i.train.data import (
    PairedFolderDataset,
    ResizeCropFlip,
    UnpairedFolderDataset,
    list_images,
    load_image_rgb,
    source_images_dir,
)
from i2i.train.demo import DEMO_TEST_PHOTOS, DEMO_TRAIN_PHOTOS, build_demo_dataset, pencil_sketch

SMALL_DEMO: dict[str, Any] = {
    "crop": 64,
    "crops_per_photo": 2,
    "test_crops_per_photo": 1,
    "video_seconds": 2.0,
    "fps": 15.0,
    "progress": False,
}


def _random_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random colour image (BGR uint8): blurred noise, so resizing behaves like on photos."""
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.0)


def _write_folder(folder: Path, names: list[str], rng: np.random.Generator, size: tuple[int, int] = (40, 48)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        assert cv2.imwrite(str(folder / name), _random_image(rng, *size))


def _read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _median_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.abs(a.astype(np.int16) - b.astype(np.int16))))


# --------------------------------------------------------------------------- demo dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    return out, build_demo_dataset(out, **SMALL_DEMO)


def test_demo_counts_and_manifest(demo: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = demo
    n_train, n_test = 2 * len(DEMO_TRAIN_PHOTOS), 1 * len(DEMO_TEST_PHOTOS)
    expected = {
        "train/A": n_train,
        "train/B": n_train,
        "test/A": n_test,
        "test/B": n_test,
        "trainA": n_train // 2,
        "trainB": n_train // 2,
        "testA": n_test // 2,
        "testB": n_test // 2,
    }
    for folder, count in expected.items():
        assert len(list_images(out / folder)) == count, folder
    assert manifest["counts"] == expected
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert set(manifest["photos"]["train"]).isdisjoint(manifest["photos"]["test"])
    assert manifest["effect"]["name"] == "cv2.pencilSketch"
    image = load_image_rgb(out / "train/A/0000.jpg")
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8


def test_demo_paired_names_align_and_target_is_the_effect(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    for phase in ("train", "test"):
        names_a = [p.name for p in list_images(out / phase / "A")]
        assert names_a == [p.name for p in list_images(out / phase / "B")]
        assert names_a[0] == "0000.jpg"
    sources = [load_image_rgb(p) for p in list_images(out / "train/A")]
    targets = [load_image_rgb(p) for p in list_images(out / "train/B")]
    for i, (source, target) in enumerate(zip(sources, targets)):
        # Re-applied to the JPEG of A, not the exact crop: the sketch amplifies JPEG noise, so compare
        # medians against the sketch of another crop (a median of ~10 levels is JPEG's floor).
        redone = pencil_sketch(source)
        unrelated = pencil_sketch(sources[(i + 1) % len(sources)])
        assert _median_diff(source, target) > 30  # the effect changes the image a lot
        assert _median_diff(redone, target) < 16
        assert _median_diff(redone, target) < 0.5 * _median_diff(unrelated, target)


def test_pencil_sketch_is_deterministic(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    source = load_image_rgb(out / "train/A/0003.jpg")
    first = pencil_sketch(source)
    for _ in range(3):
        assert np.array_equal(pencil_sketch(source.copy()), first)


def test_demo_unpaired_sets_use_different_crops(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    for phase in ("train", "test"):
        paired_a = [p.read_bytes() for p in list_images(out / phase / "A")]
        paired_b = [p.read_bytes() for p in list_images(out / phase / "B")]
        unpaired_a = [p.read_bytes() for p in list_images(out / f"{phase}A")]
        unpaired_b = [p.read_bytes() for p in list_images(out / f"{phase}B")]
        assert unpaired_a == paired_a[0::2]  # even crops' photos
        assert unpaired_b == paired_b[1::2]  # odd crops' sketches
        # No unpaired source has its own sketch among the unpaired targets.
        sketches_of_sources = {paired_b[paired_a.index(a)] for a in unpaired_a}
        assert sketches_of_sources.isdisjoint(unpaired_b)


def test_demo_video_has_smooth_motion(demo: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = demo
    frames = _read_video(out / "video.mp4")
    assert len(frames) == manifest["video"]["frames"] == 30
    assert all(f.shape == (240, 320, 3) for f in frames)
    steps = [_diff(a, b) for a, b in itertools.pairwise(frames)]
    cut = _diff(frames[0], frames[-1])  # first vs last frame: different photos (~60)
    assert min(steps) > 0.5  # the camera never stops (a still shot decodes to < 0.2)
    assert max(steps) < 0.3 * cut  # no hard cut: the change between photos is spread over a fade
    assert np.median(steps) < 0.25 * cut


def test_demo_is_deterministic_reused_and_rebuilt(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    params = dict(SMALL_DEMO, video_seconds=0.5)
    first = build_demo_dataset(tmp_path, **params)
    for folder in ("train/A", "train/B", "testA", "testB"):  # crops do not depend on the video settings
        assert [p.read_bytes() for p in list_images(tmp_path / folder)] == [
            p.read_bytes() for p in list_images(demo[0] / folder)
        ]
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    assert build_demo_dataset(tmp_path, **params) == first
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes

    rebuilt = build_demo_dataset(tmp_path, **dict(params, crops_per_photo=1))
    assert rebuilt["counts"]["train/A"] == len(DEMO_TRAIN_PHOTOS)
    assert len(list_images(tmp_path / "train/A")) == len(DEMO_TRAIN_PHOTOS)  # stale crops removed

    (tmp_path / "manifest.json").unlink()  # as if interrupted before the manifest was written
    build_demo_dataset(tmp_path, **dict(params, crops_per_photo=1))
    assert (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("interrupt_in", ["video", "manifest"])
def test_interrupted_demo_build_leaves_no_partial_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupt_in: str
) -> None:
    import os

    from i2i.train import demo

    def interrupted(*args: object, **kwargs: object) -> None:  # Ctrl-C or SIGTERM
        raise KeyboardInterrupt

    if interrupt_in == "video":  # after the first frame is encoded
        monkeypatch.setattr(demo.cv2.VideoWriter, "write", interrupted)
    else:  # the manifest's temp file is complete, then the rename is interrupted
        monkeypatch.setattr(os, "fsync", interrupted)
    params = dict(SMALL_DEMO, crops_per_photo=1, test_crops_per_photo=1, video_seconds=0.5)
    with pytest.raises(KeyboardInterrupt):
        build_demo_dataset(tmp_path, **params)
    hidden = [p for p in tmp_path.rglob(".*") if p.name != demo._DEMO_MARKER]  # the marker says "ours"
    leftovers = [p.name for p in (*tmp_path.rglob("*partial*"), *hidden)]
    assert leftovers == [] and not (tmp_path / "manifest.json").exists()
    assert (tmp_path / "video.mp4").exists() == (interrupt_in == "manifest")
    monkeypatch.undo()
    assert build_demo_dataset(tmp_path, **params)["counts"]["train/A"] == len(DEMO_TRAIN_PHOTOS)  # then rebuilt


def test_demo_refuses_folder_it_did_not_make(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train" / "A", ["mine.png"], np.random.default_rng(0))
    with pytest.raises(I2IError, match="not made by the demo builder"):
        build_demo_dataset(tmp_path, **SMALL_DEMO)
    assert (tmp_path / "train" / "A" / "mine.png").exists()


def test_demo_photos_split() -> None:
    assert len(DEMO_TEST_PHOTOS) == 2 and set(DEMO_TRAIN_PHOTOS).isdisjoint(DEMO_TEST_PHOTOS)


# --------------------------------------------------------------------------- image loading


def test_list_images_filters_sorts_and_ignores_case(tmp_path: Path) -> None:
    _write_folder(tmp_path, ["b.PNG", "a.jpg", "c.Jpeg"], np.random.default_rng(0))
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.Jpeg"]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(I2IError, match="dataset folder not found: .*missing"):
        list_images(tmp_path / "missing")
    with pytest.raises(I2IError, match=r"no images in .*\(looked for \.png, \.jpg"):
        list_images(tmp_path)


def test_load_image_variants(tmp_path: Path) -> None:
    gray = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    image = load_image_rgb(tmp_path / "gray.png")
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8
    assert all(np.array_equal(image[:, :, c], gray) for c in range(3))

    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0  # B, G, R, transparent
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    image = load_image_rgb(tmp_path / "rgba.png")
    assert image.shape == (8, 8, 3) and (image.reshape(-1, 3) == [30, 20, 10]).all()

    deep = np.zeros((4, 4, 3), np.uint16)
    deep[..., 0], deep[..., 1], deep[..., 2] = 65535, 257 * 100 + 129, 128  # B, G, R
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    image = load_image_rgb(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and (image.reshape(-1, 3) == [0, 101, 255]).all()

    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert (load_image_rgb(tmp_path / "red.png").reshape(-1, 3) == [200, 0, 0]).all()


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(I2IError, match="cannot read image: .*broken.png"):
        load_image_rgb(bad)


# --------------------------------------------------------------------------- transform


def test_transform_eval_is_exact_centre_crop_in_minus_one_to_one() -> None:
    image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    image[0, 0], image[11, 11] = 0, 255
    (full,) = ResizeCropFlip(load_size=12, crop_size=12, train=False)(image)
    assert full.dtype == torch.float32 and full.shape == (3, 12, 12)
    assert torch.allclose(full, torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1)
    assert full.min() == -1 and full.max() == 1
    (centre,) = ResizeCropFlip(load_size=12, crop_size=8, train=False)(image)
    assert torch.equal(centre, full[:, 2:10, 2:10])


def test_transform_train_crops_and_flips_randomly_but_reproducibly() -> None:
    image = np.random.default_rng(0).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    (reference,) = ResizeCropFlip(load_size=12, crop_size=12, train=False)(image)
    flip_only = ResizeCropFlip(load_size=12, crop_size=12, flip=True, train=True)
    generator = torch.Generator().manual_seed(0)
    outputs = [flip_only(image, generator=generator)[0] for _ in range(20)]
    flipped = [torch.equal(o, reference.flip(-1)) for o in outputs]
    assert all(f or torch.equal(o, reference) for f, o in zip(flipped, outputs))
    assert 0 < sum(flipped) < 20
    no_flip = ResizeCropFlip(12, 12, flip=False)
    assert all(torch.equal(no_flip(image)[0], reference) for _ in range(10))

    crop = ResizeCropFlip(load_size=12, crop_size=8, flip=False)
    torch.manual_seed(3)
    first = [crop(image)[0] for _ in range(10)]
    torch.manual_seed(3)
    assert all(torch.equal(a, crop(image)[0]) for a in first)
    assert len({tuple(t.flatten()[:5].tolist()) for t in first}) > 1  # positions vary


def test_transform_rejects_crop_larger_than_load() -> None:
    with pytest.raises(I2IError, match="crop_size \\(300\\) must not exceed load_size \\(286\\)"):
        ResizeCropFlip(load_size=286, crop_size=300)


# --------------------------------------------------------------------------- datasets


def _paired(root: Path, names: list[str], copy_b: bool = True) -> None:
    rng = np.random.default_rng(1)
    (root / "train" / "A").mkdir(parents=True)
    (root / "train" / "B").mkdir(parents=True)
    for i, name in enumerate(names):
        image = _random_image(rng, 30 + 4 * i, 50 - 3 * i)  # mixed sizes
        cv2.imwrite(str(root / "train" / "A" / f"{name}.png"), image)
        other = image if copy_b else _random_image(rng, 33, 21)
        cv2.imwrite(str(root / "train" / "B" / f"{name}.png"), other)


def test_paired_dataset_aligned_tensors(tmp_path: Path) -> None:
    _paired(tmp_path, ["a", "b", "c"])
    dataset = PairedFolderDataset(tmp_path, load_size=36, crop_size=32)
    assert len(dataset) == 3
    torch.manual_seed(0)
    for _ in range(4):
        for i in range(len(dataset)):
            sample = dataset[i]
            assert sample["name"] == "abc"[i]
            assert sample["source"].shape == (3, 32, 32) and sample["source"].dtype == torch.float32
            assert sample["source"].min() >= -1 and sample["source"].max() <= 1
            assert torch.equal(sample["source"], sample["target"])  # same crop and flip for A and B


def test_paired_dataset_pairs_by_stem_across_extensions(tmp_path: Path) -> None:
    _paired(tmp_path, ["x", "y"], copy_b=False)
    (tmp_path / "train/B/x.png").rename(tmp_path / "train/B/x.jpg")
    dataset = PairedFolderDataset(tmp_path, load_size=16, crop_size=16, train=False)
    assert dataset.target_paths[0].name == "x.jpg"
    sample = dataset[0]
    assert sample["source"].shape == sample["target"].shape == (3, 16, 16)
    assert not torch.equal(sample["source"], sample["target"])
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["source"].shape == (2, 3, 16, 16) and batch["name"] == ["x", "y"]


def test_paired_dataset_mismatched_stems(tmp_path: Path) -> None:
    _paired(tmp_path, ["shared", "lonely_1", "lonely_2"])
    for name in ("lonely_1", "lonely_2"):
        (tmp_path / "train" / "B" / f"{name}.png").unlink()
    _write_folder(tmp_path / "train" / "B", ["orphan.png"], np.random.default_rng(0))
    with pytest.raises(I2IError, match="2 in A have no B \\(lonely_1, lonely_2\\); 1 in B have no A \\(orphan\\)"):
        PairedFolderDataset(tmp_path)


def test_paired_dataset_on_unpaired_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write_folder(tmp_path / "trainA", ["1.png"], rng)
    _write_folder(tmp_path / "trainB", ["2.png"], rng)
    with pytest.raises(I2IError, match="expected subfolders train/A and train/B, found trainA, trainB.*unpaired"):
        PairedFolderDataset(tmp_path)


def test_unpaired_dataset_on_paired_layout(tmp_path: Path) -> None:
    _paired(tmp_path, ["a"])
    with pytest.raises(I2IError, match="expected subfolders trainA and trainB, found train, train/A, train/B.*paired"):
        UnpairedFolderDataset(tmp_path)


def test_dataset_missing_root_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(I2IError, match="dataset folder not found"):
        PairedFolderDataset(tmp_path / "nowhere")
    (tmp_path / "train" / "A").mkdir(parents=True)
    (tmp_path / "train" / "B").mkdir(parents=True)
    with pytest.raises(I2IError, match="no images in .*A"):
        PairedFolderDataset(tmp_path)


def test_unreadable_image_in_dataset(tmp_path: Path) -> None:
    _paired(tmp_path, ["good", "cut"])
    (tmp_path / "train" / "A" / "junk.png").write_bytes(b"\x89PNG not really" * 20)
    (tmp_path / "train" / "B" / "junk.png").write_bytes(b"\x89PNG not really" * 20)
    with pytest.raises(I2IError, match="cannot read image: .*junk.png"):  # not an image: before training starts
        PairedFolderDataset(tmp_path, load_size=8, crop_size=8)
    (tmp_path / "train" / "A" / "junk.png").unlink()
    (tmp_path / "train" / "B" / "junk.png").unlink()
    cut = tmp_path / "train" / "A" / "cut.png"
    cut.write_bytes(cut.read_bytes()[:100])  # a valid header, damaged further in: fails when decoded
    dataset = PairedFolderDataset(tmp_path, load_size=8, crop_size=8)
    with pytest.raises(I2IError, match="cannot read image: .*cut.png"):
        dataset[dataset.names.index("cut")]


def _unpaired(root: Path, n_a: int, n_b: int) -> None:
    rng = np.random.default_rng(2)
    _write_folder(root / "trainA", [f"a{i}.png" for i in range(n_a)], rng)
    _write_folder(root / "trainB", [f"b{i}.jpg" for i in range(n_b)], rng, size=(24, 30))


def test_unpaired_dataset_length_and_wrapping(tmp_path: Path) -> None:
    _unpaired(tmp_path, 3, 5)
    dataset = UnpairedFolderDataset(tmp_path, load_size=20, crop_size=16)
    assert len(dataset) == 5
    assert [dataset[i]["name"] for i in range(5)] == ["a0", "a1", "a2", "a0", "a1"]
    sample = dataset[0]
    assert sample["source"].shape == sample["target"].shape == (3, 16, 16)
    _unpaired(tmp_path / "more_a", 4, 2)
    assert len(UnpairedFolderDataset(tmp_path / "more_a", load_size=20, crop_size=16)) == 4


def test_unpaired_dataset_is_reproducible_under_manual_seed(tmp_path: Path) -> None:
    _unpaired(tmp_path, 3, 5)
    dataset = UnpairedFolderDataset(tmp_path, load_size=20, crop_size=16)

    def draw(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [t for i in range(len(dataset)) for t in (dataset[i]["source"], dataset[i]["target"])]

    first, again, other = draw(0), draw(0), draw(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_unpaired_dataloader_with_workers_is_reproducible(tmp_path: Path) -> None:
    _unpaired(tmp_path, 4, 6)
    dataset = UnpairedFolderDataset(tmp_path, load_size=20, crop_size=16)

    def epoch(seed: int) -> torch.Tensor:
        loader = DataLoader(
            dataset, batch_size=3, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(seed)
        )
        return torch.cat([torch.cat([b["source"], b["target"]]) for b in loader])

    first = epoch(0)
    assert torch.equal(first, epoch(0))
    assert not torch.equal(first, epoch(1))


# --------------------------------------------------------------------------- aligned layout, direction


def _aligned(root: Path, n: int, size: tuple[int, int] = (24, 48), split: str = "train") -> list[np.ndarray]:
    """The reference's aligned layout: each file is A|B side by side. A is noise, B is A inverted."""
    rng = np.random.default_rng(3)
    (root / split).mkdir(parents=True)
    halves = []
    for i in range(n):
        a = _random_image(rng, size[0], size[1] // 2)
        cv2.imwrite(str(root / split / f"{i}.png"), np.concatenate([a, 255 - a], axis=1))
        halves.append(a)
    return halves


def test_aligned_dataset_splits_each_file_and_direction_picks_the_input(tmp_path: Path) -> None:
    halves = _aligned(tmp_path, 3)
    forward = PairedFolderDataset(tmp_path, load_size=24, crop_size=24, train=False)
    backward = PairedFolderDataset(tmp_path, load_size=24, crop_size=24, train=False, direction="BtoA")
    assert forward.aligned and len(forward) == 3 and forward.names == ["0", "1", "2"]
    for i, a in enumerate(halves):
        expected_a = ResizeCropFlip(24, 24, train=False)(cv2.cvtColor(a, cv2.COLOR_BGR2RGB))[0]
        assert torch.equal(forward[i]["source"], expected_a)
        assert torch.allclose(forward[i]["target"], -expected_a, atol=1e-6)  # B = 255 - A
        assert torch.equal(backward[i]["source"], forward[i]["target"])
        assert torch.equal(backward[i]["target"], forward[i]["source"])
    torch.manual_seed(0)
    sample = PairedFolderDataset(tmp_path, load_size=28, crop_size=24)[1]  # random crop and flip ...
    # ... the same for both halves. Resized, 255 - A is 255 - resize(A) to one level: PIL's 8-bit
    # bicubic rounds each result once (x + 0.5, floored), and x and 255 - x do not round alike at .5.
    one_level = 1.0 / 127.5 + 1e-6  # one uint8 level in [-1, 1], plus float32 slack on values <= 1
    assert torch.allclose(sample["target"], -sample["source"], atol=one_level, rtol=0)


def test_direction_swaps_separate_paired_and_unpaired_folders(tmp_path: Path) -> None:
    _paired(tmp_path / "p", ["a", "b"], copy_b=False)
    forward = PairedFolderDataset(tmp_path / "p", load_size=16, crop_size=16, train=False)
    backward = PairedFolderDataset(tmp_path / "p", load_size=16, crop_size=16, train=False, direction="BtoA")
    assert torch.equal(backward[0]["source"], forward[0]["target"])
    assert torch.equal(backward[0]["target"], forward[0]["source"])
    _unpaired(tmp_path / "u", 2, 3)
    swapped = UnpairedFolderDataset(tmp_path / "u", load_size=16, crop_size=16, direction="BtoA")
    assert len(swapped) == 3 and [swapped[i]["name"] for i in range(3)] == ["b0", "b1", "b2"]
    with pytest.raises(I2IError, match="--direction 'sideways': choose AtoB or BtoA"):
        PairedFolderDataset(tmp_path / "p", direction="sideways")


@pytest.mark.parametrize(("size", "why"), [((24, 47), "width is odd"), ((24, 24), "not wider than tall")])
def test_aligned_mismatch_is_one_line_naming_the_file(tmp_path: Path, size: tuple[int, int], why: str) -> None:
    (tmp_path / "train").mkdir()
    for name in ("0.png", "1.png"):  # single images where the A|B pairs belong
        cv2.imwrite(str(tmp_path / "train" / name), _random_image(np.random.default_rng(0), *size))
    with pytest.raises(I2IError, match=f"0.png is {size[1]}x{size[0]} \\(WxH\\), not an A\\|B pair.*{why}") as info:
        PairedFolderDataset(tmp_path)
    assert "\n" not in info.value.message


def test_aligned_file_that_does_not_split_fails_when_drawn_naming_it(tmp_path: Path) -> None:
    _aligned(tmp_path, 2)
    cv2.imwrite(str(tmp_path / "train" / "1.png"), np.zeros((30, 30, 3), np.uint8))  # a single image among pairs
    dataset = PairedFolderDataset(tmp_path, load_size=16, crop_size=16)
    with pytest.raises(I2IError, match="1.png is 30x30"):
        dataset[1]


def test_unpaired_method_on_aligned_layout_says_so(tmp_path: Path) -> None:
    _aligned(tmp_path, 1)
    with pytest.raises(I2IError, match="expected subfolders trainA and trainB.*paired \\(pix2pix\\) layout"):
        UnpairedFolderDataset(tmp_path)


def test_source_images_dir_for_the_exporter(tmp_path: Path) -> None:
    halves = _aligned(tmp_path / "aligned", 2, split="test")
    scratch = tmp_path / "scratch"
    folder = source_images_dir(tmp_path / "aligned", "test", "AtoB", scratch)
    assert folder == scratch / "testA" and [p.name for p in list_images(folder)] == ["0.png", "1.png"]
    assert np.array_equal(cv2.imread(str(folder / "0.png")), halves[0])  # lossless input half
    folder_b = source_images_dir(tmp_path / "aligned", "test", "BtoA", scratch)
    assert folder_b is not None and np.array_equal(cv2.imread(str(folder_b / "1.png")), 255 - halves[1])
    _unpaired(tmp_path / "u", 1, 1)
    assert source_images_dir(tmp_path / "u", "train", "BtoA", scratch) == tmp_path / "u" / "trainB"
    assert source_images_dir(tmp_path / "u", "test", "AtoB", scratch) is None
    assert not (tmp_path / "aligned" / "test" / "A").exists()  # the dataset itself is never written to
