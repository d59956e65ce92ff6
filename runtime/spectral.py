"""Frequency-domain tools and the spectral refinement stage (numpy + OpenCV; never imports torch).

Generated images differ from real ones in the frequency domain: stride-2 transposed convolutions
leave a lattice of periodic peaks in the magnitude spectrum (checkerboard artefacts) and many
generators under-represent high frequencies (Durall et al., CVPR 2020; Lee, Jung & Seo, "Spectrum
Translation for Refinement of Image Generation (STIG)", AAAI 2024). This module measures that and
corrects it, keeping the phase and changing only the magnitude of the per-channel 2-D DFT.

Spectra
    ``centred_spectrum``  F = fftshift(fft2(x)) over the two spatial axes only, per image and channel
    ``log_magnitude``     log(1 + |F|)   (STIG's magnitude representation)
    ``radial_profile``    azimuthal mean over rings of normalised radius ρ = √(f_y² + f_x²) cycles/pixel
LFD (STIG Eq. for the log frequency distance, official ``eval.py``)
    LFD = ln( Σ_{c,u,v} (R̄ − F̄)² + 1 ),  R̄, F̄ = mean over a set of the per-image min-max normalised
    log-magnitude spectra, on the 0..255 scale the official code uses (it saves R̄, F̄ as 8-bit PNGs).
    Computed in float64: the official code subtracts the reloaded uint8 PNGs, so the difference and
    its square wrap modulo 256 (METHODS.md §1, LFD); here nothing is quantised or wrapped.
Spectral filter profile (closed form, no training; ``estimate_profile``)
    G(u, v) = g_c(ρ(u, v)) · Π_k n_k,c(u, v): a per-channel radial gain curve g_c (the ring median of
    mean log|F_real| − mean log|F_fake|, smoothed and clipped, 1 at DC) times Gaussian notches n_k
    at the lattice frequencies (i/2^L, j/2^L) where the generated spectrum peaks above its ring
    (stride-2 transposed convolutions put their peaks exactly there, at any image size). Both are
    shrunk, Wiener-style, by the generated set's power until the predicted PSNR between refined and
    unrefined images meets a floor (33 dB), so strong low frequencies stay and weak ones are fixed.
    Stored in normalised frequency, so it is resampled to any frame size; applying it is a
    zero-phase linear filter: y = IDFT(G · DFT(x)).
Runtime stage
    ``open_refiner(path)`` → a ``Refiner`` for a profile ``.npz`` or an exported STIG refiner
    ``.onnx`` (the network runs on the host-computed log-magnitude; FFTs in numpy/OpenCV).
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from i2i.errors import I2IError

PROFILE_FORMAT = "i2i-spectral-profile/1"
LFD_SCALE = 255.0  # the official LFD compares 8-bit images of the mean spectra: keep its units
_LOG_EPS = 1e-6  # floor under |F| before the log, so an exactly zero coefficient is finite


# --------------------------------------------------------------------------- spectra


def centred_spectrum(images: np.ndarray) -> np.ndarray:
    """Per-channel 2-D DFT over the last two axes, DC moved to (H//2, W//2). (..., H, W) → complex."""
    spectrum = np.fft.fft2(np.asarray(images, dtype=np.float64), axes=(-2, -1))
    # Shift the spatial axes only: the official STIG code shifts every axis (batch and channel too).
    return np.fft.fftshift(spectrum, axes=(-2, -1))


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
                f"image size {size[1]}x{size[0]} differs from {self.size[1]}x{self.size[0]}: "
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


# --------------------------------------------------------------------------- filter profile


def _symmetrise(gains: np.ndarray) -> np.ndarray:
    """(G + G(-u, -v)) / 2 for (C, H, W) maps in natural FFT order."""
    mirrored = np.roll(gains[:, ::-1, ::-1], shift=(1, 1), axis=(1, 2))  # index k -> (-k) mod N
    return 0.5 * (gains + mirrored)


def radial_gain_map(radius: np.ndarray, radial_gain: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, H, W) gains from per-channel radial curves, log-linearly interpolated in ρ (cycles/pixel)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    rho = np.sqrt(fy**2 + fx**2)
    return np.stack([np.exp(np.interp(rho, radius, np.log(g))) for g in radial_gain])


def notch_gain_map(
    notch_freq: np.ndarray, notch_gain: np.ndarray, notch_width: np.ndarray, height: int, width: int, channels: int
) -> np.ndarray:
    """(C, H, W) product of Gaussian notches 1 − (1 − a)·exp(−|f − f_k|² / 2σ_k²), all in cycles/pixel.

    σ_k is at least half a bin of this frame, so a notch always covers the bin nearest its centre.
    Each notch is evaluated on a window of ±5σ around its centre (beyond, its effect is < 4e-6).
    """
    gains = np.ones((channels, height, width))
    floor = 0.5 / min(height, width)
    for (ny, nx), depth, sigma in zip(notch_freq, notch_gain, np.broadcast_to(notch_width, len(notch_freq))):
        sigma = max(float(sigma), floor)
        rows = _window(ny, sigma, height)
        cols = _window(nx, sigma, width)
        # Frequencies live on a torus: wrap the distance to the notch into [-0.5, 0.5).
        dy = (rows / height - ny + 0.5) % 1.0 - 0.5
        dx = (cols / width - nx + 0.5) % 1.0 - 0.5
        bump = np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2.0 * sigma**2))  # 1 at the centre
        gains[np.ix_(np.arange(channels), rows, cols)] *= 1.0 - (1.0 - np.asarray(depth)[:, None, None]) * bump
    return _symmetrise(gains)


