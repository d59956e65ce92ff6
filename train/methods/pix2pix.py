"""pix2pix: conditional GAN for paired translation (Isola et al., CVPR 2017).

G* = arg min_G max_D  L_cGAN(G, D) + λ·L_L1(G)   (paper Eq. 4), λ = 100.
D is a PatchGAN that sees the source concatenated with the (real or generated) target. Its loss is
halved (paper §3.3: "we divide the objective by 2 while optimizing D") so it learns slower than G.
Defaults follow the reference code: U-Net-256 generator with BatchNorm and dropout, vanilla GAN loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from i2i.train.losses.gan import GAN_MODES, GANLoss
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, register_method, set_requires_grad
from i2i.train.nets import build_net
from i2i.train.nets.norm import NORMS, init_weights
from i2i.train.nets.unet import check_input_size
from i2i.train.options import option

if TYPE_CHECKING:
    from i2i.train.data import SizedDataset
    from i2i.train.loop import TrainConfig


@dataclass(frozen=True)
class Pix2PixConfig(MethodConfig):
    ngf: int = option(64, "Generator width (filters in the first layer).", minimum=1)
    ndf: int = option(64, "Discriminator width.", minimum=1)
    num_downs: int = option(8, "U-Net levels; inputs must be multiples of 2**num_downs.", minimum=5)
    n_layers_d: int = option(3, "PatchGAN depth (3 = 70x70 patches).", minimum=1)
    norm: str = option(
        "batch", "Normalisation: batch, instance or none (none: no conv biases, as the reference).", choices=NORMS
    )
    dropout: bool = option(True, "Dropout in the generator.")
    gan_mode: str = option("vanilla", "Adversarial loss: lsgan, vanilla or hinge.", choices=GAN_MODES)
    lambda_l1: float = option(100.0, "Weight of the L1 term.")


@register_method("pix2pix")
class Pix2Pix(Method[Pix2PixConfig]):
    config_class = Pix2PixConfig
    layout = "paired"
    summary = "paired translation: U-Net generator, PatchGAN, cGAN + L1 (Isola et al. 2017)"

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: Pix2PixConfig) -> SizedDataset[Any]:
        """The paired set; a crop the U-Net cannot take is refused here, before the run folder gets a
        file (the cropping modes' side is the crop size rounded as the transform rounds it; the other
        modes' sizes follow each image, and the U-Net refuses a bad one at its first step)."""
        from i2i.train.data import SIZE_BASE

        if "crop" in config.preprocess:
            side = int(round(config.crop_size / SIZE_BASE) * SIZE_BASE)
            check_input_size(side, side, method_config.num_downs)
        return super().make_dataset(config, method_config)

    def __init__(self, config: Pix2PixConfig, device: torch.device) -> None:
        super().__init__(config, device)
        self.g_kwargs = dict(
            input_nc=3,
            output_nc=3,
            num_downs=config.num_downs,
            ngf=config.ngf,
            norm=config.norm,
            use_dropout=config.dropout,
        )
        self.generator = init_weights(build_net("unet", **self.g_kwargs)).to(device)
        # The discriminator judges (source, target) pairs: 6 input channels.
        self.discriminator = init_weights(
            build_net("patchgan", input_nc=6, ndf=config.ndf, n_layers=config.n_layers_d, norm=config.norm)
        ).to(device)
        self.gan_loss = GANLoss(config.gan_mode)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        source = batch["source"].to(self.device, non_blocking=True)  # (B, 3, H, W)
        target = batch["target"].to(self.device, non_blocking=True)
        fake_target = self.generator(source)

        # D step: real pairs → 1, generated pairs → 0 (generator output detached).
        set_requires_grad([self.discriminator], True)
        self.opt_d.zero_grad(set_to_none=True)
        pred_fake = self.discriminator(torch.cat([source, fake_target.detach()], 1))
        pred_real = self.discriminator(torch.cat([source, target], 1))
        loss_d = 0.5 * (self.gan_loss(pred_fake, False) + self.gan_loss(pred_real, True))
        self.backward(loss_d)
        self.step(self.opt_d)

        # G step: fool D, stay close to the target in L1.
        set_requires_grad([self.discriminator], False)
        self.opt_g.zero_grad(set_to_none=True)
        pred_fake = self.discriminator(torch.cat([source, fake_target], 1))
        loss_g_gan = self.gan_loss(pred_fake, True, for_discriminator=False)
        loss_g_l1 = F.l1_loss(fake_target, target) * cfg.lambda_l1
        loss_g = loss_g_gan + loss_g_l1
        losses = {"d": loss_d.item(), "g_gan": loss_g_gan.item(), "g_l1": loss_g_l1.item()}
        loss_g_temporal = self.temporal_term(self.generator, source, fake_target)  # --lambda-temporal
        if loss_g_temporal is not None:
            loss_g = loss_g + loss_g_temporal
            losses["g_temporal"] = loss_g_temporal.item()
        self.backward(loss_g)
        self.step(self.opt_g)
        return losses

    def generators(self) -> list[GeneratorSpec]:
        return [GeneratorSpec("model.pt", self.generator, "unet", self.g_kwargs, self.direction_of("AtoB"))]

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        source = batch["source"].to(self.device)
        return [source, self.generator(source), batch["target"].to(self.device)]
