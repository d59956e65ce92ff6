"""CycleGAN: unpaired translation with cycle consistency (Zhu et al., ICCV 2017).

L = L_GAN(G, D_Y) + L_GAN(F, D_X) + λ_A·‖F(G(a)) − a‖₁ + λ_B·‖G(F(b)) − b‖₁
    + λ_idt·(λ_B·‖G(b) − b‖₁ + λ_A·‖F(a) − a‖₁)                     (paper Eq. 3, + identity, §5.2)
LSGAN objective; the discriminators see a history of 50 generated images (Shrivastava et al.) so
they do not chase the generators' latest mode. Defaults follow the reference code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from i2i.train.losses.gan import GAN_MODES, GANLoss
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, register_method, set_requires_grad, total
from i2i.train.nets import build_net
from i2i.train.nets.norm import NORMS, init_weights
from i2i.train.options import option


class ImagePool:
    """Return either the new image or, with p=0.5 once full, a stored older one (swapping it in)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() > 0.5:
                idx = random.randrange(self.size)
                out.append(self.images[idx].clone())
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


@dataclass(frozen=True)
class CycleGANConfig(MethodConfig):
    ngf: int = option(64, "Generator width (filters in the first layer).", minimum=1)
    ndf: int = option(64, "Discriminator width.", minimum=1)
    n_blocks: int = option(9, "Residual blocks in each generator (9 for 256x256, 6 for 128x128).", minimum=0)
    n_layers_d: int = option(3, "PatchGAN depth (3 = 70x70 patches).", minimum=1)
    norm: str = option(
        "instance", "Normalisation: batch, instance or none (none: no conv biases, as the reference).", choices=NORMS
    )
    dropout: bool = option(False, "Dropout in the generator.")
    gan_mode: str = option("lsgan", "Adversarial loss: lsgan, vanilla or hinge.", choices=GAN_MODES)
    lambda_a: float = option(10.0, "Weight of the A->B->A cycle loss.")
    lambda_b: float = option(10.0, "Weight of the B->A->B cycle loss.")
    lambda_identity: float = option(0.5, "Identity loss weight, relative to the cycle weights.")
    pool_size: int = option(50, "Size of the generated-image history shown to the discriminators.", minimum=0)


@register_method("cyclegan")
class CycleGAN(Method[CycleGANConfig]):
    config_class = CycleGANConfig
    layout = "unpaired"
    summary = "unpaired translation: 2 ResNet generators, 2 PatchGANs, LSGAN + cycle + identity (Zhu et al. 2017)"

    def __init__(self, config: CycleGANConfig, device: torch.device) -> None:
        super().__init__(config, device)
        self.g_kwargs = dict(
            input_nc=3,
            output_nc=3,
            ngf=config.ngf,
            norm=config.norm,
            use_dropout=config.dropout,
            n_blocks=config.n_blocks,
        )
        d_kwargs = dict(input_nc=3, ndf=config.ndf, n_layers=config.n_layers_d, norm=config.norm)
        self.gen_ab = init_weights(build_net("resnet", **self.g_kwargs)).to(device)  # G: A → B
        self.gen_ba = init_weights(build_net("resnet", **self.g_kwargs)).to(device)  # F: B → A
        self.disc_b = init_weights(build_net("patchgan", **d_kwargs)).to(device)  # judges B images
        self.disc_a = init_weights(build_net("patchgan", **d_kwargs)).to(device)
        self.pool_fake_a = ImagePool(config.pool_size)
        self.pool_fake_b = ImagePool(config.pool_size)
        self.gan_loss = GANLoss(config.gan_mode)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(
            list(self.gen_ab.parameters()) + list(self.gen_ba.parameters()), lr=config.lr, betas=betas
        )
        self.opt_d = torch.optim.Adam(
            list(self.disc_a.parameters()) + list(self.disc_b.parameters()), lr=config.lr, betas=betas
        )

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        real_a = batch["source"].to(self.device, non_blocking=True)  # (B, 3, H, W)
        real_b = batch["target"].to(self.device, non_blocking=True)
        fake_b = self.gen_ab(real_a)
        rec_a = self.gen_ba(fake_b)
        fake_a = self.gen_ba(real_b)
        rec_b = self.gen_ab(fake_a)

        # G step first (reference order): discriminators frozen.
        set_requires_grad([self.disc_a, self.disc_b], False)
        self.opt_g.zero_grad(set_to_none=True)
        losses: dict[str, torch.Tensor] = {}
        if cfg.lambda_identity > 0:
            losses["idt_a"] = F.l1_loss(self.gen_ab(real_b), real_b) * cfg.lambda_b * cfg.lambda_identity
            losses["idt_b"] = F.l1_loss(self.gen_ba(real_a), real_a) * cfg.lambda_a * cfg.lambda_identity
        losses["g_ab"] = self.gan_loss(self.disc_b(fake_b), True, for_discriminator=False)
        losses["g_ba"] = self.gan_loss(self.disc_a(fake_a), True, for_discriminator=False)
        losses["cycle_a"] = F.l1_loss(rec_a, real_a) * cfg.lambda_a
        losses["cycle_b"] = F.l1_loss(rec_b, real_b) * cfg.lambda_b
        temporal_ab = self.temporal_term(self.gen_ab, real_a, fake_b)  # --lambda-temporal, both generators
        temporal_ba = self.temporal_term(self.gen_ba, real_b, fake_a)
        if temporal_ab is not None and temporal_ba is not None:
            losses["g_temporal"] = temporal_ab + temporal_ba
        self.backward(total(losses.values()))
        self.step(self.opt_g)

        # D step: real → 1, pooled fakes → 0, each halved.
        set_requires_grad([self.disc_a, self.disc_b], True)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d_b = self._discriminator_loss(self.disc_b, real_b, self.pool_fake_b.query(fake_b))
        loss_d_a = self._discriminator_loss(self.disc_a, real_a, self.pool_fake_a.query(fake_a))
        self.backward(loss_d_a + loss_d_b)
        self.step(self.opt_d)
        out = {k: v.item() for k, v in losses.items()}
        out.update(d_a=loss_d_a.item(), d_b=loss_d_b.item())
        return out

    def _discriminator_loss(self, disc: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.gan_loss(disc(real), True) + self.gan_loss(disc(fake.detach()), False))

    def generators(self) -> list[GeneratorSpec]:
        reverse = self.direction_of("BtoA")
        return [
            GeneratorSpec("model.pt", self.gen_ab, "resnet", self.g_kwargs, self.direction_of("AtoB")),
            # model_BtoA.pt, or model_AtoB.pt when --direction BtoA made B the source: named for what it does.
            GeneratorSpec(f"model_{reverse}.pt", self.gen_ba, "resnet", self.g_kwargs, reverse),
        ]

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"gen_ab": self.gen_ab, "gen_ba": self.gen_ba, "disc_a": self.disc_a, "disc_b": self.disc_b}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def extra_state(self) -> dict[str, Any]:
        return {"pool_fake_a": list(self.pool_fake_a.images), "pool_fake_b": list(self.pool_fake_b.images)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_fake_a.images = [t.to(self.device) for t in state.get("pool_fake_a", [])]
        self.pool_fake_b.images = [t.to(self.device) for t in state.get("pool_fake_b", [])]

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        real_a = batch["source"].to(self.device)
        real_b = batch["target"].to(self.device)
        fake_b = self.gen_ab(real_a)
        fake_a = self.gen_ba(real_b)
        return [real_a, fake_b, self.gen_ba(fake_b), real_b, fake_a, self.gen_ab(fake_a)]
