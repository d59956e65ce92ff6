"""Adversarial objectives used by pix2pix / CycleGAN / CUT.

``lsgan`` (Mao et al., 2017): MSE to 1 / 0 targets — CycleGAN's choice for stable training.
``vanilla``: the original GAN cross-entropy on logits — pix2pix's choice.
``hinge``: max(0, 1 ∓ D) for the discriminator, -D for the generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i.errors import I2IError

GAN_MODES = ("lsgan", "vanilla", "hinge")


class GANLoss(nn.Module):
    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise I2IError(f"unknown GAN loss {mode!r}; valid: {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if self.mode == "lsgan":
            target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
            return F.mse_loss(prediction, target)
        if self.mode == "vanilla":
            target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
            return F.binary_cross_entropy_with_logits(prediction, target)
        # hinge
        if not for_discriminator:
            return -prediction.mean()
        return F.relu(1.0 - prediction).mean() if target_is_real else F.relu(1.0 + prediction).mean()
