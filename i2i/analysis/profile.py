"""Fitting a spectral filter profile from real and generated images (closed form, no training).

G(u, v) = g_c(ρ(u, v)) · Π_k n_k,c(u, v): a per-channel radial gain curve g_c (the ring median of
mean log|F_real| − mean log|F_fake|, smoothed and clipped, 1 at DC) times Gaussian notches n_k at
the lattice frequencies (i/2^L, j/2^L) where the generated spectrum peaks above its ring (stride-2
transposed convolutions put their peaks exactly there, at any image size). Both are shrunk,
Wiener-style, by the generated set's power until the predicted PSNR between refined and unrefined
images meets a floor (33 dB), so strong low frequencies stay and weak ones are fixed. The result is
a ``i2i.runtime.spectral.SpectralProfile``: stored in normalised frequency, applied by the runtime
at any frame size as a zero-phase linear filter y = IDFT(G · DFT(x)).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from i2i.analysis.spectra import SpectrumStats, radial_index, radial_profile, ring_radius
from i2i.errors import I2IError
from i2i.runtime.spectral import SpectralProfile, notch_gain_map, radial_gain_map


@dataclass(frozen=True)
class ProfileConfig:
    """How ``estimate_profile`` fits a profile; ``i2i-eval profile`` exposes the common fields.

    The radial log gain is ``strength`` × the smoothed ring median of the log-magnitude difference,
    clipped to [ln ``min_gain``, ln ``max_gain``]; ``keep_radius`` (cycles/pixel) leaves the lowest
    frequencies alone. Notches go on the 1/2^``notch_levels`` lattice where the generated spectrum
    stands more than ``notch_threshold`` (natural log) above its ring, at least ``min_notch_gain``
    deep, σ = ``notch_width`` bins (None: from the peak's half width). ``min_psnr`` (dB, None: no
    shrinkage) bounds how much the refinement may change an image; ``notch_priority`` spends that
    budget on the notches first.
    """

    min_psnr: float | None = 33.0
    max_gain: float = 4.0
    min_gain: float = 0.25
    keep_radius: float = 0.0
    smooth: int = 3
    strength: float = 1.0
    notch_levels: int = 3
    notch_threshold: float = 0.5
    min_notch_gain: float = 0.01
    notch_width: float | None = 0.5
    notch_priority: bool = False

    def __post_init__(self) -> None:
        if not (0 < self.min_gain <= 1 <= self.max_gain) or not (0 < self.min_notch_gain <= 1) or self.strength < 0:
            raise I2IError("need 0 < min_gain <= 1 <= max_gain, 0 < min_notch_gain <= 1 and strength >= 0")
        if self.smooth < 1 or self.notch_levels < 1:
            raise I2IError(f"smooth and notch_levels must be >= 1, got {self.smooth} and {self.notch_levels}")


def estimate_profile(
    real: SpectrumStats,
    fake: SpectrumStats,
    config: ProfileConfig = ProfileConfig(),
    *,
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
    It is a set average: single images vary around it.

    Notches: at each lattice frequency (i, j) / 2^notch_levels ≠ 0, the residual peak
        D_c = median_ring(Δ_c) − Δ_c(u, v)   (how far the fake bin stands above its ring's trend)
    is averaged over channels; above ``notch_threshold`` (0.5 ≈ 1.65×) a notch of per-channel depth
    exp(−strength · max(D_c, 0)), at least ``min_notch_gain``, goes there.
    By default one λ shrinks the radial log gains and the notches' log depths alike — the most
    LFD per dB of PSNR, since a log-spectrum distance counts a notch bin once however visible the
    grid it removes. With ``notch_priority`` the notches keep their full depth (the grid goes
    even when that costs most of the PSNR budget) and only the radial part is shrunk, unless the
    notches alone break ``min_psnr``; then they are shrunk by the same rule.
    """
    if real.size != fake.size or real.size is None:
        raise I2IError(f"real and generated images must share a size, got {real.size} and {fake.size}")
    h, w = real.size
    delta = real.log_abs - fake.log_abs  # (C, H, W), centred
    ring_median = radial_profile(delta, reduce="median")  # (C, R)
    radius = ring_radius(h, w)
    freqs, depths, widths = _find_notches(delta, ring_median, config)
    if config.notch_width is not None:
        widths = np.full(len(freqs), config.notch_width / min(h, w))
    fit = _Shrinkage(_radial_trend(ring_median, radius, config), freqs, depths, widths, radius, fake.power, config)
    lam, notch_lam = fit.solve()
    radial_gain, notch_gain = fit.gains(lam, notch_lam)
    predicted = fit.psnr(lam, notch_lam)
    info = dict(provenance or {})
    info.update(
        parameters=dataclasses.asdict(config),
        shrinkage_lambda=lam if np.isfinite(lam) else "inf",
        notch_shrinkage_lambda=notch_lam,
        predicted_psnr_db=predicted if np.isfinite(predicted) else "inf",
        real_images=real.count,
        fake_images=fake.count,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return SpectralProfile(radius, radial_gain, freqs, notch_gain, widths, size=(h, w), provenance=info)


def _radial_trend(ring_median: np.ndarray, radius: np.ndarray, config: ProfileConfig) -> np.ndarray:
    """The unshrunk radial log gain (C, R): the ring median smoothed over ``smooth`` rings, 0 at DC."""
    trend = ring_median
    smooth = config.smooth
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        padded = np.pad(trend, ((0, 0), (smooth // 2, smooth - 1 - smooth // 2)), mode="edge")
        trend = np.stack([np.convolve(row, kernel, mode="valid") for row in padded])
    trend = trend * config.strength
    trend[:, radius < config.keep_radius] = 0.0
    trend[:, 0] = 0.0  # DC: the mean brightness is not the spectrum's business
    return trend


class _Shrinkage:
    """The Wiener-style shrinkage of the radial log gains and notch log depths by the fake power,
    the PSNR it predicts (Parseval), and the search for the smallest shrinkage meeting the bar."""

    def __init__(
        self,
        trend: np.ndarray,
        freqs: np.ndarray,
        depths: np.ndarray,
        widths: np.ndarray,
        radius: np.ndarray,
        fake_power: np.ndarray,
        config: ProfileConfig,
    ) -> None:
        self.trend, self.freqs, self.widths, self.radius, self.config = trend, freqs, widths, radius, config
        self.notch_log = np.log(depths)
        channels, h, w = fake_power.shape
        self.shape = (channels, h, w)
        self.ring_power = radial_profile(fake_power)  # (C, R)
        reference = float(np.median(self.ring_power[:, 1:])) if self.ring_power.shape[1] > 1 else 1.0
        self.scale = max(reference, 1e-30)
        self.power = np.fft.ifftshift(fake_power, axes=(-2, -1))  # natural order, like gain maps
        centre = np.array(
            [[h // 2 + int(round(fy * h)), w // 2 + int(round(fx * w))] for fy, fx in freqs], dtype=np.int64
        ).reshape(-1, 2)
        self.notch_power = fake_power[:, centre[:, 0], centre[:, 1]].T  # (K, C): the fake power at each notch

    def gains(self, lam: float, notch_lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Radial gains (C, R) and notch depths (K, C) for shrinkages λ (0: none, inf: no change)."""
        with np.errstate(invalid="ignore", divide="ignore"):  # λ = inf gives 0 / inf = 0: no change
            log_gain = np.nan_to_num(self.trend / (1.0 + lam * self.ring_power / self.scale))
            log_depth = np.nan_to_num(self.notch_log / (1.0 + notch_lam * self.notch_power / self.scale))
        bounds = np.log(self.config.min_gain), np.log(self.config.max_gain)
        return np.exp(np.clip(log_gain, *bounds)), np.exp(log_depth)

    def psnr(self, lam: float, notch_lam: float) -> float:
        """Predicted PSNR (dB) of refined vs unrefined generated images: by Parseval, from the fake power."""
        channels, h, w = self.shape
        radial_gain, notch_depth = self.gains(lam, notch_lam)
        gains = radial_gain_map(self.radius, radial_gain, h, w) * notch_gain_map(
            self.freqs, notch_depth, self.widths, h, w, channels
        )
        mse = float(np.sum((gains - 1.0) ** 2 * self.power)) / (channels * float(h * w) ** 2)
        return float("inf") if mse <= 0 else -10.0 * np.log10(mse)

    def solve(self) -> tuple[float, float]:
        """The smallest shrinkage(s) (λ, λ_notch) that meet ``min_psnr``, searched over log10 λ
        (at λ = 10^12 nothing changes)."""
        bar, psnr = self.config.min_psnr, self.psnr
        if bar is None or psnr(0.0, 0.0) >= bar:
            return 0.0, 0.0

        def search(ok: Callable[[float], bool]) -> float:
            return float(10.0 ** _bisect(ok, 12.0, -12.0, steps=30))

        if not self.config.notch_priority:  # one exchange rate for everything: the best LFD for the PSNR
            lam = search(lambda e: psnr(10.0**e, 10.0**e) >= bar)
            return lam, lam
        if psnr(float("inf"), 0.0) >= bar:
            return search(lambda e: psnr(10.0**e, 0.0) >= bar), 0.0
        return float("inf"), search(lambda e: psnr(float("inf"), 10.0**e) >= bar)


def _bisect(ok: Callable[[float], bool], good: float, bad: float, steps: int = 40) -> float:
    """The value nearest ``bad`` for which the monotone predicate ``ok`` still holds (``ok(good)`` is assumed)."""
    for _ in range(steps):
        mid = 0.5 * (good + bad)
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def _find_notches(
    delta: np.ndarray, ring_median: np.ndarray, config: ProfileConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lattice frequencies (i, j)/2^levels where the fake spectrum peaks above its ring trend.

    Returns centres (K, 2), per-channel depths (K, C) and widths σ (K,) in cycles/pixel.
    """
    channels, h, w = delta.shape
    excess = ring_median[:, radial_index(h, w)] - delta  # > 0 where the fake bin stands out
    mean_excess = excess.mean(0)
    period = 2**config.notch_levels
    reach = max(1, min(h, w) // (2 * period))  # half the lattice spacing, in bins
    freqs, depths, widths = [], [], []
    for i in range(-period // 2, period // 2 + 1):
        for j in range(-period // 2, period // 2 + 1):
            fy, fx = i / period, j / period
            y, x = h // 2 + int(round(fy * h)), w // 2 + int(round(fx * w))
            if (i, j) == (0, 0) or not (0 <= y < h and 0 <= x < w):
                continue  # DC; or +Nyquist: the centred grid holds it as -Nyquist, visited separately
            peak = excess[:, y, x]
            if float(peak.mean()) <= config.notch_threshold:
                continue
            freqs.append((fy, fx))
            depths.append(np.clip(np.exp(-np.maximum(peak, 0.0) * config.strength), config.min_notch_gain, 1.0))
            widths.append(_peak_width(mean_excess, y, x, reach) / min(h, w))
    return (
        np.array(freqs, dtype=np.float64).reshape(-1, 2),
        np.array(depths, dtype=np.float64).reshape(-1, channels),
        np.array(widths, dtype=np.float64),
    )


def _peak_width(mean_excess: np.ndarray, y: int, x: int, reach: int) -> float:
    """σ in bins of the peak at (y, x): a peak is one bin wide when the artefact is exactly periodic;
    content modulates it and widens it, so σ is taken from where the channel-mean excess, averaged
    over rings around the centre, first falls below half its peak (half width at half maximum =
    1.18σ), at least half a bin."""
    h, w = mean_excess.shape
    oy, ox = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    ring = np.rint(np.hypot(oy, ox)).astype(np.int64).ravel()
    around = mean_excess[(y + oy) % h, (x + ox) % w].ravel()  # the torus wraps at Nyquist
    profile = np.bincount(ring, weights=around) / np.bincount(ring)
    below = np.nonzero(profile[: reach + 1] < 0.5 * profile[0])[0]
    half_width = float(below[0]) if below.size else float(reach)
    return max(0.5, half_width / 1.1774)
