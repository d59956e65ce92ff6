"""Train pix2pix with the temporal loss (i2i.train.losses.temporal) before ``--lambda-temporal`` exists.

A stand-in for ``i2i-train pix2pix --lambda-temporal L``: a pix2pix whose generator step adds
``L · TemporalLoss()(generator, source, fake_target)`` to its cGAN + L1 objective, trained by the
ordinary loop (``i2i.train.loop.train``) with the CLI's options, so its model.pt exports and runs
like any pix2pix run. ``--lambda-temporal 0`` trains the plain pix2pix objective through the same
code (the baseline of a comparison). For ``benchmarks/temporal.py``::

    .venv/bin/python benchmarks/temporal_loss_train.py --data DATA --out RUN --lambda-temporal 100 \\
        --max-steps 1200 --num-downs 7 --ngf 16 --ndf 16 --load-size 143 --crop-size 128 --batch-size 4
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from i2i.train.losses.temporal import TemporalLoss
from i2i.train.methods import register_method, set_requires_grad
from i2i.train.methods.pix2pix import Pix2Pix, Pix2PixConfig


@dataclass(frozen=True)
class Pix2PixTemporalConfig(Pix2PixConfig):
    lambda_temporal: float = 0.0


@register_method("pix2pix_temporal")
class Pix2PixTemporal(Pix2Pix):
    config_class = Pix2PixTemporalConfig
    summary = "pix2pix + the single-frame temporal loss (benchmarks/temporal_loss_train.py)"

    def __init__(self, config: Pix2PixTemporalConfig, device: torch.device) -> None:
        super().__init__(config, device)
        self.lambda_temporal = config.lambda_temporal
        self.temporal = TemporalLoss()

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """Pix2Pix.train_step with the temporal term in the generator's objective."""
        cfg = self.config
        source = batch["source"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        fake_target = self.generator(source)

        set_requires_grad([self.discriminator], True)
        self.opt_d.zero_grad(set_to_none=True)
        pred_fake = self.discriminator(torch.cat([source, fake_target.detach()], 1))
        pred_real = self.discriminator(torch.cat([source, target], 1))
        loss_d = 0.5 * (self.gan_loss(pred_fake, False) + self.gan_loss(pred_real, True))
        self.backward(loss_d)
        self.step(self.opt_d)

        set_requires_grad([self.discriminator], False)
        self.opt_g.zero_grad(set_to_none=True)
        pred_fake = self.discriminator(torch.cat([source, fake_target], 1))
        loss_g_gan = self.gan_loss(pred_fake, True, for_discriminator=False)
        loss_g_l1 = F.l1_loss(fake_target, target) * cfg.lambda_l1
        loss = loss_g_gan + loss_g_l1
        losses = {"d": loss_d.item(), "g_gan": loss_g_gan.item(), "g_l1": loss_g_l1.item()}
        if self.lambda_temporal > 0:
            loss_temporal = self.temporal(self.generator, source, fake_target) * self.lambda_temporal
            loss = loss + loss_temporal
            losses["g_temporal"] = loss_temporal.item()
        self.backward(loss)
        self.step(self.opt_g)
        return losses


def main() -> None:
    from i2i.train.loop import TrainConfig, train

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lambda-temporal", type=float, required=True)
    parser.add_argument("--max-steps", type=int, default=1200)
    parser.add_argument("--num-downs", type=int, default=7)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--load-size", type=int, default=143)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    method_config = dataclasses.replace(
        Pix2PixTemporalConfig(),
        lambda_temporal=args.lambda_temporal,
        num_downs=args.num_downs,
        ngf=args.ngf,
        ndf=args.ndf,
    )
    config = TrainConfig(
        data=args.data,
        out=args.out,
        batch_size=args.batch_size,
        load_size=args.load_size,
        crop_size=args.crop_size,
        max_steps=args.max_steps,
        seed=args.seed,
        workers=0,
        sample_every=10**6,
        save_every=args.max_steps,
        progress=False,
        eval_every=-1,
        overwrite=True,
    )
    result = train("pix2pix_temporal", method_config, config)
    print(result)


if __name__ == "__main__":
    main()