def _window(centre: float, sigma: float, n: int) -> np.ndarray:
    """Natural-order FFT indices within ±5σ (cycles/pixel) of ``centre``, each once, wrapped mod n."""
    reach = int(np.ceil(5.0 * sigma * n))
    if 2 * reach + 1 >= n:
        return np.arange(n)
    middle = int(np.rint(centre * n))
    return np.arange(middle - reach, middle + reach + 1) % n


@dataclass(frozen=True)
class SpectralProfile:
    """A zero-phase spectral filter in normalised frequency: radial gains × lattice notches.

    ``radius`` (R,) ring radii in cycles/pixel; ``radial_gain`` (C, R); ``notch_freq`` (K, 2) as
    (f_y, f_x) cycles/pixel; ``notch_gain`` (K, C) attenuation at each notch centre, in (0, 1];
    ``notch_width`` (K,) the notches' Gaussian σ in cycles/pixel; ``size`` (H, W) the
    images it was estimated on; ``provenance`` a JSON-able dict (sources, counts, parameters).
    """

    radius: np.ndarray
    radial_gain: np.ndarray
    notch_freq: np.ndarray
    notch_gain: np.ndarray
    notch_width: np.ndarray
    size: tuple[int, int]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return int(self.radial_gain.shape[0])

    def gain_map(self, height: int, width: int) -> np.ndarray:
        """The (C, H, W) gain of every DFT bin of an H×W frame, in numpy's natural (unshifted) order.

        Conjugate-symmetric by construction (G(-u, -v) = G(u, v)), so filtering a real image gives a
        real image and the phase is untouched.
        """
        # Radial gains are symmetric already: ρ(-u, -v) = ρ(u, v), Nyquist included.
        radial = radial_gain_map(self.radius, self.radial_gain, height, width)
        return radial * notch_gain_map(self.notch_freq, self.notch_gain, self.notch_width, height, width, self.channels)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            raise I2IError(f"a spectral profile is written as .npz, got {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(
            tmp,
            format=np.array(PROFILE_FORMAT),
            radius=self.radius.astype(np.float64),
            radial_gain=self.radial_gain.astype(np.float64),
            notch_freq=self.notch_freq.astype(np.float64).reshape(-1, 2),
            notch_gain=self.notch_gain.astype(np.float64).reshape(-1, self.channels),
            notch_width=np.asarray(self.notch_width, np.float64).reshape(-1),
            size=np.array(self.size, dtype=np.int64),
            provenance=np.array(json.dumps(self.provenance, sort_keys=True)),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SpectralProfile:
        path = Path(path)
        if not path.is_file():
            raise I2IError(f"spectral profile not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"]) if "format" in data else None
                if fmt != PROFILE_FORMAT:
                    raise I2IError(
                        f"{path} is not an i2i spectral profile (format {fmt!r}, expected {PROFILE_FORMAT!r})"
                    )
                fields = {key: data[key] for key in _PROFILE_ARRAYS}
                provenance = json.loads(str(data["provenance"]))
        except I2IError:
            raise
        except Exception as exc:  # zip/npz/JSON errors: one line
            raise I2IError(f"cannot read spectral profile {path}: {' '.join(str(exc).split())[:160]}") from None
        problem = _profile_problem(fields, provenance)
        if problem:
            raise I2IError(f"{path}: {problem}")
        arrays = {key: fields[key].astype(np.float64) for key in _PROFILE_ARRAYS if key != "size"}
        size = (int(fields["size"][0]), int(fields["size"][1]))
        return cls(**arrays, size=size, provenance=provenance)


