"""Distillation into a real-time student (Hinton et al., 2015, applied to image translation).

The teacher (any i2i generator, ``--teacher model.pt``) translates the unlabelled source images
once; the translations are cached as a paired dataset (``OUT/teacher/train/{A,B}``, reused while
the teacher file and the images are unchanged). The student then learns the teacher's mapping by
regression: L = λ_L1·‖S(x) − T(x)‖₁ + λ_perc·Σ_j ‖φ_j(S(x)) − φ_j(T(x))‖₁ (VGG16 relu1_2..relu3_3,
Johnson et al. 2016; needs ImageNet VGG16 weights, ``--vgg-weights``) + λ_GAN·L_LSGAN with a
PatchGAN when asked. Running the
teacher on whole images, not on random crops, gives targets without crop-border effects, and
costs one teacher pass per image instead of one per step — on a CPU the teacher is the
expensive part.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from i2i._files import write_text
from i2i.common import file_sha256, round_up
from i2i.errors import I2IError
from i2i.train.checkpoint import load_checkpoint, load_generator
from i2i.train.data import PairedFolderDataset, list_images, load_image_rgb, source_images_dir
from i2i.train.losses.gan import GANLoss
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, register_method, set_requires_grad, total
from i2i.train.nets import build_net
from i2i.train.nets.norm import NORMS, init_weights
from i2i.train.nets.vgg import (
    RELU1_2,
    RELU2_2,
    RELU3_3,
    frozen_vgg16,
    imagenet_input,
    require_vgg16_weights,
)
from i2i.train.options import option

if TYPE_CHECKING:
    from i2i.train.loop import TrainConfig


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    teacher: str = option("", "Teacher generator (model.pt) whose translations the student learns (required).")
    arch: str = option("fast", "Student architecture (a registered network, e.g. fast).")
    ngf: int = option(16, "Student width (filters in the first layer).", minimum=1)
    n_blocks: int = option(6, "Residual blocks in the student.", minimum=0)
    norm: str = option("batch", "Normalisation: batch, instance or none.", choices=NORMS)
    lambda_l1: float = option(10.0, "Weight of the L1 term.")
    lambda_gan: float = option(0.0, "Weight of the adversarial term (0 = pure regression; > 0 adds an LSGAN PatchGAN).")
    lambda_perceptual: float = option(
        0.0, "Weight of the VGG16 feature (perceptual) term; needs --vgg-weights (0 = off)."
    )
    vgg_weights: str = option(
        "", "ImageNet VGG16 weights (torchvision's vgg16-397923af.pth) [default: the torch hub cache]."
    )
    allow_random_vgg: bool = option(False, "Train with a random VGG16 when no weights are found (tests only).")
    ndf: int = option(32, "Discriminator width.", minimum=1)
    epochs: int = 30
    epochs_decay: int = 30
    lr: float = 1e-3  # a regression target is stable: a higher rate than the GAN default
    beta1: float = 0.9


def _source_images(data: Path, direction: str, scratch: Path) -> list[Path]:
    """Unlabelled source images: DATA itself, or its train/A (trainA) split; B for a B→A teacher.
    An aligned A|B train/ split gives its input halves, written once to ``scratch``."""
    side = "A" if direction == "AtoB" else "B"
    for candidate in (data, data / "train" / side, data / f"train{side}"):
        if candidate.is_dir() and any(p.is_file() for p in candidate.iterdir()):
            try:
                return list_images(candidate)
            except I2IError:
                continue
    halves = source_images_dir(data, "train", direction, scratch, limit=0) if data.is_dir() else None
    if halves is not None:
        return list_images(halves)
    raise I2IError(
        f"no source images for distillation in {data} (looked in it, train/{side}, train{side} and aligned train/)"
    )


@torch.no_grad()
def cache_teacher_outputs(
    teacher_path: Path, images: list[Path], out: Path, size: int, device: torch.device, progress: bool = True
) -> Path:
    """Write OUT/train/A (resized sources) and OUT/train/B (teacher outputs); reuse when unchanged."""
    key = hashlib.sha256(
        json.dumps(
            {
                "teacher": file_sha256(teacher_path),
                "size": size,
                "images": [(str(p), p.stat().st_mtime_ns) for p in images],
            }
        ).encode()
    ).hexdigest()
    manifest = out / "manifest.json"
    if _cached_key(manifest) == key:
        return out
    manifest.unlink(missing_ok=True)  # first: an interrupted refill is never taken for a complete cache
    teacher, ckpt = load_generator(teacher_path)
    teacher.to(device)
    m = int(ckpt["io"]["size_multiple"])
    side = round_up(size, m)  # the teacher needs multiples of its size_multiple
    for sub in ("train/A", "train/B"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for path in tqdm(images, desc="teacher", unit="img", disable=not progress, dynamic_ncols=True):
        rgb = cv2.resize(load_image_rgb(path), (side, side), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)  # (1, 3, H, W)
        y = teacher(x)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        for sub, image in (("train/A", rgb), ("train/B", np.ascontiguousarray(y))):
            target = out / sub / f"{path.stem}.png"
            if not cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise I2IError(f"cannot write teacher cache image {target} (disk full, or the folder not writable?)")
    # Written last and atomically: a cache whose manifest is there is complete.
    record = {"key": key, "teacher": str(teacher_path), "count": len(images), "size": side}
    write_text(manifest, json.dumps(record), "teacher cache manifest")
    return out


def _cached_key(manifest: Path) -> str | None:
    """The key of an existing teacher cache; None if there is none or its manifest is unreadable."""
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    return record.get("key") if isinstance(record, dict) else None


@register_method("distill")
class Distill(Method[DistillConfig]):
    config_class = DistillConfig
    layout = "images"
    summary = "distil any i2i generator (--teacher model.pt) into a small real-time student (L1 [+ VGG] [+ GAN])"
    # The student trains in batches (make student: 8), so its BatchNorm running statistics are good
    # estimates; running mode folds BatchNorm into the convolutions, faster and what a deployment wants.
    train_defaults = MappingProxyType({"test_norm": "running"})

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: DistillConfig) -> PairedFolderDataset:
        if not method_config.teacher:
            raise I2IError("distill needs --teacher model.pt (the generator to distil)")
        if method_config.lambda_perceptual > 0:  # before the teacher pass: say what file is missing first
            require_vgg16_weights(
                method_config.vgg_weights, method_config.allow_random_vgg, "distill --lambda-perceptual"
            )
        teacher_path = Path(method_config.teacher)
        direction = load_checkpoint(teacher_path).get("direction", "AtoB")
        images = _source_images(Path(config.data), direction, Path(config.out) / "teacher" / "sources")
        from i2i.train.loop import resolve_device

        cache = cache_teacher_outputs(
            teacher_path,
            images,
            Path(config.out) / "teacher",
            config.load_size,
            resolve_device(config.device),
            config.progress,
        )
        return PairedFolderDataset(
            cache, phase="train", load_size=config.load_size, crop_size=config.crop_size, flip=config.flip, train=True
        )

    def __init__(self, config: DistillConfig, device: torch.device) -> None:
        super().__init__(config, device)
        if not config.teacher:
            raise I2IError("distill needs --teacher model.pt (the generator to distil)")
        self.direction = load_checkpoint(config.teacher).get("direction", "AtoB")
        kwargs: dict[str, Any] = dict(input_nc=3, output_nc=3, ngf=config.ngf, norm=config.norm)
        if config.arch in ("fast", "resnet"):
            kwargs["n_blocks"] = config.n_blocks
        self.g_kwargs = kwargs
        self.student = init_weights(build_net(config.arch, **kwargs)).to(device)
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.student.parameters(), lr=config.lr, betas=betas)
        self.vgg: torch.nn.Module | None = None
        if config.lambda_perceptual > 0:
            taps = (RELU1_2, RELU2_2, RELU3_3)
            method = "distill --lambda-perceptual"
            self.vgg = frozen_vgg16(config.vgg_weights, config.allow_random_vgg, method, RELU3_3 + 1, taps).to(device)
        self.discriminator: torch.nn.Module | None = None
        if config.lambda_gan > 0:
            self.discriminator = init_weights(build_net("patchgan", input_nc=3, ndf=config.ndf, norm="instance"))
            self.discriminator.to(device)
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
            self.gan_loss = GANLoss("lsgan")

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        source = batch["source"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)  # the teacher's translation
        fake = self.student(source)
        losses: dict[str, torch.Tensor] = {"l1": F.l1_loss(fake, target) * cfg.lambda_l1}
        if self.vgg is not None:
            with torch.no_grad():
                wanted = self.vgg(imagenet_input(target))
            got = self.vgg(imagenet_input(fake))
            losses["perceptual"] = total(F.l1_loss(g, w) for g, w in zip(got, wanted)) * cfg.lambda_perceptual
        if self.discriminator is not None:
            set_requires_grad([self.discriminator], False)
            losses["g_gan"] = self.gan_loss(self.discriminator(fake), True, for_discriminator=False) * cfg.lambda_gan
        self.opt_g.zero_grad(set_to_none=True)
        self.backward(total(losses.values()))
        self.step(self.opt_g)
        out = {k: v.item() for k, v in losses.items()}
        if self.discriminator is not None:
            set_requires_grad([self.discriminator], True)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d = 0.5 * (
                self.gan_loss(self.discriminator(target), True)
                + self.gan_loss(self.discriminator(fake.detach()), False)
            )
            self.backward(loss_d)
            self.step(self.opt_d)
            out["d"] = loss_d.item()
        return out

    def generators(self) -> list[GeneratorSpec]:
        cfg = self.config
        return [GeneratorSpec("model.pt", self.student, cfg.arch, self.g_kwargs, self.direction)]

    def networks(self) -> dict[str, torch.nn.Module]:
        nets: dict[str, torch.nn.Module] = {"student": self.student}
        if self.discriminator is not None:
            nets["discriminator"] = self.discriminator
        return nets

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"student": self.opt_g}
        if self.discriminator is not None:
            opts["discriminator"] = self.opt_d
        return opts

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        source = batch["source"].to(self.device)
        return [source, self.student(source), batch["target"].to(self.device)]
