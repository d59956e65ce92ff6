"""The runtime's spectral refinement stage: load a refinement, apply it (numpy + OpenCV; never imports torch).

Generated images differ from real ones in the frequency domain: stride-2 transposed convolutions
leave a lattice of periodic peaks in the magnitude spectrum (checkerboard artefacts) and many
generators under-represent high frequencies (Durall et al., CVPR 2020; Lee, Jung & Seo, "Spectrum
Translation for Refinement of Image Generation (STIG)", AAAI 2024). Refinement corrects that,
keeping the phase and changing only the magnitude of the per-channel 2-D DFT. Two forms:

Spectral filter profile (``SpectralProfile``, a ``.npz``)
    G(u, v) = g_c(ρ(u, v)) · Π_k n_k,c(u, v): per-channel radial gains times Gaussian notches, stored
    in normalised frequency so it is resampled to any frame size; applying it is a zero-phase
    linear filter y = IDFT(G · DFT(x)) (``ProfileRefiner``). Profiles are fitted offline by
    ``i2i.analysis`` (``i2i-eval profile``), which also measures spectra and LFD.
STIG refiner (an exported ``i2i-train stig`` model)
    A network on the log-magnitude spectrum, opened through the backend registry like any model
    (``--backend auto`` picks ONNX Runtime CUDA, OpenVINO, ONNX Runtime CPU...); the FFT,
    normalisation and phase reattachment around it run here on the host (``stig_refine``). Its model
    card says it is a refiner (``card.refiner``) and at which spectrum size it was trained.
``open_refiner(path)`` → a ``Refiner`` for either.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from i2i.errors import I2IError

PROFILE_FORMAT = "i2i-spectral-profile/1"


# --------------------------------------------------------------------------- spectra


def centred_spectrum(images: np.ndarray) -> np.ndarray:
    """Per-channel 2-D DFT over the last two axes, DC moved to (H//2, W//2). (..., H, W) → complex."""
    spectrum = np.fft.fft2(np.asarray(images, dtype=np.float64), axes=(-2, -1))
    # Shift the spatial axes only: the official STIG code shifts every axis (batch and channel too).
    return np.fft.fftshift(spectrum, axes=(-2, -1))


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


class StigRefiner(Refiner):
    """An exported STIG refiner (``i2i-export`` of a ``method: stig`` model.pt) on any backend.

    The graph is the spectrum network only; ``stig_refine`` runs the FFT, normalisation and phase
    reattachment around it on the host and hands the network its (N, 3, S, S) spectra.
    """

    kind = "stig"

    def __init__(self, path: Path, backend: Any, spectrum_size: int | None) -> None:
        super().__init__(path)
        self.backend = backend
        self.spectrum_size = spectrum_size
        self.multiple = int(backend.size_multiple)
        self._dtype = np.dtype(backend.io.dtype)  # an fp16 export takes float16 spectra

    def _network(self, spectra: np.ndarray) -> np.ndarray:
        return np.asarray(self.backend(np.ascontiguousarray(spectra, dtype=self._dtype)), dtype=np.float32)

    def _refine(self, batch: np.ndarray) -> np.ndarray:
        return stig_refine(batch, self._network, self.spectrum_size, self.multiple)

    def describe(self) -> str:
        return f"{self.kind} refiner ({self.path.name} on {self.backend.describe()})"

    def _close(self) -> None:
        self.backend.close()


def open_refiner(path: str | Path, *, backend: str = "auto", device: str = "auto") -> Refiner:
    """Open a refinement for the runtime's refine stage: a profile ``.npz``, or a STIG refiner in any
    model format the backends run (``.onnx``, an engine, ...) on ``backend`` (``auto``: the fastest
    that starts here, as for models) and ``device``."""
    path = Path(path)
    if not path.is_file():
        raise I2IError(f"refinement file not found: {path}")
    if path.suffix == ".npz":
        return ProfileRefiner(path, SpectralProfile.load(path))
    from i2i.runtime.formats import FORMATS, read_card

    if not any(path.suffix.lower() in row.suffixes for row in FORMATS.values()):
        raise I2IError(f"--refine takes a spectral profile (.npz) or a STIG refiner (.onnx), got {path.name}")
    card = read_card(path)
    if card.refiner is None or card.refiner.kind != StigRefiner.kind:
        found = f"method {card.method}" if card.method else "no refiner in its card"
        raise I2IError(f"{path} is not a STIG refiner ({found}); export a model trained with `i2i-train stig`")
    # An fp32 refiner runs in fp32: its corrections are small next to the image (a bf16 mantissa,
    # 2^-8 of the value, is of their size), so --precision auto's bf16 is not taken for it.
    precision = "fp32" if card.precision == "fp32" else None
    network = _open_network(path, backend, device, precision)
    return StigRefiner(path, network, card.refiner.spectrum_size)


def _open_network(path: Path, backend: str, device: str, precision: str | None) -> Any:
    """The refiner's network through the backend registry, as ``i2i-run`` opens models."""
    from i2i.runtime.backends import open_backend
    from i2i.runtime.backends.auto import open_auto

    if backend == "auto":
        return open_auto(path, device, precision)[0]
    return open_backend(backend, path, device=device, precision=precision)
