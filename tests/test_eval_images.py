"""Held-out images for evaluation are resized as training images are: PIL's bicubic, no crop or flip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from i2i.train.data import load_image_rgb
from i2i.train.metrics import load_eval_images


def test_eval_images_are_pils_bicubic_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(60, 90), (24, 20)]):  # shrunk (antialiased) and enlarged
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
    loaded = load_eval_images(tmp_path, 32, 0)
    assert loaded.names == ["0", "1"] and loaded.images.shape == (2, 3, 32, 32)
    for name, tensor in zip(loaded.names, loaded.images):
        pil = Image.open(tmp_path / f"{name}.png").convert("RGB")
        expected = np.asarray(pil.resize((32, 32), Image.Resampling.BICUBIC))
        got = ((tensor.permute(1, 2, 0).double() + 1) * 127.5).round().numpy().astype(np.uint8)
        assert np.array_equal(got, expected), name
    # not INTER_AREA, which the docstring once said: an area resize of the shrunk image differs
    area = cv2.resize(load_image_rgb(tmp_path / "0.png"), (32, 32), interpolation=cv2.INTER_AREA)
    got = ((loaded.images[0].permute(1, 2, 0).double() + 1) * 127.5).round().numpy().astype(np.uint8)
    assert not np.array_equal(got, area)
