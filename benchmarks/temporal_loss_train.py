"""Train pix2pix with the temporal loss (i2i.train.losses.temporal): ``i2i-train pix2pix --lambda-temporal L``
with the comparison's settings, from Python.

The generator step adds ``L · TemporalLoss()(generator, source, fake_target)`` to the cGAN + L1 objective
(``Method.temporal_term``), trained by the ordinary loop (``i2i.train.loop.train``), so its model.pt exports
and runs like any pix2pix run. ``--lambda-temporal 0`` trains the plain pix2pix objective through the same
code (the baseline of a comparison). For ``benchmarks/temporal.py``::

    .venv/bin/python benchmarks/temporal_loss_train.py --data DATA --out RUN --lambda-temporal 100 \\
        --max-steps 1200 --num-downs 7 --ngf 16 --ndf 16 --load-size 143 --crop-size 128 --batch-size 4
"""

from __future__ import annotations

import argparse

from i2i.train.methods.pix2pix import Pix2PixConfig


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
    method_config = Pix2PixConfig(
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
    result = train("pix2pix", method_config, config)
    print(result)


if __name__ == "__main__":
    main()