_PROFILE_ARRAYS = ("radius", "radial_gain", "notch_freq", "notch_gain", "notch_width", "size")
_MAX_PROFILE_VALUE = 1e6  # bound on loaded gains and widths: far beyond any useful one, far from float32 overflow


def _profile_problem(fields: dict[str, np.ndarray], provenance: Any) -> str | None:
    """What makes a loaded profile unusable, or None: a corrupt or hand-edited file must fail at load,
    not as a numpy error or NaN frames in the refine stage."""
    for key, value in fields.items():
        if value.dtype.kind not in "biuf" or not np.isfinite(value).all():
            return f"{key} must hold finite numbers, got {value.dtype} {value.shape}"
    radius, gain, freq, depth, width, size = (fields[key] for key in _PROFILE_ARRAYS)
    if radius.ndim != 1 or radius.size == 0 or radius[0] < 0 or np.any(np.diff(radius) <= 0):
        return f"radius {radius.shape} must be increasing radii >= 0"
    if gain.ndim != 2 or gain.shape[0] == 0 or gain.shape[1] != radius.shape[0]:
        return f"radial_gain {gain.shape} does not fit radius {radius.shape}"
    if freq.ndim != 2 or freq.shape[1] != 2 or np.any(np.abs(freq) > 0.5):
        return f"notch_freq {freq.shape} must be (K, 2) frequencies in [-0.5, 0.5]"
    if depth.shape != (len(freq), len(gain)) or width.shape != (len(freq),):
        return (
            f"notch_gain {depth.shape} / notch_width {width.shape} do not fit {len(freq)} notches, {len(gain)} channels"
        )
    for key in ("radial_gain", "notch_gain", "notch_width"):
        if np.any(fields[key] <= 0) or np.any(fields[key] > _MAX_PROFILE_VALUE):
            return f"{key} must be positive and at most {_MAX_PROFILE_VALUE:g}"
    if size.shape != (2,) or np.any(size < 1):
        return f"size must be two positive integers, got {size}"
    if not isinstance(provenance, dict):
        return f"provenance must be a JSON object, got {type(provenance).__name__}"
    return None


