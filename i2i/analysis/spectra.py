"""Spectrum statistics of image sets and the log frequency distance (numpy; never imports torch).

Spectra
    ``centred_spectrum``  F = fftshift(fft2(x)) over the two spatial axes only, per image and channel
    ``log_magnitude``     log(1 + |F|)   (STIG's magnitude representation)
    ``radial_profile``    azimuthal mean over rings of normalised radius ρ = √(f_y² + f_x²) cycles/pixel
LFD (STIG Eq. for the log frequency distance, official ``eval.py``)
    LFD = ln( Σ_{c,u,v} (R̄ − F̄)² + 1 ),  R̄, F̄ = mean over a set of the per-image min-max normalised
    log-magnitude spectra, on the 0..255 scale the official code uses (it saves R̄, F̄ as 8-bit PNGs).
    Computed in float64: the official code subtracts the reloaded uint8 PNGs, so the difference and
    its square wrap modulo 256 (METHODS.md, LFD); here nothing is quantised or wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from i2i.errors import I2IError
from i2i.runtime.spectral import centred_spectrum

LFD_SCALE = 255.0  # the official LFD compares 8-bit images of the mean spectra: keep its units
_LOG_EPS = 1e-6  # floor under |F| before the log, so an exactly zero coefficient is finite


def log_magnitude(images: np.ndarray) -> np.ndarray:
    """log(1 + |F|) of the centred spectrum, (..., H, W)."""
    return np.log1p(np.abs(centred_spectrum(images)))


def phase(images: np.ndarray) -> np.ndarray:
    """angle(F) of the centred spectrum in (-π, π], (..., H, W)."""
    return np.angle(centred_spectrum(images))


def normalised_log_magnitude(images: np.ndarray) -> np.ndarray:
    """LFD's per-image spectrum: log1p|F| min-max normalised to [0, 1] over (C, H, W) of each image.

    ``images``: (N, C, H, W) or (C, H, W) in [0, 1].
    """
    magnitude = log_magnitude(images)
    axes = (-3, -2, -1)
    low = magnitude.min(axis=axes, keepdims=True)
    high = magnitude.max(axis=axes, keepdims=True)
    return (magnitude - low) / np.maximum(high - low, 1e-12)


def radial_index(height: int, width: int) -> np.ndarray:
    """Ring number of every bin of a centred (H, W) spectrum: round(ρ · min(H, W)).

    For a square image this is the integer radius in bins; for other shapes the rings follow the
    normalised radius ρ (cycles/pixel), so profiles of different frame sizes line up.
    """
    fy = (np.arange(height) - height // 2) / height
    fx = (np.arange(width) - width // 2) / width
    rho = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return np.rint(rho * min(height, width)).astype(np.int64)


def radial_profile(values: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """Azimuthal mean (or median) of centred (..., H, W) values over rings → (..., n_rings)."""
    h, w = values.shape[-2:]
    rings = radial_index(h, w).ravel()
    n = int(rings.max()) + 1
    flat = values.reshape(-1, h * w)
    if reduce == "mean":
        counts = np.bincount(rings, minlength=n).astype(np.float64)
        sums = np.stack([np.bincount(rings, weights=row, minlength=n) for row in flat])
        out = sums / np.maximum(counts, 1)
    elif reduce == "median":
        order = np.argsort(rings, kind="stable")
        bounds = np.searchsorted(rings[order], np.arange(n + 1))
        out = np.stack(
            [[np.median(row[order[a:b]]) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])] for row in flat]
        )
    else:
        raise ValueError(f"reduce must be 'mean' or 'median', got {reduce!r}")
    return out.reshape(*values.shape[:-2], n)


def ring_radius(height: int, width: int) -> np.ndarray:
    """Normalised radius (cycles/pixel) of each ring of ``radial_index``."""
    n = int(radial_index(height, width).max()) + 1
    return np.arange(n) / min(height, width)


@dataclass
class SpectrumStats:
    """Running per-set spectrum statistics, accumulated one image batch at a time (constant memory).

    All maps are centred, per channel, (C, H, W):
      ``norm_log_magnitude``  mean of the per-image min-max normalised log1p|F| (LFD's R̄ / F̄)
      ``log_abs``             mean of log|F| (its ring differences are the profile's log gains)
      ``power``               mean of |F|² (the radial power spectrum in the plots)
    """

    size: tuple[int, int] | None = None
    count: int = 0
    _sums: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, images: np.ndarray) -> None:
        """Add a (N, C, H, W) or (C, H, W) batch of images in [0, 1]."""
        images = np.asarray(images, dtype=np.float64)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4:
            raise I2IError(f"spectrum statistics need (N, C, H, W) images, got shape {images.shape}")
        if 0 in images.shape[1:]:
            raise I2IError(f"spectrum statistics need non-empty images, got shape {images.shape}")
        size = (int(images.shape[2]), int(images.shape[3]))
        if self.size is None:
            self.size = size
        elif size != self.size:
            raise I2IError(
                f"image size {size[0]}x{size[1]} differs from {self.size[0]}x{self.size[1]} (HxW): "
                "spectra of one set must share a size (resize the images, or pass --size)"
            )
        spectrum = centred_spectrum(images)
        magnitude = np.abs(spectrum)
        log1p = np.log1p(magnitude)
        low = log1p.min(axis=(1, 2, 3), keepdims=True)
        high = log1p.max(axis=(1, 2, 3), keepdims=True)
        batch = {
            "norm_log_magnitude": ((log1p - low) / np.maximum(high - low, 1e-12)).sum(0),
            "log_abs": np.log(magnitude + _LOG_EPS).sum(0),
            "power": (magnitude**2).sum(0),
        }
        for key, value in batch.items():
            self._sums[key] = self._sums[key] + value if key in self._sums else value
        self.count += images.shape[0]

    def mean(self, key: str) -> np.ndarray:
        if self.count == 0:
            raise I2IError("no images were added to the spectrum statistics")
        return self._sums[key] / self.count

    @property
    def norm_log_magnitude(self) -> np.ndarray:
        return self.mean("norm_log_magnitude")

    @property
    def log_abs(self) -> np.ndarray:
        return self.mean("log_abs")

    @property
    def power(self) -> np.ndarray:
        return self.mean("power")

    def radial_power(self) -> np.ndarray:
        """Azimuthally averaged power spectrum per channel, (C, n_rings)."""
        return radial_profile(self.power)


def lfd_from_means(real_mean: np.ndarray, fake_mean: np.ndarray) -> float:
    """LFD between two mean normalised log-magnitude spectra (values in [0, 1], same shape)."""
    if real_mean.shape != fake_mean.shape:
        raise I2IError(f"LFD needs spectra of one shape, got {real_mean.shape} and {fake_mean.shape}")
    diff = (np.asarray(real_mean, np.float64) - np.asarray(fake_mean, np.float64)) * LFD_SCALE
    return float(np.log(np.sum(diff * diff) + 1.0))


def lfd(real: np.ndarray | SpectrumStats, fake: np.ndarray | SpectrumStats) -> float:
    """Log frequency distance between two image sets: (N, C, H, W) arrays in [0, 1] or their stats."""

    def stats(x: np.ndarray | SpectrumStats) -> SpectrumStats:
        if isinstance(x, SpectrumStats):
            return x
        s = SpectrumStats()
        s.add(x)
        return s

    return lfd_from_means(stats(real).norm_log_magnitude, stats(fake).norm_log_magnitude)
