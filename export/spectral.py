"""Bake spectral refinement into the exported graph: the DFT as constant real matrix products.

A spectral filter profile (``i2i.runtime.spectral.SpectralProfile``) is a zero-phase filter:
y = IDFT(G · DFT(x)) per channel, G real and conjugate-symmetric. For a fixed frame size H×W it
is linear, so it can run inside the ONNX graph after the generator — without the ONNX ``DFT``
op, which TensorRT does not support — as four MatMuls with constant cos/sin matrices:

    C_N[j, k] = cos(2πjk/N),  S_N[j, k] = sin(2πjk/N),  W' = W//2 + 1 (real input: half spectrum)
    1. along W  Z = x · [C_W | −S_W][:, :W']                 Z_r, Z_i      (…, H, W')
    2. along H  [X_r; X_i] = [[C_H, S_H], [−S_H, C_H]] · [Z_r; Z_i]         (…, 2H, W')
    3. gain     [Y_r; Y_i] = (G − 1) · [X_r; X_i]
    4. along H  [U_r; U_i] = [[C_H, −S_H], [S_H, C_H]] · [Y_r; Y_i]
    5. along W  y = x + (1/HW) Σ_v w_v (U_r[v] C_W[v] − U_i[v] S_W[v]),  w_v = 1 at v = 0 and at
                W/2 (even W), 2 elsewhere (the other half of the spectrum is the conjugate mirror)
The 1/(HW) is spread as 1/√W and 1/√H over the four products (orthonormal DFTs), which keeps every
intermediate within ≈ √(HW) of the pixel range — fp16 engines do not overflow at the DC term.

Filtering G − 1 and adding x back keeps fp32 (and fp16) rounding proportional to the change, not
to the whole image. Cost per channel: 4HW'(2H) + 4HWW' multiply-adds, ≈ 0.2 GFLOP for a 3×256²
frame — a few percent of a ResNet generator at that size.

``bake_refinement(generator, profile, (H, W))`` returns generator → filter → clamp to [-1, 1],
exactly what the runtime's ``ProfileRefiner`` does after the translation engine.

A STIG refiner (``method: stig`` model.pt) bakes the same way (``StigRefinement``): the centred
DFT (fftshift folded into the matrices' rows), log1p|X|, per-image min/max normalisation, the
spectrum network, expm1 and the input's phase (X/|X|), inverse DFT — MatMul, Sqrt, Log, Exp,
ReduceMin/Max, Div and the network's own ops, all TensorRT-supported. It needs frames of the
size the refiner was trained on (the runtime stage resamples other sizes; the graph does not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from i2i.errors import I2IError
from i2i.runtime.spectral import SpectralProfile


def _cos_sin(n: int, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """C, S of shape (n, m) for an n-point DFT: angles 2π·j·k/n, computed exactly in float64."""
    m = n if m is None else m
    jk = np.outer(np.arange(n), np.arange(m)) % n  # reduce first: keeps the angle small and exact
    angle = 2.0 * np.pi * jk / n
    return np.cos(angle), np.sin(angle)


class SpectralFilter(nn.Module):
    """y = x + Re IDFT((G − 1) ⊙ DFT(x)) per channel for (N, C, H, W) input of one fixed H×W."""

    forward_w: torch.Tensor  # (W, 2W')
    forward_h: torch.Tensor  # (2H, 2H)
    inverse_h: torch.Tensor  # (2H, 2H)
    inverse_w: torch.Tensor  # (2W', W), 1/(HW) and the half-spectrum weights folded in
    delta: torch.Tensor  # (1, C, 2H, W'): G − 1 for the real and the imaginary rows

    def __init__(self, gain: np.ndarray) -> None:
        super().__init__()
        if gain.ndim != 3:
            raise ValueError(f"gain must be (C, H, W), got shape {gain.shape}")
        channels, h, w = gain.shape
        half = w // 2 + 1
        cos_w, sin_w = _cos_sin(w, half)  # (W, W')
        cos_h, sin_h = _cos_sin(h)  # (H, H)
        weights = np.full(half, 2.0)
        weights[0] = 1.0
        if w % 2 == 0:
            weights[-1] = 1.0
        # Orthonormal scaling (1/√N per transform, not 1/(HW) at the end): |X| ≤ √(HW)·max|x|, so an
        # fp16 engine cannot overflow (an unscaled DC of a bright 256² frame is ≈ 6e4 > fp16's max).
        rw, rh = 1.0 / np.sqrt(w), 1.0 / np.sqrt(h)
        forward_w = np.concatenate([cos_w, -sin_w], axis=1) * rw  # (W, 2W')
        forward_h = np.block([[cos_h, sin_h], [-sin_h, cos_h]]) * rh  # (2H, 2H)
        inverse_h = np.block([[cos_h, -sin_h], [sin_h, cos_h]]) * rh  # (2H, 2H)
        inverse_w = np.concatenate([cos_w.T * weights[:, None], -sin_w.T * weights[:, None]], axis=0) * rw
        delta = (gain[:, :, :half] - 1.0)[None]  # (1, C, H, W'): natural FFT order, first W' columns
        self.size = (h, w)
        self.channels = channels
        self.half_width = half
        for name, value in (
            ("forward_w", forward_w),
            ("forward_h", forward_h),
            ("inverse_h", inverse_h),
            ("inverse_w", inverse_w),
            ("delta", np.concatenate([delta, delta], axis=2)),  # (1, C, 2H, W'): same gain for re and im
        ):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, half = self.size[0], self.half_width
        z = torch.matmul(x, self.forward_w)  # (N, C, H, 2W')
        z = torch.cat([z[..., :half], z[..., half:]], dim=2)  # (N, C, 2H, W'): [Z_r; Z_i]
        spectrum = torch.matmul(self.forward_h, z) * self.delta  # [Y_r; Y_i] = (G − 1)·[X_r; X_i]
        u = torch.matmul(self.inverse_h, spectrum)  # [U_r; U_i]
        u = torch.cat([u[:, :, :h], u[:, :, h:]], dim=3)  # (N, C, H, 2W'): [U_r | U_i]
        return x + torch.matmul(u, self.inverse_w)


def _centred_cos_sin(n: int) -> tuple[np.ndarray, np.ndarray]:
    """C, S with [u, j] = cos/sin(2π(u − n//2)j/n): DFT rows already in fftshift order."""
    k = (np.arange(n) - n // 2) % n  # the frequency each centred row holds
    jk = np.outer(k, np.arange(n)) % n
    angle = 2.0 * np.pi * jk / n
    return np.cos(angle), np.sin(angle)


class StigRefinement(nn.Module):
    """STIG's refinement in-graph for (N, 3, H, W) images in [-1, 1] of one fixed size.

    x₀₁ = (x + 1)/2, X = F_H x₀₁ F_Wᵀ (centred), M = log1p|X|, Mn = 2(M − min)/(max − min) − 1 per
    image, M̂ = inverse-normalised network(Mn), Y = expm1(M̂)·X/|X|, y₀₁ = Re(F_H* Y F_W*)/(HW),
    output clamp(2y₀₁ − 1). Mirrors ``i2i.runtime.spectral.stig_refine`` at the trained size.
    """

    forward_w: torch.Tensor  # (W, 2W)
    forward_h: torch.Tensor  # (2H, 2H)
    inverse_h: torch.Tensor  # (2H, 2H)
    inverse_w: torch.Tensor  # (2W, W)

    def __init__(self, network: nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        h, w = size
        cos_h, sin_h = _centred_cos_sin(h)
        cos_w, sin_w = _centred_cos_sin(w)
        self.network = network
        self.size = (h, w)
        rw, rh = 1.0 / np.sqrt(w), 1.0 / np.sqrt(h)  # orthonormal: see SpectralFilter
        self.log_scale = 0.5 * float(np.log(h * w))  # |X| = √(HW)·|X_orthonormal|
        for name, value in (
            ("forward_w", np.concatenate([cos_w.T, -sin_w.T], axis=1) * rw),  # x·F_Wᵀ → [Z_r | Z_i]
            ("forward_h", np.block([[cos_h, sin_h], [-sin_h, cos_h]]) * rh),  # F_H·Z → [X_r; X_i]
            ("inverse_h", np.block([[cos_h.T, -sin_h.T], [sin_h.T, cos_h.T]]) * rh),  # F_H*ᵀ·Y → [U_r; U_i]
            ("inverse_w", np.concatenate([cos_w, -sin_w], axis=0) * rw),  # Re(U·F_W*)
        ):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value)).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        z = torch.matmul((x + 1.0) * 0.5, self.forward_w)  # (N, C, H, 2W)
        spectrum = torch.matmul(self.forward_h, torch.cat([z[..., :w], z[..., w:]], dim=2))  # (N, C, 2H, W)
        real, imag = spectrum[:, :, :h], spectrum[:, :, h:]
        magnitude = torch.sqrt(real * real + imag * imag)  # orthonormal: |X| / √(HW)
        # log1p(|X|) = ln √(HW) + ln(|X|/√(HW) + 1/√(HW)), never forming |X| itself (fp16-safe);
        # plain Log/Exp because every exporter and TensorRT has them (expm1/log1p are not in ONNX).
        inv_scale = float(np.exp(-self.log_scale))
        log_magnitude = self.log_scale + torch.log(magnitude + inv_scale)
        low = torch.amin(log_magnitude, dim=(1, 2, 3), keepdim=True)
        span = (torch.amax(log_magnitude, dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
        refined = self.network(2.0 * (log_magnitude - low) / span - 1.0)
        # New magnitude, old phase: scale X by |Ŷ| / |X| (a zero bin has no phase and stays zero);
        # expm1(M̂)/√(HW) = exp(M̂ − ln √(HW)) − 1/√(HW), again without the full-size magnitude.
        new_magnitude = torch.exp((refined + 1.0) * 0.5 * span + low - self.log_scale) - inv_scale
        scale = new_magnitude / magnitude.clamp_min(1e-12)
        u = torch.matmul(self.inverse_h, torch.cat([real * scale, imag * scale], dim=2))  # (N, C, 2H, W)
        image01 = torch.matmul(torch.cat([u[:, :, :h], u[:, :, h:]], dim=3), self.inverse_w)
        return (2.0 * image01 - 1.0).clamp(-1.0, 1.0)


def stig_refinement(checkpoint: str | Path, size: tuple[int, int]) -> StigRefinement:
    """The in-graph refinement of a STIG refiner checkpoint for frames of ``size`` (its trained size)."""
    from i2i.train.checkpoint import load_generator

    network, ckpt = load_generator(checkpoint)
    if ckpt.get("method") != "stig":
        raise I2IError(
            f"{checkpoint} is not a STIG refiner (method {ckpt.get('method')!r}); train one with i2i-train stig"
        )
    trained = int(ckpt["arch_kwargs"].get("spectrum_size") or 0)
    h, w = (int(v) for v in size)
    if trained and (h, w) != (trained, trained):
        raise I2IError(
            f"this STIG refiner was trained on {trained}x{trained} spectra; in-graph refinement needs frames of "
            f"that size, got {w}x{h} (the runtime stage, i2i-run --refine, resamples other sizes)"
        )
    multiple = int(getattr(network, "size_multiple", 1))
    if h % multiple or w % multiple:
        raise I2IError(f"the STIG refiner needs frame sides that are multiples of {multiple}, got {w}x{h}")
    return StigRefinement(network, (h, w))


def profile_filter(profile: SpectralProfile | str | Path, size: tuple[int, int]) -> SpectralFilter:
    """The in-graph filter of a profile for frames of ``size`` = (H, W)."""
    if not isinstance(profile, SpectralProfile):
        profile = SpectralProfile.load(profile)
    return SpectralFilter(profile.gain_map(int(size[0]), int(size[1])))


class RefinedGenerator(nn.Module):
    """generator → in-graph refinement (clamped to [-1, 1]), for frames of exactly ``frame_size``."""

    def __init__(self, generator: nn.Module, refinement: nn.Module, frame_size: tuple[int, int]) -> None:
        super().__init__()
        self.generator = generator
        self.refinement = refinement
        self.size_multiple = int(getattr(generator, "size_multiple", 1))
        self.frame_size = frame_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refinement(self.generator(x)).clamp(-1.0, 1.0)


def bake_refinement(
    generator: nn.Module, refinement: SpectralProfile | str | Path, size: tuple[int, int]
) -> RefinedGenerator:
    """``generator`` followed by in-graph refinement for (H, W) frames; export it with fixed H and W.

    ``refinement``: a spectral profile (``.npz`` or a ``SpectralProfile``) or a STIG refiner
    checkpoint (``model.pt`` of ``i2i-train stig``). H and W are the sizes the generator sees,
    i.e. frames already padded to its size multiple.
    """
    multiple = int(getattr(generator, "size_multiple", 1))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise I2IError(f"refinement size must be positive, got {w}x{h}")
    if h % multiple or w % multiple:
        raise I2IError(f"--refine-size {w}x{h}: the generator needs multiples of {multiple}")
    if isinstance(refinement, SpectralProfile) or Path(refinement).suffix == ".npz":
        module: nn.Module = profile_filter(refinement, (h, w))
    elif Path(refinement).suffix == ".pt":
        module = stig_refinement(refinement, (h, w))
    else:
        raise I2IError(
            f"--refine takes a spectral profile (.npz) or a STIG refiner checkpoint (model.pt), got {refinement}"
        )
    return RefinedGenerator(generator, module, (h, w))
