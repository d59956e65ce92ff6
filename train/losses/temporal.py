"""Training-time temporal stability from still images: an equivariance regulariser.

Eilertsen, Mantiuk, Unger, "Single-frame Regularization for Temporally Stable CNNs" (CVPR 2019):
a video's next frame is, locally, the current one slightly moved plus a little noise, so a generator
whose output moves with its input does not flicker. With W a small random affine warp and Δ noise::

    L_temp = ‖ G(W(x) + Δ) − W(G(x)) ‖²      (mean over the pixels both sides define)

W: a shift of up to ±2 px, a rotation of up to ±1°, a zoom of up to ±3 % (Eilertsen et al.'s
ranges), drawn uniformly per image, about the image centre; Δ ~ N(0, noise_std²) on the generator's
[-1, 1] input scale. The warp is bilinear (``grid_sample``) and pixels whose source falls outside
the image are left out, so zero padding at the border is not mistaken for flicker: an exactly
equivariant generator (the identity, with Δ = 0) scores exactly zero.

Weighting: Eilertsen et al. weight the task and this term 0.05 / 0.95 (on their own loss scales);
ReReVST uses 60 on an L2 term. ``--lambda-temporal`` multiplies the value returned here.
Generators with dropout see different masks on the two passes; that noise is penalised too
(a stable generator at test time has dropout off or fixed).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

DISTANCES = ("l2", "l1")
_VALID = 1.0 - 1e-4  # a warped all-ones image below this at a pixel: part of its source lies outside


class TemporalLoss(nn.Module):
    """``loss = TemporalLoss()(generator, source)``; pass ``fake_target=generator(source)`` when the
    training step has it already, to save a forward pass (gradients flow through both terms)."""

    def __init__(
        self,
        max_shift_px: float = 2.0,
        max_rotation_deg: float = 1.0,
        max_zoom: float = 0.03,
        noise_std: float = 0.02,
        distance: str = "l2",
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; valid: {', '.join(DISTANCES)}")
        if min(max_shift_px, max_rotation_deg, max_zoom, noise_std) < 0 or max_zoom >= 1:
            raise ValueError("warp ranges and noise must be >= 0 (and the zoom below 1)")
        self.max_shift_px = max_shift_px
        self.max_rotation_deg = max_rotation_deg
        self.max_zoom = max_zoom
        self.noise_std = noise_std
        self.distance = distance

    def sample_theta(
        self, batch: int, height: int, width: int, device: torch.device, rng: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, 2, 3) ``affine_grid`` matrices of random warps (output → input, normalised coordinates)."""

        def uniform(bound: float) -> torch.Tensor:
            return (torch.rand(batch, generator=rng, device=device) * 2 - 1) * bound

        angle = uniform(math.radians(self.max_rotation_deg))
        zoom = 1 + uniform(self.max_zoom)
        shift = torch.stack([uniform(self.max_shift_px), uniform(self.max_shift_px)], 1)  # (B, 2) px
        return affine_theta(angle, zoom, shift, height, width)

    def forward(
        self,
        generator: Callable[[torch.Tensor], torch.Tensor],
        source: torch.Tensor,
        fake_target: torch.Tensor | None = None,
        rng: torch.Generator | None = None,
    ) -> torch.Tensor:
        """source: (B, C, H, W) in [-1, 1] → scalar loss."""
        b, _, h, w = source.shape
        theta = self.sample_theta(b, h, w, source.device, rng).to(source.dtype)
        output = generator(source) if fake_target is None else fake_target
        warped_source = warp_affine(source, theta)
        if self.noise_std > 0:
            noise = torch.randn(warped_source.shape, generator=rng, device=source.device, dtype=source.dtype)
            warped_source = warped_source + self.noise_std * noise
        of_warped = generator(warped_source)  # G(W(x) + Δ)
        warped_output = warp_affine(output, theta)  # W(G(x))
        valid = warp_affine(torch.ones_like(output[:, :1]), theta) > _VALID  # (B, 1, H, W)
        diff = (of_warped - warped_output).float()
        per_pixel = diff.pow(2) if self.distance == "l2" else diff.abs()
        weight = valid.to(per_pixel.dtype).expand_as(per_pixel)
        return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


def affine_theta(angle: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices that rotate by ``angle`` (radians), scale by ``zoom`` and move
    the content by ``shift`` (B, 2) pixels (x, y), about the image centre, in square pixels.

    ``affine_grid`` maps OUTPUT normalised coordinates to INPUT ones, and its x and y units are half
    the width and half the height; so the pixel-space warp p_out = zoom·R·p_in + shift is inverted
    (p_in = R⁻¹(p_out − shift) / zoom) and conjugated with N = diag(2/W, 2/H)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / zoom[:, None, None]
    to_norm = torch.tensor([2.0 / width, 2.0 / height], dtype=angle.dtype, device=angle.device)
    linear = to_norm[None, :, None] * inverse / to_norm[None, None, :]  # N · A⁻¹ · N⁻¹
    offset = -(inverse @ shift[..., None])[..., 0] * to_norm  # N · (−A⁻¹ · shift)
    return torch.cat([linear, offset[..., None]], -1)


def warp_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear warp of (B, C, H, W) by ``theta`` (zeros outside the image)."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
