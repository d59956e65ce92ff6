"""Spectrum tools in torch, mirroring ``i2i.runtime.spectral`` (which is numpy-only), for training.

STIG (Lee, Jung & Seo, AAAI 2024) works on the per-channel magnitude spectrum of an image: the
generator sees M = log(1 + |F|), F = fftshift(fft2(x₀₁)), normalised to [-1, 1]; the phase φ
of the input is kept, and the refined image is Re(ifft2(ifftshift(expm1(M̂)·e^{iφ}))) (paper §3,
Fig. 3). Everything here is differentiable, so losses can be taken on the refined image.

Deviations from the official code (github.com/ykykyk112/STIG), kept identical in the numpy mirror:
  * fftshift over the two spatial dims only (the official one shifts batch and channel too);
  * min/max normalisation per image, not over the whole batch, so a refined image does not depend
    on what else is in its batch (and runtime batches of any size give the same result);
  * the real part of the inverse FFT, not ``abs()``, which would fold negative values up;
  * images enter in [-1, 1] and are mapped to [0, 1] as in the official code; the output is not
    min-max stretched afterwards (that would change contrast), only mapped back to [-1, 1];
  * no spatial fftshift of the image before the FFT: it multiplies F by (-1)^(u+v), a phase
    change that the reconstruction undoes exactly, so it cannot change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Same units as i2i.runtime.spectral.LFD_SCALE (train does not import the runtime; a test checks they agree).
LFD_SCALE = 255.0


@dataclass
class Spectrum:
    """A batch in STIG's spectrum representation: what the network sees plus what it needs back."""

    normed: torch.Tensor  # (B, C, H, W) log-magnitude, per-image min-max to [-1, 1]
    low: torch.Tensor  # (B, 1, 1, 1) per-image minimum of log1p|F|
    span: torch.Tensor  # (B, 1, 1, 1) per-image max - min
    phase: torch.Tensor  # (B, C, H, W) angle(F), centred


def centred_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Per-channel 2-D DFT, DC moved to (H//2, W//2); shifts the spatial dims only."""
    return torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1))


def log_magnitude(images: torch.Tensor) -> torch.Tensor:
    return torch.log1p(centred_spectrum(images).abs())


def to_spectrum(images: torch.Tensor) -> Spectrum:
    """Images in [-1, 1] → per-image normalised log-magnitude and phase."""
    spectrum = centred_spectrum((images + 1.0) * 0.5)
    magnitude = torch.log1p(spectrum.abs())
    low = magnitude.amin(dim=(1, 2, 3), keepdim=True)
    span = (magnitude.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
    return Spectrum(2.0 * (magnitude - low) / span - 1.0, low, span, torch.angle(spectrum))


def from_spectrum(normed: torch.Tensor, reference: Spectrum) -> torch.Tensor:
    """A normalised log-magnitude (e.g. the generator's output) + the reference's phase → image in [-1, 1].

    Not clamped: losses see the raw reconstruction; deployment clamps.
    """
    magnitude = (normed + 1.0) * 0.5 * reference.span + reference.low
    spectrum = torch.polar(torch.expm1(magnitude), reference.phase)
    image01 = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real
    return 2.0 * image01 - 1.0


def refine(network: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """STIG refinement of images in [-1, 1] by a spectrum network; clamped to [-1, 1]."""
    spectrum = to_spectrum(images)
    return from_spectrum(network(spectrum.normed), spectrum).clamp(-1.0, 1.0)


def chebyshev_rings(height: int, width: int) -> torch.Tensor:
    """(R, H, W) 0/1 masks of square rings max(|u|, |v|) = r around DC (STIG's RectAverage)."""
    ys = (torch.arange(height) - height // 2).abs()
    xs = (torch.arange(width) - width // 2).abs()
    ring = torch.maximum(ys[:, None], xs[None, :])  # (H, W)
    n = min(height, width) // 2 + 1
    return (ring[None] == torch.arange(n)[:, None, None]).float()


def rect_profile(normed: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
    """STIG's "spectral filter profile" for its spectral discriminator: (B, C, H, W) → (B, R).

    Luma-weighted (0.299, 0.587, 0.114) spectrum, mean over each square ring, then min-max per
    sample to [0, 1]. The official code min-maxes over the whole batch and feeds the real and the
    fake branch spectra normalised in two different ways; both branches use ``normed`` here.
    """
    weights = torch.tensor([0.299, 0.587, 0.114], device=normed.device, dtype=normed.dtype)
    luma = (normed * weights[None, :, None, None]).sum(1)  # (B, H, W)
    sums = torch.einsum("bhw,rhw->br", luma, rings)
    profile = sums / rings.sum(dim=(1, 2))[None]
    low = profile.amin(dim=1, keepdim=True)
    high = profile.amax(dim=1, keepdim=True)
    return (profile - low) / (high - low).clamp_min(1e-12)


def low_frequency_loss(output: torch.Tensor, target: torch.Tensor, sigma: int) -> torch.Tensor:
    """STIG's L_LF: RMSE over the (2σ)×(2σ) box around DC of two centred spectra."""
    h, w = output.shape[-2:]
    cy, cx = h // 2, w // 2
    box = (slice(None), slice(None), slice(cy - sigma, cy + sigma), slice(cx - sigma, cx + sigma))
    return torch.sqrt(torch.mean((output[box] - target[box]) ** 2) + 1e-12)


def normalised_log_magnitude(images01: torch.Tensor) -> torch.Tensor:
    """LFD's per-image spectrum: log1p|F| min-max normalised to [0, 1] over (C, H, W) of each image."""
    magnitude = log_magnitude(images01.double())
    low = magnitude.amin(dim=(1, 2, 3), keepdim=True)
    high = magnitude.amax(dim=(1, 2, 3), keepdim=True)
    return (magnitude - low) / (high - low).clamp_min(1e-12)


def lfd(real01: torch.Tensor, fake01: torch.Tensor) -> float:
    """Log frequency distance of two image sets in [0, 1] (float64; see ``i2i.analysis.lfd``)."""
    diff = (normalised_log_magnitude(real01).mean(0) - normalised_log_magnitude(fake01).mean(0)) * LFD_SCALE
    return float(torch.log(diff.pow(2).sum() + 1.0))
