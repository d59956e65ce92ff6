"""STIG: spectrum translation for refinement of image generation (Lee, Jung & Seo, AAAI 2024).

A generated image x_A (domain A: a generator's outputs) is refined in the frequency domain: its
per-channel log-magnitude spectrum M_A (normalised to [-1, 1]) is translated by a UNet++ G into
the domain of real spectra M_B, the phase φ_A is kept, and the image is rebuilt by inverse DFT:
x̂_A = IDFT(expm1(G(M_A)) · e^{iφ_A}) (paper §3, Fig. 3). Real and generated images are paired by
index only (they need not show the same content).

Objective (paper Eq. 10 with the weights of the official code), D and Ds LSGAN on sigmoid outputs:
    L_D  = ½[(D(M_B) − 1)² + D(G(M_A))²] + ½[(Ds(p(M_B)) − 1)² + Ds(p(x̂_A))²]
    L_G  = λ_GAN (D(G(M_A)) − 1)²                       adversarial, image-spectrum PatchGAN
         + λ_PSD (Ds(p(x̂_A)) − 1)²                      spectral discriminator on the ring profile p
         + λ_NCE (ℓ_NCE(M_A, G(M_A)) + ℓ_NCE(M_B, G(M_B)))   PatchNCE, CUT form, + identity term
         + λ_SSIM,B (1 − SSIM(x_B, x̂_B)) + λ_SSIM,A (1 − SSIM(x_A, x̂_A))   image-domain structure
         + λ_LF (L_LF(G(M_A), M_A) + L_LF(G(M_B), M_B))      low-frequency preservation (2σ box at DC)
ℓ_NCE = (1/L) Σ_l mean_patches CE([q·k⁺, q·k⁻]/τ) over the L encoder layers (Oord et al.; Park et
al., CUT, ECCV 2020; ``i2i.train.losses.patchnce``); G(M_B), x̂_B is the identity pass of a
real spectrum (``nce_idt``). As in the official code (github.com/ykykyk112/STIG), G sees M_A and
M_B in one forward pass, and each PatchNCE term encodes its source and its output in passes of
their own, so the BatchNorm statistics of A and B are never pooled in the encoder.
Defaults are the official code's: λ_GAN = λ_PSD = λ_LF = 3, λ_NCE = 10, λ_SSIM = 3 (real) /
1 (generated), SSIM window 35 with σ 1.5, σ_LF = 8, 256 patches, a patch MLP as wide as the
number of patches, τ = 0.07, lr 8e-5, 2 epochs constant + 8 decaying; G and D initialised
normal(0, 0.02), the patch MLP and the spectral discriminator left at PyTorch's default init.

NCE weighting (``nce_weighting``):
  * ``paper`` (default): λ_NCE · ℓ_NCE, the mean over every listed encoder layer (default all
    five, X^{0,0} … X^{4,0}): the paper's objective with the multilayer PatchNCE of CUT that it
    builds on, each term weighted once.
  * ``official``: what the official code computes, λ_NCE² / L · ℓ_NCE of the first listed layer
    only (20 · ℓ at X^{0,0} with the defaults): its criterion list has one element, so zip()
    stops after the first layer, the sum is still divided by the five layers, and λ_NCE is
    applied both inside and outside the loss. Use it to reproduce the official training.

Other deviations from the official code, on purpose:
  * fftshift over the spatial dims of each image only; the official one rolls batch and channel.
  * LFD computed in float (``i2i.train.spectral.lfd`` / ``i2i-eval spectrum``); the official
    one subtracts reloaded uint8 PNGs, which wraps.
  * Per-image spectrum normalisation (official: min/max over the whole batch); both spectral
    discriminator branches see the same profile normalisation (official: the real one the [-1, 1]
    spectrum, the fake one a [0, 1] per-sample spectrum); real part of the inverse DFT, not abs();
    no min-max stretch of the refined image. See ``i2i.train.spectral``.
  * No conv bias before a BatchNorm in the UNet++ (the BatchNorm's mean subtraction cancels it);
    official checkpoints import with the bias folded into the running mean (``i2i-train import``).
  * The spectral discriminator and patch MLPs are built eagerly (sizes follow from the config),
    not in a data-dependent init; D and Ds step first, then G, as in the official loop.
Options not in the paper: ``residual`` (G predicts a correction and starts as the identity; see
``i2i.train.nets.nested_unet``), ``upsample`` (``bilinear`` avoids bicubic's CUDA non-determinism).
Data: ``--real``/``--fake`` folders, resized to ``size`` only where they differ (a resize low-passes
the spectrum); the shared ``--load-size/--crop-size/--flip`` do not apply (the official code
neither crops nor flips) and a value other than their default is refused. Evaluation (LFD
before/after) is ``i2i-eval spectrum REAL FAKE --refine`` with the exported refiner, not the
official loop over the training loader.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from i2i.errors import I2IError
from i2i.train import spectral
from i2i.train.data import _resize, list_images, load_image_rgb, to_tensor
from i2i.train.losses.gan import GANLoss
from i2i.train.losses.patchnce import PatchNCELoss, PatchSampleMLP
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, register_method, set_requires_grad, total
from i2i.train.nets import build_net
from i2i.train.nets.nested_unet import UPSAMPLE_MODES, NestedUNet
from i2i.train.nets.norm import NORMS, init_weights
from i2i.train.options import option

if TYPE_CHECKING:
    from i2i.train.loop import TrainConfig


@dataclass(frozen=True)
class StigConfig(MethodConfig):
    real: str = option("", "Folder of real target-domain images (B).")
    fake: str = option("", "Folder of generated images to refine (A), paired with --real by sorted index.")
    size: int = option(
        256,
        "Images are resized to SIZE x SIZE when they differ, never cropped (resizing changes spectra: "
        "prefer matching sizes).",
        minimum=16,
    )
    ngf: int = option(64, "UNet++ width (filters of the first level).", minimum=1)
    ndf: int = option(64, "Spectrum discriminator width.", minimum=1)
    norm: str = option("batch", "UNet++ normalisation (the official UNet++: batch).", choices=NORMS)
    upsample: str = option("bicubic", "UNet++ upsampling (the paper: bicubic).", choices=UPSAMPLE_MODES)
    residual: bool = option(
        False, "G predicts a correction of its input spectrum and starts as the identity (not in the paper)."
    )
    lambda_gan: float = option(3.0, "Weight of the spectrum discriminator loss.")
    lambda_nce: float = option(10.0, "Weight of the PatchNCE loss.")
    lambda_psd: float = option(3.0, "Weight of the spectral (ring profile) discriminator loss.")
    lambda_lf: float = option(3.0, "Weight of the low-frequency preservation loss.")
    lambda_ssim_real: float = option(3.0, "Weight of 1 - SSIM between a real image and its identity refinement.")
    lambda_ssim_fake: float = option(1.0, "Weight of 1 - SSIM between a generated image and its refinement.")
    nce_layers: str = option("0,1,2,3,4", "UNet++ encoder levels X^{i,0} (0-4) compared by PatchNCE.")
    nce_weighting: str = option(
        "paper",
        "paper: lambda_nce x mean over --nce-layers; official: the official code's lambda_nce^2 / L x the "
        "first layer only (20 x layer 0 with the defaults).",
        choices=("paper", "official"),
    )
    num_patches: int = option(256, "Patches per image and layer for PatchNCE, also the patch MLP width.", minimum=1)
    nce_temperature: float = option(0.07, "PatchNCE softmax temperature.", above=0)
    nce_idt: bool = option(True, "Identity terms on real images: PatchNCE, SSIM and L_LF of G(M_B).")
    sigma: int = option(8, "Half-width (bins) of the low-frequency box around DC that L_LF preserves.", minimum=1)
    epochs: int = 2
    epochs_decay: int = 8
    lr: float = 8e-5


NCE_WEIGHTINGS = ("paper", "official")
# TrainConfig's augmentation options: STIG resizes to --size only, never crops or flips.
UNUSED_TRAIN_OPTIONS = ("load_size", "crop_size", "flip", "preprocess")


class RealFakeDataset(Dataset[dict[str, Any]]):
    """Generated (source) and real (target) images paired by sorted index, both wrapping round."""

    def __init__(self, real: str | Path, fake: str | Path, size: int) -> None:
        self.real_paths = list_images(real)
        self.fake_paths = list_images(fake)
        self.size = size

    def __len__(self) -> int:
        return max(len(self.real_paths), len(self.fake_paths))

    def _load(self, path: Path) -> torch.Tensor:
        # Resize only when needed (``_resize`` returns an image of the size as it is): a resize low-passes the
        # image and moves the very peaks STIG fixes. Bilinear: the official loader's transforms.Resize default.
        image = _resize(load_image_rgb(path), self.size, self.size, resample="bilinear")
        return to_tensor(np.ascontiguousarray(image))

    def __getitem__(self, index: int) -> dict[str, Any]:
        fake = self.fake_paths[index % len(self.fake_paths)]
        real = self.real_paths[index % len(self.real_paths)]
        return {"source": self._load(fake), "target": self._load(real), "name": fake.stem}


class SpectrumDiscriminator(nn.Module):
    """STIG's PatchGAN on normalised log-magnitude spectra.

    4 × (conv3×3 stride 2, InstanceNorm except in the first, LeakyReLU 0.2), conv3×3 → 1, sigmoid.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64) -> None:
        super().__init__()
        widths = [ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        prev = input_nc
        for i, width in enumerate(widths):
            layers.append(nn.Conv2d(prev, width, 3, stride=2, padding=1))
            if i > 0:
                layers.append(nn.InstanceNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = width
        layers.append(nn.Conv2d(prev, 1, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1, H/16, W/16) in (0, 1)
        return torch.sigmoid(self.model(x))


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 35, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al., 2004) of images in [0, 1], Gaussian window, zero padding (as STIG's code).

    The window is separable, so it runs as two 1-D depthwise convolutions.
    """
    channels = a.shape[1]
    g = _gaussian_window(window, sigma).to(a)
    gy = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    gx = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, gy, padding=(pad, 0), groups=channels)
        return F.conv2d(x, gx, padding=(0, pad), groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean()


@register_method("stig")
class Stig(Method[StigConfig]):
    config_class = StigConfig
    layout = "real+fake"
    needs_data = False  # reads --real and --fake, not --data (see i2i.train.cli)
    summary = "spectral refiner: UNet++ on log-magnitude spectra, GAN + PatchNCE + SSIM + LF (Lee et al. 2024)"
    unused_train_options = UNUSED_TRAIN_OPTIONS  # i2i-train stig does not offer them
    train_defaults = MappingProxyType({"test_norm": "frame"})
    test_norm_default_reason = (
        "STIG's official inference never calls eval(): its UNet++ BatchNorm normalises each spectrum "
        "by its own statistics, as per-frame statistics do"
    )

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: StigConfig) -> RealFakeDataset:
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        for name in UNUSED_TRAIN_OPTIONS:
            if getattr(config, name) != defaults[name]:
                flag = "--" + name.replace("_", "-")
                raise I2IError(f"stig: {flag} does not apply (images are resized to --size, never cropped or flipped)")
        if method_config.lambda_temporal:
            raise I2IError("stig: --lambda-temporal does not apply (STIG refines spectra, not video frames)")
        if not method_config.real or not method_config.fake:
            raise I2IError("stig needs --real DIR (real target images) and --fake DIR (the generator's outputs)")
        return RealFakeDataset(method_config.real, method_config.fake, method_config.size)

    def __init__(self, config: StigConfig, device: torch.device) -> None:
        super().__init__(config, device)
        if config.size % 16:
            raise I2IError(f"--size {config.size}: STIG's UNet++ needs a multiple of 16")
        if not 0 < config.sigma <= config.size // 2:
            raise I2IError(f"--sigma {config.sigma}: the low-frequency box must fit in the {config.size}² spectrum")
        try:
            self.nce_layers = sorted({int(v) for v in config.nce_layers.split(",") if v.strip()})
        except ValueError:
            raise I2IError(f"--nce-layers {config.nce_layers!r}: give comma-separated encoder levels 0-4") from None
        if not self.nce_layers or not set(self.nce_layers) <= set(range(5)):
            raise I2IError(f"--nce-layers {config.nce_layers!r}: encoder levels are 0-4")
        if config.nce_weighting not in NCE_WEIGHTINGS:
            raise I2IError(f"--nce-weighting {config.nce_weighting!r}: valid: {', '.join(NCE_WEIGHTINGS)}")
        self.g_kwargs: dict[str, Any] = dict(
            input_nc=3,
            output_nc=3,
            ngf=config.ngf,
            norm=config.norm,
            upsample=config.upsample,
            spectrum_size=config.size,
            residual=config.residual,
        )
        generator = init_weights(build_net("unetpp", **self.g_kwargs))
        assert isinstance(generator, NestedUNet)
        self.generator = generator.to(device)
        if config.residual:
            self.generator.zero_head()  # after init_weights, which would randomise it
        self.discriminator = init_weights(SpectrumDiscriminator(3, config.ndf)).to(device)
        self.rings = spectral.chebyshev_rings(config.size, config.size).to(device)
        # The spectral discriminator and the patch MLP keep PyTorch's default init: the official
        # code creates both after its init_net calls (in data_dependent_init and on the MLP's
        # first forward), so normal(0, 0.02) never reaches them.
        self.spectral_discriminator = nn.Sequential(nn.Linear(self.rings.shape[0], 1), nn.Sigmoid()).to(device)
        widths = [config.ngf * m for m in (1, 2, 4, 8, 8)]
        self.patch_mlp = PatchSampleMLP(channels=config.num_patches).to(device)  # official width: nc = num_patch
        # official weighting: only the first layer's loss counts, so only its head is built (the
        # official code builds all five and never trains the other four).
        self.mlp_layers = self.nce_layers[:1] if config.nce_weighting == "official" else self.nce_layers
        self.patch_mlp.build([widths[i] for i in self.mlp_layers])  # sizes are known: no lazy init
        for layer in self.patch_mlp.modules():
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()  # build() uses CUT's xavier-normal(0.02)
        self.nce_loss = PatchNCELoss(config.nce_temperature)
        self.gan_loss = GANLoss("lsgan")  # MSE to 1/0 on the sigmoid outputs, as the official code
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.opt_s = torch.optim.Adam(self.spectral_discriminator.parameters(), lr=config.lr, betas=betas)
        self.opt_f = torch.optim.Adam(self.patch_mlp.parameters(), lr=config.lr, betas=betas)

    def _nce(self, source: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The weighted PatchNCE term between encoder features of the output (queries) and the
        input (keys), each encoded in a pass of its own: λ · (1/L) Σ_l ℓ_l (``paper``) or
        λ² / L · ℓ of the first layer (``official``; see the module docstring)."""
        cfg = self.config
        feats_q = self.generator.encode(output)
        feats_k = self.generator.encode(source)
        keys, ids = self.patch_mlp([feats_k[i] for i in self.mlp_layers], cfg.num_patches)
        queries, _ = self.patch_mlp([feats_q[i] for i in self.mlp_layers], cfg.num_patches, ids)
        per_layer = torch.stack([self.nce_loss(q, k) for q, k in zip(queries, keys)])
        if cfg.nce_weighting == "official":
            return cfg.lambda_nce * cfg.lambda_nce / len(self.nce_layers) * per_layer.sum()
        return cfg.lambda_nce * per_layer.mean()

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        fake_img = batch["source"].to(self.device, non_blocking=True)  # x_A (B, 3, S, S) in [-1, 1]
        real_img = batch["target"].to(self.device, non_blocking=True)  # x_B
        n = fake_img.shape[0]
        spec_a, spec_b = spectral.to_spectrum(fake_img), spectral.to_spectrum(real_img)
        inputs = torch.cat([spec_a.normed, spec_b.normed]) if cfg.nce_idt else spec_a.normed
        outputs = self.generator(inputs)
        out_a = outputs[:n]  # G(M_A), the refined spectrum
        refined = spectral.from_spectrum(out_a, spec_a)  # x̂_A
        profile_real = spectral.rect_profile(spec_b.normed, self.rings)
        profile_fake = spectral.rect_profile(spectral.to_spectrum(refined).normed, self.rings)

        # D and Ds first (the official order), on detached generator outputs.
        set_requires_grad([self.discriminator, self.spectral_discriminator], True)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_s.zero_grad(set_to_none=True)
        loss_d = 0.5 * (
            self.gan_loss(self.discriminator(spec_b.normed), True)
            + self.gan_loss(self.discriminator(out_a.detach()), False)
        )
        loss_s = 0.5 * (
            self.gan_loss(self.spectral_discriminator(profile_real), True)
            + self.gan_loss(self.spectral_discriminator(profile_fake.detach()), False)
        )
        (loss_d + loss_s).backward()
        self.opt_d.step()
        self.opt_s.step()

        set_requires_grad([self.discriminator, self.spectral_discriminator], False)
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_f.zero_grad(set_to_none=True)
        to01 = lambda x: (x + 1.0) * 0.5  # noqa: E731 - SSIM is defined on [0, 1] images
        losses: dict[str, torch.Tensor] = {
            "g_gan": cfg.lambda_gan * self.gan_loss(self.discriminator(out_a), True, for_discriminator=False),
            "g_psd": cfg.lambda_psd * self.gan_loss(self.spectral_discriminator(profile_fake), True),
            "ssim_fake": cfg.lambda_ssim_fake * (1.0 - ssim(to01(fake_img), to01(refined))),
            "lf": cfg.lambda_lf * spectral.low_frequency_loss(out_a, spec_a.normed, cfg.sigma),
        }
        if cfg.nce_idt:
            out_b = outputs[n:]
            identity = spectral.from_spectrum(out_b, spec_b)
            # A and B in separate encoder passes (their BatchNorm statistics apart), as the official code.
            losses["nce"] = self._nce(spec_a.normed, out_a) + self._nce(spec_b.normed, out_b)
            losses["ssim_real"] = cfg.lambda_ssim_real * (1.0 - ssim(to01(real_img), to01(identity)))
            losses["lf"] = losses["lf"] + cfg.lambda_lf * spectral.low_frequency_loss(out_b, spec_b.normed, cfg.sigma)
        else:
            losses["nce"] = self._nce(spec_a.normed, out_a)
        total(losses.values()).backward()
        self.opt_g.step()
        self.opt_f.step()
        out = {k: v.item() for k, v in losses.items()}
        out.update(d=loss_d.item(), d_psd=loss_s.item())
        return out

    def generators(self) -> list[GeneratorSpec]:
        return [GeneratorSpec("model.pt", self.generator, "unetpp", self.g_kwargs, "AtoB")]

    def networks(self) -> dict[str, nn.Module]:
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "spectral_discriminator": self.spectral_discriminator,
            "patch_mlp": self.patch_mlp,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d, "spectral": self.opt_s, "patch_mlp": self.opt_f}

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        fake_img = batch["source"].to(self.device)
        return [fake_img, spectral.refine(self.generator, fake_img), batch["target"].to(self.device)]