def estimate_profile(
    real: SpectrumStats,
    fake: SpectrumStats,
    *,
    min_psnr: float | None = 33.0,
    max_gain: float = 4.0,
    min_gain: float = 0.25,
    keep_radius: float = 0.0,
    smooth: int = 3,
    strength: float = 1.0,
    notch_levels: int = 3,
    notch_threshold: float = 0.5,
    min_notch_gain: float = 0.01,
    notch_width: float | None = 0.5,
    notch_priority: bool = False,
    provenance: dict[str, Any] | None = None,
) -> SpectralProfile:
    """Closed-form profile that maps the generated set's spectrum statistics onto the real set's.

    Let Δ_c(u, v) = mean log|F_real| − mean log|F_fake| (a log ratio of geometric-mean magnitudes,
    which is what a log-spectrum metric such as LFD compares) and P_c(r) the generated set's mean
    power in ring r.

    Radial gain, per channel c and ring r, a Wiener-style shrinkage of the log ratio:
        log g_c(r) = clip( strength · δ_c(r) / (1 + λ · P_c(r) / P₀), ln min_gain, ln max_gain )
    where δ_c(r) is the ring median of Δ_c (the median ignores the few peak bins), smoothed over
    ``smooth`` rings; g = 1 at DC and for ρ < ``keep_radius``. λ trades spectral match against
    change of the image: every bin counts once in a log-spectrum distance, but changing a bin
    costs pixel error ∝ its power, so strong low frequencies are left nearly alone while weak high
    frequencies are corrected in full. λ is the smallest value whose predicted PSNR between
    refined and unrefined generated images is ≥ ``min_psnr`` dB; by Parseval that PSNR is exact
    before clipping to [-1, 1] (clipping only raises it): MSE = Σ_c,u,v |G − 1|² P_c(u, v) / (C (HW)²).
    It is a set average: single images vary around it. ``min_psnr=None``: no shrinkage (λ = 0).

    Notches: at each lattice frequency (i, j) / 2^notch_levels ≠ 0 (where stride-2 transposed
    convolutions put their peaks, at any image size), the residual peak
        D_c = median_ring(Δ_c) − Δ_c(u, v)   (how far the fake bin stands above its ring's trend)
    is averaged over channels; above ``notch_threshold`` (natural log units: 0.5 ≈ 1.65×) a notch
    of per-channel depth exp(−strength · max(D_c, 0)), at least ``min_notch_gain``, goes there,
    with Gaussian σ = ``notch_width`` bins (``None``: from the peak's half width).
    By default one λ shrinks the radial log gains and the notches' log depths alike — the most
    LFD per dB of PSNR, since a log-spectrum distance counts a notch bin once however visible the
    grid it removes. With ``notch_priority`` the notches keep their full depth (the grid goes
    even when that costs most of the PSNR budget) and only the radial part is shrunk, unless the
    notches alone break ``min_psnr``; then they are shrunk by the same rule.
    """
    if real.size != fake.size or real.size is None:
        raise I2IError(f"real and generated images must share a size, got {real.size} and {fake.size}")
    if not (0 < min_gain <= 1 <= max_gain) or not (0 < min_notch_gain <= 1) or strength < 0:
        raise I2IError("need 0 < min_gain <= 1 <= max_gain, 0 < min_notch_gain <= 1 and strength >= 0")
    h, w = real.size
    channels = real.log_abs.shape[0]
    delta = real.log_abs - fake.log_abs  # (C, H, W), centred
    ring_median = radial_profile(delta, reduce="median")  # (C, R)
    radius = ring_radius(h, w)
    trend = ring_median
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        padded = np.pad(trend, ((0, 0), (smooth // 2, smooth - 1 - smooth // 2)), mode="edge")
        trend = np.stack([np.convolve(row, kernel, mode="valid") for row in padded])
    trend = trend * strength
    trend[:, radius < keep_radius] = 0.0
    trend[:, 0] = 0.0  # DC: the mean brightness is not the spectrum's business

    freqs, depths, widths = _find_notches(delta, ring_median, notch_levels, notch_threshold, strength, min_notch_gain)
    if notch_width is not None:
        widths = np.full(len(freqs), notch_width / min(h, w))
    ring_power = radial_profile(fake.power)  # (C, R)
    reference_power = float(np.median(ring_power[:, 1:])) if ring_power.shape[1] > 1 else 1.0
    power = np.fft.ifftshift(fake.power, axes=(-2, -1))  # natural order, like gain maps
    centre = np.array(
        [[h // 2 + int(round(fy * h)), w // 2 + int(round(fx * w))] for fy, fx in freqs], dtype=np.int64
    ).reshape(-1, 2)
    notch_power = fake.power[:, centre[:, 0], centre[:, 1]].T  # (K, C): the fake power at each notch
    notch_log = np.log(depths)

    def shrunk(lam: float, notch_lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Radial gains (C, R) and notch depths (K, C) for shrinkages λ (0: none, inf: no change)."""
        scale = max(reference_power, 1e-30)
        with np.errstate(invalid="ignore", divide="ignore"):  # λ = inf gives 0 / inf = 0: no change
            log_gain = np.nan_to_num(trend / (1.0 + lam * ring_power / scale))
            log_depth = np.nan_to_num(notch_log / (1.0 + notch_lam * notch_power / scale))
        return np.exp(np.clip(log_gain, np.log(min_gain), np.log(max_gain))), np.exp(log_depth)

    def psnr(lam: float, notch_lam: float) -> float:
        radial_gain, notch_depth = shrunk(lam, notch_lam)
        gains = radial_gain_map(radius, radial_gain, h, w) * notch_gain_map(freqs, notch_depth, widths, h, w, channels)
        mse = float(np.sum((gains - 1.0) ** 2 * power)) / (channels * float(h * w) ** 2)
        return float("inf") if mse <= 0 else -10.0 * np.log10(mse)

    # Smallest shrinkage(s) that meet the bar, searched over log10 λ; at λ = 10^12 nothing changes.
    lam, notch_lam = 0.0, 0.0
    if min_psnr is not None and psnr(0.0, 0.0) < min_psnr:
        if not notch_priority:  # one exchange rate for everything: the best LFD for the PSNR
            lam = notch_lam = 10.0 ** _bisect(lambda e: psnr(10.0**e, 10.0**e) >= min_psnr, 12.0, -12.0, steps=30)
        elif psnr(float("inf"), 0.0) >= min_psnr:
            lam = 10.0 ** _bisect(lambda e: psnr(10.0**e, 0.0) >= min_psnr, 12.0, -12.0, steps=30)
        else:
            lam = float("inf")
            notch_lam = 10.0 ** _bisect(lambda e: psnr(lam, 10.0**e) >= min_psnr, 12.0, -12.0, steps=30)
    radial_gain, depths = shrunk(lam, notch_lam)
    predicted = psnr(lam, notch_lam)
    info = dict(provenance or {})
    info.update(
        parameters=dict(
            min_psnr=min_psnr,
            max_gain=max_gain,
            min_gain=min_gain,
            keep_radius=keep_radius,
            smooth=smooth,
            strength=strength,
            notch_levels=notch_levels,
            notch_threshold=notch_threshold,
            min_notch_gain=min_notch_gain,
            notch_width=notch_width,
            notch_priority=notch_priority,
        ),
        shrinkage_lambda=lam if np.isfinite(lam) else "inf",
        notch_shrinkage_lambda=notch_lam,
        predicted_psnr_db=predicted if np.isfinite(predicted) else "inf",
        real_images=real.count,
        fake_images=fake.count,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return SpectralProfile(
        radius=radius,
        radial_gain=radial_gain,
        notch_freq=freqs,
        notch_gain=depths,
        notch_width=widths,
        size=(h, w),
        provenance=info,
    )


def _bisect(ok: Any, good: float, bad: float, steps: int = 40) -> float:
    """The value nearest ``bad`` for which the monotone predicate ``ok`` still holds (``ok(good)`` is assumed)."""
    for _ in range(steps):
        mid = 0.5 * (good + bad)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def _find_notches(
    delta: np.ndarray, ring_median: np.ndarray, levels: int, threshold: float, strength: float, min_gain: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice frequencies (i, j)/2^levels where the fake spectrum peaks above its ring trend.

    Returns centres (K, 2), per-channel depths (K, C) and widths σ (K,) in cycles/pixel. A peak
    is one bin wide when the artefact is exactly periodic; content modulates it and widens it, so
    σ is taken from where the channel-mean excess, averaged over rings around the centre, first
    falls below half its peak (half width at half maximum = 1.18σ), at least half a bin.
    """
    channels, h, w = delta.shape
    excess = ring_median[:, radial_index(h, w)] - delta  # > 0 where the fake bin stands out
    mean_excess = excess.mean(0)
    period = 2**levels
    reach = max(1, min(h, w) // (2 * period))  # half the lattice spacing, in bins
    oy, ox = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    ring = np.rint(np.hypot(oy, ox)).astype(np.int64).ravel()
    freqs, depths, widths = [], [], []
    for i in range(-period // 2, period // 2 + 1):
        for j in range(-period // 2, period // 2 + 1):
            if i == 0 and j == 0:
                continue
            fy, fx = i / period, j / period
            y, x = h // 2 + int(round(fy * h)), w // 2 + int(round(fx * w))
            if not (0 <= y < h and 0 <= x < w):
                continue  # +Nyquist: the centred grid holds it as -Nyquist, visited separately
            peak = excess[:, y, x]
            if float(peak.mean()) <= threshold:
                continue
            around = mean_excess[(y + oy) % h, (x + ox) % w].ravel()  # the torus wraps at Nyquist
            profile = np.bincount(ring, weights=around) / np.bincount(ring)
            below = np.nonzero(profile[: reach + 1] < 0.5 * profile[0])[0]
            half_width = float(below[0]) if below.size else float(reach)
            freqs.append((fy, fx))
            depths.append(np.clip(np.exp(-np.maximum(peak, 0.0) * strength), min_gain, 1.0))
            widths.append(max(0.5, half_width / 1.1774) / min(h, w))
    return (
        np.array(freqs, dtype=np.float64).reshape(-1, 2),
        np.array(depths, dtype=np.float64).reshape(-1, channels),
        np.array(widths, dtype=np.float64),
    )


# --------------------------------------------------------------------------- refiners (runtime stage)


def _check_batch(batch: Any, name: str) -> None:
    if not isinstance(batch, np.ndarray):
        raise I2IError(f"{name}: expected a numpy array, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise I2IError(f"{name}: expected an (N, 3, H, W) RGB batch, got shape {batch.shape}")
    if batch.dtype != np.float32:
        raise I2IError(f"{name}: expected float32 input, got {batch.dtype}")


class Refiner(abc.ABC):
    """The refine stage: float32 NCHW RGB in [-1, 1] → the same, magnitude spectrum corrected.

    The base class validates each batch in ``__call__`` and hands it to ``_refine``; refiners are
    context managers.
    """

    kind: ClassVar[str] = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False

    @abc.abstractmethod
    def _refine(self, batch: np.ndarray) -> np.ndarray: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self._closed:
            raise I2IError(f"{self.kind} refiner is closed")
        _check_batch(batch, f"{self.kind} refiner")
        out = self._refine(batch)
        return np.clip(out, -1.0, 1.0, out=out)

    def describe(self) -> str:
        return f"{self.kind} refiner ({self.path.name})"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Refiner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProfileRefiner(Refiner):
    """Applies a ``SpectralProfile``: y = IDFT(G · DFT(x)) per channel, G resampled to the frame.

    OpenCV's real DFT in CCS-packed form and ``mulSpectrums`` keep it to one forward and one
    inverse real transform per plane (≈0.6 ms per 256² plane on one CPU core); the packed gain
    for each frame size is built once and cached.
    """

    kind = "profile"

    def __init__(self, path: Path, profile: SpectralProfile) -> None:
        super().__init__(path)
        self.profile = profile
        self._packed: dict[tuple[int, int], list[np.ndarray]] = {}

    def packed_gain(self, height: int, width: int) -> list[np.ndarray]:
        """Per channel, the gain in OpenCV's CCS layout (what ``cv2.dft`` of a real plane returns).

        G is real and conjugate-symmetric, so it is the DFT of the real kernel k = IDFT(G); the
        DFT of k in CCS form is therefore exactly G laid out the way ``mulSpectrums`` expects.
        """
        key = (height, width)
        if key not in self._packed:
            gains = self.profile.gain_map(height, width)
            kernels = np.fft.ifft2(gains, axes=(-2, -1)).real
            self._packed[key] = [cv2.dft(k).astype(np.float32) for k in kernels]
        return self._packed[key]

    def _refine(self, batch: np.ndarray) -> np.ndarray:
        n, c, h, w = batch.shape
        if c != self.profile.channels:
            raise I2IError(f"profile refiner: profile has {self.profile.channels} channels, batch has {c}")
        gains = self.packed_gain(h, w)
        out = np.empty_like(batch)
        for i in range(n):
            for ch in range(c):
                spectrum = cv2.dft(np.ascontiguousarray(batch[i, ch]))
                spectrum = cv2.mulSpectrums(spectrum, gains[ch], 0)
                out[i, ch] = cv2.idft(spectrum, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
        return out


def stig_spectrum_grid(src: tuple[int, int], dst: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps that resample a centred spectrum from ``src`` (H, W) to ``dst`` by frequency.

    Destination bin j holds normalised frequency (j − D//2)/D, found at source index
    S//2 + (j − D//2)·S/D: DC lands on DC exactly (a plain image resize would shift it by half a bin).
    """
    (sh, sw), (dh, dw) = src, dst
    ys = sh // 2 + (np.arange(dh, dtype=np.float32) - dh // 2) * (sh / dh)
    xs = sw // 2 + (np.arange(dw, dtype=np.float32) - dw // 2) * (sw / dw)
    map_x, map_y = np.meshgrid(xs, ys)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def _resample_spectrum(planes: np.ndarray, dst: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) centred spectra → (N, C, dst_h, dst_w), bilinear in frequency."""
    n, c, h, w = planes.shape
    if (h, w) == dst:
        return planes
    map_x, map_y = stig_spectrum_grid((h, w), dst)
    out = np.empty((n, c, *dst), dtype=np.float32)
    for i in range(n):
        for ch in range(c):
            out[i, ch] = cv2.remap(planes[i, ch], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def stig_refine(batch: np.ndarray, network: Any, spectrum_size: int | None = None, multiple: int = 1) -> np.ndarray:
    """STIG's refinement around a spectrum network (numpy mirror of ``i2i.train.spectral``).

    x ∈ [-1, 1] → x₀₁ = (x + 1)/2 → F = fftshift(fft2(x₀₁)) → M = log1p|F|, φ = angle F →
    Mn = 2(M − min)/(max − min) − 1 per image → M̂n = network(Mn) → M̂ = inverse-normalised with the
    same min/max → F̂ = expm1(M̂)·e^{iφ} → y₀₁ = Re(ifft2(ifftshift(F̂))) → y = 2y₀₁ − 1.
    ``network``: (N, 3, S, S) float32 → same. Frames of another size are handled by running the
    network on the spectrum resampled (in frequency) to ``spectrum_size`` and applying its change,
    resampled back, to the frame's own spectrum; a frame whose sides are not multiples of
    ``multiple`` is edge-padded around the spectrum for the network and cropped after.
    """
    x01 = (batch.astype(np.float64) + 1.0) * 0.5
    spectrum = centred_spectrum(x01)  # (N, C, H, W) complex128
    magnitude = np.log1p(np.abs(spectrum))
    low = magnitude.min(axis=(1, 2, 3), keepdims=True)
    high = magnitude.max(axis=(1, 2, 3), keepdims=True)
    span = np.maximum(high - low, 1e-12)
    normed = (2.0 * (magnitude - low) / span - 1.0).astype(np.float32)
    h, w = normed.shape[2:]
    work_size = (spectrum_size, spectrum_size) if spectrum_size else (h, w)
    net_in = _resample_spectrum(normed, work_size)
    ph, pw = -net_in.shape[2] % multiple, -net_in.shape[3] % multiple
    if ph or pw:
        net_in = np.pad(net_in, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
    net_out = np.asarray(network(np.ascontiguousarray(net_in)), dtype=np.float32)
    net_out = net_out[:, :, : net_in.shape[2] - ph, : net_in.shape[3] - pw]
    if work_size == (h, w):
        refined = net_out.astype(np.float64)
    else:  # apply the network's change, resampled back to this frame's frequency grid
        change = net_out - net_in[:, :, : net_in.shape[2] - ph, : net_in.shape[3] - pw]
        refined = normed.astype(np.float64) + _resample_spectrum(change, (h, w)).astype(np.float64)
    new_magnitude = (refined + 1.0) * 0.5 * span + low
    new_spectrum = np.expm1(new_magnitude) * np.exp(1j * np.angle(spectrum))
    image01 = np.fft.ifft2(np.fft.ifftshift(new_spectrum, axes=(-2, -1)), axes=(-2, -1)).real
    return (2.0 * image01 - 1.0).astype(np.float32)


class StigOnnxRefiner(Refiner):
    """An exported STIG refiner (``i2i-export`` of a ``method: stig`` model.pt) run by ONNX Runtime.

    The ONNX graph is the spectrum network only; the FFT, normalisation and phase reattachment
    around it run here on the host (``stig_refine``).
    """

    kind = "stig"

    def __init__(self, path: Path, session: Any, card: dict[str, Any]) -> None:
        super().__init__(path)
        self._session = session
        self.card = card
        self.spectrum_size = int(card.get("arch_kwargs", {}).get("spectrum_size") or 0) or None
        self.multiple = int(card.get("size_multiple", 1))

    def _refine(self, batch: np.ndarray) -> np.ndarray:
        return stig_refine(batch, self._session.run, self.spectrum_size, self.multiple)

    def _close(self) -> None:
        self._session.close()


def open_refiner(path: str | Path) -> Refiner:
    """Open a refinement file for the runtime's refine stage: a profile ``.npz`` or a STIG ``.onnx``."""
    path = Path(path)
    if not path.is_file():
        raise I2IError(f"refinement file not found: {path}")
    if path.suffix == ".npz":
        return ProfileRefiner(path, SpectralProfile.load(path))
    if path.suffix == ".onnx":
        from i2i.runtime.backends.onnxruntime import OrtSession

        session = OrtSession(path)
        card = session.card or {}
        if card.get("method") != "stig":
            session.close()
            found = card.get("method") if card else "no i2i card"
            raise I2IError(
                f"{path} is not a STIG refiner (method: {found}); export a model trained with `i2i-train stig`"
            )
        return StigOnnxRefiner(path, session, card)
    raise I2IError(f"--refine takes a spectral profile (.npz) or a STIG refiner (.onnx), got {path.name}")
