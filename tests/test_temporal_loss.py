"""The training-time temporal loss (i2i.train.losses.temporal): L = ‖G(W(x) + Δ) − W(G(x))‖²."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from i2i.train.losses.temporal import TemporalLoss, affine_theta, warp_affine


def _images(seed: int = 0, shape: tuple[int, ...] = (3, 3, 32, 48)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


def _theta(angle: float = 0.0, zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0), h: int = 32, w: int = 48):
    return affine_theta(torch.tensor([angle]), torch.tensor([zoom]), torch.tensor([shift]), h, w)


def test_warp_moves_content_by_whole_pixels_and_rotates_about_the_centre() -> None:
    x = _images(1, (1, 1, 32, 48))
    # Whole-pixel shifts land on pixel centres up to float32 rounding of the grid's normalised
    # coordinates (values <= 48 px, a few operations: ~1e-5 px), times the steepest step between
    # neighbours (2 per px in [-1, 1]): atol 2e-5.
    right = warp_affine(x, _theta(shift=(1.0, 0.0)))
    assert torch.allclose(right[..., 1:], x[..., :-1], atol=2e-5)
    down = warp_affine(x, _theta(shift=(0.0, 2.0)))
    assert torch.allclose(down[..., 2:, :], x[..., :-2, :], atol=2e-5)
    # 90° on a non-square image: a pixel offset (dx, dy) from the centre goes to (-dy, dx), in pixels.
    point = torch.zeros(1, 1, 32, 48)
    point[0, 0, 15, 27] = 1.0  # 3.5 px right of and 0.5 px above the centre (23.5, 15.5)
    turned = warp_affine(point, _theta(angle=math.pi / 2))
    assert turned[0, 0, 19, 24].item() == pytest.approx(1.0, abs=1e-5)  # (23.5 + 0.5, 15.5 + 3.5)


def test_sampled_warps_stay_in_the_configured_ranges() -> None:
    loss = TemporalLoss(max_shift_px=2.0, max_rotation_deg=1.0, max_zoom=0.03)
    theta = loss.sample_theta(4000, 64, 64, torch.device("cpu"), torch.Generator().manual_seed(0))
    linear = theta[:, :, :2]  # square image: (R⁻¹ / zoom) unchanged by the normalisation
    zoom = 1 / torch.linalg.det(linear).sqrt()
    angle = torch.atan2(-linear[:, 1, 0], linear[:, 0, 0])
    shift_px = -(torch.linalg.inv(linear) @ theta[:, :, 2:])[..., 0] * 32  # undo N·A⁻¹ (N = 1/32 px)
    assert zoom.min() >= 0.97 - 1e-6 and zoom.max() <= 1.03 + 1e-6 and zoom.std() > 0.01
    assert angle.abs().max() <= math.radians(1.0) + 1e-6 and angle.abs().max() > math.radians(0.9)
    assert shift_px.abs().max() <= 2.0 + 1e-4 and shift_px.abs().max() > 1.9


def test_an_equivariant_generator_scores_zero() -> None:
    x = _images(2)
    rng = torch.Generator().manual_seed(3)
    # Same grid on both sides, the identity in between: bit-for-bit the same warp, so exactly 0.
    assert TemporalLoss(noise_std=0.0)(nn.Identity(), x, rng=rng).item() == 0.0
    # A pointwise generator (tanh) commutes with the warp up to bilinear interpolation of a smooth
    # function: near zero, far below a flickering generator's score (next test).
    assert TemporalLoss(noise_std=0.0)(torch.tanh, _smooth(x), rng=rng).item() < 1e-4
    # With noise, the identity returns its energy: E[Δ²] = noise_std² (mean over ~13 800 values).
    noisy = TemporalLoss(noise_std=0.05)(nn.Identity(), x, rng=rng).item()
    assert noisy == pytest.approx(0.05**2, rel=0.05)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(nn.functional.interpolate(x, scale_factor=4, mode="bilinear"), 4, 1, 0)[
        ..., :32, :48
    ]


def test_a_flickering_generator_scores_positive() -> None:
    x = _smooth(_images(4))
    h, w = x.shape[-2:]
    checker = ((torch.arange(h)[:, None] + torch.arange(w)[None]) % 2 * 2 - 1).float() * 0.1

    def pinned_texture(images: torch.Tensor) -> torch.Tensor:
        return images + checker  # a pattern fixed to the pixel grid: it does not move with the content

    def noise_amplifier(images: torch.Tensor) -> torch.Tensor:
        return 5 * images - 4 * _smooth(images)  # sharpening: the input noise Δ comes out amplified

    rng = torch.Generator().manual_seed(5)
    stable = TemporalLoss(noise_std=0.0)(torch.tanh, x, rng=rng).item()
    assert TemporalLoss(noise_std=0.0)(pinned_texture, x, rng=rng).item() > 100 * max(stable, 1e-8)
    calm = TemporalLoss(noise_std=0.02)(nn.Identity(), x, rng=rng).item()
    assert TemporalLoss(noise_std=0.02)(noise_amplifier, x, rng=rng).item() > 4 * calm


def test_gradients_reach_the_generator_and_a_given_output_is_used() -> None:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Tanh())
    x = _images(6)
    loss_fn = TemporalLoss()
    value = loss_fn(generator, x, rng=torch.Generator().manual_seed(7))
    again = loss_fn(generator, x, fake_target=generator(x), rng=torch.Generator().manual_seed(7))
    assert value.item() > 0 and again.item() == pytest.approx(value.item(), rel=1e-6)
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator.parameters())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown distance"):
        TemporalLoss(distance="l3")
    with pytest.raises(ValueError, match=">= 0"):
        TemporalLoss(noise_std=-1.0)
