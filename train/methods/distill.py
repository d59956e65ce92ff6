"""Distillation into a real-time student (Hinton et al., 2015, applied to image translation).

The teacher (any i2i generator, ``--teacher model.pt``) translates the unlabelled source images
once, in one test-time mode (``--teacher-test-norm``, by default the one its model.pt records); the
translations are cached as a paired dataset (``OUT/teacher/train/{A,B}``, reused while the teacher
file, its mode and the images are unchanged). Held-out source images (``--eval-data``, else DATA's
test split) are translated the same way into ``OUT/teacher/heldout/test/{A,B}``, and the run's
evaluation scores the student against them (PSNR/SSIM to the teacher, in ``eval.jsonl`` and the
student's model.pt metrics): the student is measured against the very teacher outputs it learned
from, and its model.pt and card record that mode (``teacher``). The student then learns the teacher's mapping by
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
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from i2i._files import write_text
from i2i.common import file_sha256, round_up
from i2i.common import list_images as image_files
from i2i.errors import I2IError
from i2i.train.checkpoint import TEST_NORMS, load_checkpoint, load_generator, resolve_test_mode, teacher_record
from i2i.train.data import PairedFolderDataset, list_images, load_image_rgb, source_images_dir
from i2i.train.losses.gan import GANLoss
from i2i.train.methods import (
    GeneratorSpec,
    Method,
    MethodConfig,
    check_crop_fits,
    register_method,
    set_requires_grad,
    total,
)
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
from i2i.train.run_folder import claim_run_folder
from i2i.train.video_frames import SAMPLINGS, VIDEO_EXTENSIONS, is_video, sample_video

if TYPE_CHECKING:
    from i2i.train.loop import TrainConfig


@dataclass(frozen=True)
class DistillConfig(MethodConfig):
    teacher: str = option("", "Teacher generator (model.pt) whose translations the student learns (required).")
    teacher_test_norm: str | None = option(
        None,
        "Test-time BatchNorm the teacher runs with for the student's targets and held-out comparison "
        "(recorded in the student's model.pt) [default: the teacher's recorded mode].",
        choices=TEST_NORMS,
    )
    video_frames: int = option(64, "Frames taken from each video file of --data / --eval-data.", minimum=1)
    video_sampling: str = option(
        "evenly",
        "How video frames are taken: evenly (spaced over the clip) or scenes (where the picture changes most).",
        choices=SAMPLINGS,
    )
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


def _entries(spec: str) -> list[Path]:
    """The comma-separated entries of --data / --eval-data."""
    return [Path(entry.strip()) for entry in spec.split(",") if entry.strip()]


def _folder_sources(data: Path, direction: str, scratch: Path) -> list[Path]:
    """One --data folder's source images: the folder itself, or its train/A (trainA) split; B for a
    B→A teacher. An aligned A|B train/ split gives its input halves, written once to ``scratch``."""
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
        f"no source images for distillation in {data} (looked in it, train/{side}, train{side} and aligned "
        f"train/; or give video files: {', '.join(VIDEO_EXTENSIONS)})"
    )


def _video_sources(video: Path, scratch: Path, config: DistillConfig) -> list[Path]:
    folder = f"{video.stem}-{hashlib.sha256(str(video.resolve()).encode()).hexdigest()[:8]}"  # one per file
    return sample_video(video, scratch / folder, config.video_frames, config.video_sampling)


def _unique(images: list[Path]) -> list[Path]:
    """The images, each once; refused when two files share a name (the teacher cache pairs source
    and target by name)."""
    seen: dict[str, Path] = {}
    for path in images:
        other = seen.setdefault(path.stem, path)
        if other != path:
            raise I2IError(f"two source images named {path.stem!r} ({other} and {path}): rename one")
    return list(seen.values())


def _source_images(spec: str, direction: str, scratch: Path, config: DistillConfig) -> list[Path]:
    """Unlabelled source images of every --data entry: video files (frames sampled, see
    ``i2i.train.video_frames``), folders of images, dataset roots (their train split)."""
    images: list[Path] = []
    for entry in _entries(spec):
        if is_video(entry):
            images += _video_sources(entry, scratch / "video", config)
        else:
            images += _folder_sources(entry, direction, scratch)
    if not images:
        raise I2IError("distill needs --data: video files, folders of images or a dataset root")
    return _unique(images)


def _heldout_images(
    config: TrainConfig, direction: str, scratch: Path, method_config: DistillConfig
) -> list[Path] | None:
    """Held-out source images for the student-teacher comparison: every ``--eval-data`` entry (a
    video file, a folder of images, or a folder's test/A, testA, A or aligned test/ split; B for a
    B→A teacher), else the test split of a single DATA folder; None when there is none. A given
    ``--eval-data`` entry without images is an error."""
    side = "A" if direction == "AtoB" else "B"
    roots = _entries(config.eval_data) if config.eval_data else _entries(config.data)[:1]
    images: list[Path] = []
    for root in roots:
        if is_video(root):
            if config.eval_data:
                images += _video_sources(root, scratch / "heldout-video", method_config)
            continue
        candidates = [root, root / side] if config.eval_data else []
        candidates += [root / "test" / side, root / f"test{side}"]
        found = next((c for c in candidates if c.is_dir() and image_files(c)), None)
        if found is None:
            found = source_images_dir(root, "test", direction, scratch, limit=0) if root.is_dir() else None
        if found is not None:
            images += list_images(found)
        elif config.eval_data:
            raise I2IError(f"--eval-data {root}: no held-out images (looked in it, test/{side}, test{side}, {side})")
    return _unique(images) if images else None


@torch.no_grad()
def cache_teacher_outputs(
    teacher_path: Path,
    images: list[Path],
    out: Path,
    size: int,
    device: torch.device,
    progress: bool = True,
    test_mode: tuple[str, bool] | None = None,
    phase: str = "train",
) -> Path:
    """Write OUT/PHASE/A (resized sources) and OUT/PHASE/B (teacher outputs, the teacher run in
    ``test_mode`` = (test_norm, test_dropout), by default its recorded one); reuse when unchanged."""
    test_norm, test_dropout = test_mode or resolve_test_mode(load_checkpoint(teacher_path))
    key = hashlib.sha256(
        json.dumps(
            {
                "teacher": file_sha256(teacher_path),
                "test_mode": [test_norm, test_dropout],
                "size": size,
                "phase": phase,
                "images": [(str(p), p.stat().st_mtime_ns) for p in images],
            }
        ).encode()
    ).hexdigest()
    manifest = out / "manifest.json"
    if _cached_key(manifest) == key:
        return out
    manifest.unlink(missing_ok=True)  # first: an interrupted refill is never taken for a complete cache
    teacher, ckpt = load_generator(teacher_path, test_norm=test_norm, test_dropout=test_dropout)
    teacher.to(device)
    m = int(ckpt["io"]["size_multiple"])
    side = round_up(size, m)  # the teacher needs multiples of its size_multiple
    for sub in (f"{phase}/A", f"{phase}/B"):
        shutil.rmtree(out / sub, ignore_errors=True)  # no image of an earlier, other cache stays
        (out / sub).mkdir(parents=True)
    for path in tqdm(images, desc="teacher", unit="img", disable=not progress, dynamic_ncols=True):
        rgb = cv2.resize(load_image_rgb(path), (side, side), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)  # (1, 3, H, W)
        y = teacher(x)[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        for sub, image in ((f"{phase}/A", rgb), (f"{phase}/B", np.ascontiguousarray(y))):
            target = out / sub / f"{path.stem}.png"
            if not cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
                raise I2IError(f"cannot write teacher cache image {target} (disk full, or the folder not writable?)")
    # Written last and atomically: a cache whose manifest is there is complete.
    record = {
        "key": key,
        "teacher": str(teacher_path),
        "test_norm": test_norm,
        "test_dropout": test_dropout,
        "count": len(images),
        "size": side,
    }
    write_text(manifest, json.dumps(record), "teacher cache manifest")
    return out


def _heldout_root(config: TrainConfig) -> Path:
    """The cache of the teacher's translations of the held-out images (an evaluation set, test/A + test/B)."""
    return Path(config.out) / "teacher" / "heldout"


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
    labels_heldout = True  # evaluated against the teacher's translations of held-out images
    data_help = (
        "Source images the teacher labels, comma-separated: video files (--video-frames frames each, "
        "--video-sampling), folders of images, dataset roots (their train/A split)."
    )

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: DistillConfig) -> PairedFolderDataset:
        if not method_config.teacher:
            raise I2IError("distill needs --teacher model.pt (the generator to distil)")
        check_crop_fits(config)  # before the teacher pass, not after it
        if method_config.lambda_perceptual > 0:  # before the teacher pass: say what file is missing first
            require_vgg16_weights(
                method_config.vgg_weights, method_config.allow_random_vgg, "distill --lambda-perceptual"
            )
        teacher_path = Path(method_config.teacher)
        ckpt = load_checkpoint(teacher_path)
        from i2i.train import distributed

        if distributed.is_main_process():  # before the teacher pass, which takes minutes on a CPU
            claim_run_folder(Path(config.out), config.resume, config.overwrite)
        direction = ckpt.get("direction", "AtoB")
        mode = resolve_test_mode(ckpt, method_config.teacher_test_norm)
        scratch = Path(config.out) / "teacher" / "sources"
        images = _source_images(config.data, direction, scratch, method_config)
        heldout = _heldout_images(config, direction, scratch, method_config) if config.eval_every >= 0 else None
        from i2i.train.loop import resolve_device

        device = resolve_device(config.device)
        cache = cache_teacher_outputs(
            teacher_path, images, Path(config.out) / "teacher", config.load_size, device, config.progress, mode
        )
        pairs = _heldout_root(config)
        if heldout is None:
            shutil.rmtree(pairs, ignore_errors=True)  # an earlier run's held-out set is not this run's
        else:
            cache_teacher_outputs(teacher_path, heldout, pairs, config.load_size, device, config.progress, mode, "test")
        return PairedFolderDataset(
            cache,
            phase="train",
            load_size=config.load_size,
            crop_size=config.crop_size,
            flip=config.flip,
            train=True,
            preprocess=config.preprocess,
        )

    @classmethod
    def heldout_pairs(cls, config: TrainConfig) -> tuple[Path, int] | None:
        root = _heldout_root(config)
        try:
            record = json.loads((root / "manifest.json").read_text())
        except (OSError, ValueError):
            return None  # no held-out set (make_dataset removed any earlier one)
        return root, int(record["size"])

    def __init__(self, config: DistillConfig, device: torch.device) -> None:
        super().__init__(config, device)
        if not config.teacher:
            raise I2IError("distill needs --teacher model.pt (the generator to distil)")
        teacher_ckpt = load_checkpoint(config.teacher)
        self.direction = teacher_ckpt.get("direction", "AtoB")
        mode = resolve_test_mode(teacher_ckpt, config.teacher_test_norm)
        self.teacher = teacher_record(config.teacher, teacher_ckpt, *mode)
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
        temporal = self.temporal_term(self.student, source, fake)  # --lambda-temporal
        if temporal is not None:
            losses["g_temporal"] = temporal
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
        return [GeneratorSpec("model.pt", self.student, cfg.arch, self.g_kwargs, self.direction, self.teacher)]

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
