"""Reference test folders (A|B pair images): i2i-run --aligned translates the input half and writes the
results page (input | output | target per image, with its PSNR and SSIM); i2i-eval psnr scores
against the target half. The page is also opened in headless Chromium, where it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import invoke
from test_backends import make_model

from i2i.errors import I2IError
from i2i.eval import main as eval_main
from i2i.runtime.cli import main as run_main
from i2i.runtime.gallery import split_pair, ssim

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random image: SSIM and PSNR between such images are well away from their limits."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture
def test_folder(tmp_path: Path) -> Path:
    """A reference test/ folder: img0's target is exactly the invert model's output, img1's is not."""
    folder = tmp_path / "test"
    folder.mkdir()
    a0, a1 = _smooth(64, 64, 0), _smooth(64, 64, 1)
    cv2.imwrite(str(folder / "img0.png"), np.hstack([a0, 255 - a0]))
    cv2.imwrite(str(folder / "img1.png"), np.hstack([a1, _smooth(64, 64, 2)]))
    return folder


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "invert.onnx")


def _run_aligned(model: Path, source: Path, out: Path, *extra: str) -> str:
    result = invoke(
        run_main, [model, "-s", source, "--aligned", "-o", out, *extra, "--backend", "ort", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return result.output


class _Rows(HTMLParser):
    """The results page's rows: (name, [img src...], [td text...])."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str], list[str]]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and "id" in values:
            self.rows.append((values["id"] or "", [], []))
        elif tag == "img" and self.rows:
            self.rows[-1][1].append(values["src"] or "")
        elif tag == "td" and self.rows:
            self._cell = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            if self._cell.strip():
                self.rows[-1][2].append(self._cell.strip())
            self._cell = None


def test_split_pair_follows_trainings_rule() -> None:
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    a, b = split_pair(image)
    np.testing.assert_array_equal(a, image[:, :2])
    np.testing.assert_array_equal(b, image[:, 2:])
    np.testing.assert_array_equal(split_pair(image, "BtoA")[0], image[:, 2:])
    for bad in (np.zeros((4, 4, 3), np.uint8), np.zeros((2, 5, 3), np.uint8)):
        with pytest.raises(I2IError, match="not an A\\|B pair"):
            split_pair(bad)


def test_ssim_without_torch_equals_i2i_eval_ssim() -> None:
    torch = pytest.importorskip("torch")
    from i2i.train.metrics import ssim as torch_ssim

    a, b = _smooth(40, 48, 3), _smooth(40, 48, 4)
    expected = float(
        torch_ssim(
            torch.from_numpy(a).permute(2, 0, 1)[None].double(),
            torch.from_numpy(b).permute(2, 0, 1)[None].double(),
            data_range=255.0,
        )[0]
    )
    # Both sum 121 float64 products of values up to 255^2 per window (errors ~1e-11 relative to the
    # means), in different orders; the SSIM ratio carries that far below 1e-9.
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, a) == 1.0


def test_aligned_run_translates_the_input_half_and_writes_the_results_page(
    model: Path, test_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    output = _run_aligned(model, test_folder, out)
    pair0 = cv2.imread(str(test_folder / "img0.png"))
    np.testing.assert_array_equal(cv2.imread(str(out / "img0.png")), 255 - pair0[:, :64])  # the A half, 64x64
    np.testing.assert_array_equal(cv2.imread(str(out / "input" / "img0.png")), pair0[:, :64])
    np.testing.assert_array_equal(cv2.imread(str(out / "target" / "img0.png")), pair0[:, 64:])
    assert re.search(r"results page: .*index\.html \(2 images: mean PSNR [\d.]+ dB", output)
    parser = _Rows()
    parser.feed((out / "index.html").read_text())
    assert [(name, srcs) for name, srcs, _ in parser.rows] == [
        ("img0", ["input/img0.png", "img0.png", "target/img0.png"]),
        ("img1", ["input/img1.png", "img1.png", "target/img1.png"]),
    ]
    assert all((out / src).is_file() for _, srcs, _ in parser.rows for src in srcs)
    assert parser.rows[0][2] == ["100.00 dB", "1.0000"]  # output == target exactly
    out1, target1 = cv2.imread(str(out / "img1.png")), cv2.imread(str(out / "target" / "img1.png"))
    mse = np.mean((out1.astype(np.float64) - target1) ** 2)
    assert parser.rows[1][2] == [f"{10 * np.log10(255**2 / mse):.2f} dB", f"{ssim(out1, target1):.4f}"]
    # BtoA: the right half is the input.
    _run_aligned(model, test_folder, tmp_path / "btoa", "--direction", "BtoA")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "btoa" / "img0.png")), 255 - pair0[:, 64:])


def test_aligned_refuses_what_is_not_a_folder_of_pairs(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "singles"
    folder.mkdir()
    cv2.imwrite(str(folder / "square.png"), _smooth(32, 32, 0))
    result = invoke(run_main, [model, "-s", folder, "--aligned", "--backend", "ort", "--no-progress"])
    assert result.exit_code != 0 and "not an A|B pair" in result.stderr and "none of the 1 images" in result.output
    result = invoke(run_main, [model, "-s", "pattern:32x64@0", "--aligned", "--backend", "ort"])
    assert result.exit_code != 0 and "--aligned reads folders of A|B pair images" in result.output


def test_eval_psnr_detects_an_aligned_reference_folder(model: Path, test_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    _run_aligned(model, test_folder, out)
    result = invoke(eval_main, ["psnr", test_folder, out, "--json", tmp_path / "psnr.json"])
    assert result.exit_code == 0, result.output
    assert "note: 2 reference images are A|B pairs: scored against their right (B) half" in result.stdout
    page = (out / "index.html").read_text()
    mean = re.search(r"mean PSNR ([\d.]+) dB", page)
    assert mean and f"mean PSNR {mean.group(1)} dB" in result.stdout  # the page's numbers, from the command
    whole = invoke(eval_main, ["psnr", test_folder, out, "--no-aligned"])
    assert "note:" not in whole.stdout and f"mean PSNR {mean.group(1)} dB" not in whole.stdout


def _chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def test_results_page_renders_in_headless_chromium(model: Path, test_folder: Path, tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); the results page is not rendered")
    out = tmp_path / "results"
    _run_aligned(model, test_folder, out)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"]
    flags += ["--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,500"]
    shot = tmp_path / "page.png"
    page = (out / "index.html").as_uri()
    result = subprocess.run([binary, *flags, f"--screenshot={shot}", page], capture_output=True, text=True, timeout=90)
    assert shot.is_file(), result.stderr[-2000:]
    screenshot = cv2.imread(str(shot))
    # Every image of the first row is drawn at its natural size (64x64): each is found on the page.
    for image in ("input/img0.png", "img0.png", "target/img0.png"):
        template = cv2.imread(str(out / image))
        _, score, _, _ = cv2.minMaxLoc(cv2.matchTemplate(screenshot, template, cv2.TM_CCOEFF_NORMED))
        assert score > 0.95, f"{image} is not on the rendered page (best match {score:.2f}); see {shot}"
    dom = subprocess.run([binary, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=90).stdout
    assert "100.00 dB" in dom and 'id="summary">mean PSNR' in dom
