"""Inception-v3 pool3 features for FID and KID (Szegedy et al., CVPR 2016), without torchvision.

FID (Heusel et al., NeurIPS 2017) and KID (Bińkowski et al., ICLR 2018) compare the 2048-d
outputs of Inception-v3's final average pool ("pool3") on real and generated images. Two weight
files exist, and both load here with strict key matching; module and parameter names are
torchvision's ``inception_v3`` (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.running_mean``,
... ``fc.weight``):

=========  ========================================  ================================================
variant    file                                      network
=========  ========================================  ================================================
``fid``    ``pt_inception-2015-12-05-6726825d.pth``  the TensorFlow FID graph (TTUR, 2017) as ported by
           (pytorch-fid; the default)                pytorch-fid: 1008 classes, no aux head, pools that
                                                     exclude padding, max pool in Mixed_7c
``torch``  ``inception_v3_google-0cc3c7bd.pth``      torchvision's ImageNet classifier (1000 classes,
           (torchvision)                             aux head): FIDs NOT comparable with papers
=========  ========================================  ================================================

The ``fid`` variant is the default and the one to report: published FIDs (and pytorch-fid,
torch-fidelity) use the TF 2015-12-05 graph and weights, which differ from torchvision's in weights
and in four pooling layers; the variant is chosen from the file's keys (``AuxLogits.*`` and a 1000-way
``fc``: torchvision's). Input: RGB in [0, 1], resized to 299×299 (bilinear, align_corners=False, as
pytorch-fid) and scaled to [-1, 1], which is what both ports expect.

Not a registered network: a fixed feature extractor, never a generator in a ``model.pt``.
Nothing is downloaded; :func:`resolve_inception_weights` says which file to supply.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from i2i.errors import I2IError

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_FILE}"
TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
VARIANTS = {"fid": (1008, False), "torch": (1000, True)}  # variant -> (classes, aux head)
FEATURES = 2048
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """conv (no bias) → BatchNorm (eps 1e-3, TF's) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor, tf_pool: bool) -> torch.Tensor:
    # TF's average pool divides by the number of real (unpadded) inputs; torchvision's counts the zeros.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=not tf_pool)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int, tf_pool: bool) -> None:
        super().__init__()
        self.tf_pool = tf_pool
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(_avg_pool(x, self.tf_pool))
        return torch.cat([self.branch1x1(x), b5, b3, pool], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int, tf_pool: bool) -> None:
        super().__init__()
        c7 = channels_7x7
        self.tf_pool = tf_pool
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        pool = self.branch_pool(_avg_pool(x, self.tf_pool))
        return torch.cat([self.branch1x1(x), b7, d, pool], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool``: "avg" (torchvision), "avg_tf" (FID Mixed_7b) or "max" (FID Mixed_7c, the TF graph's quirk)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool(x, self.pool == "avg_tf")
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class InceptionAux(nn.Module):
    """torchvision's auxiliary classifier: never run here, present so its file loads strictly."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, kernel_size=1)
        self.conv1 = BasicConv2d(128, 768, kernel_size=5)
        self.fc = nn.Linear(768, num_classes)


class InceptionV3Features(nn.Module):
    """Inception-v3 up to pool3: (B, 3, H, W) RGB in [0, 1] → (B, 2048).

    ``variant="fid"`` is the TF FID graph (pytorch-fid's ``fid_inception_v3``), ``"torch"`` torchvision's
    ``inception_v3``. The classifier ``fc`` (and torchvision's ``AuxLogits``) exist only so that the weight
    files load with strict key matching; ``forward`` stops at the pool.
    """

    def __init__(self, variant: str = "fid", resize: bool = True) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise I2IError(f"unknown Inception variant {variant!r}; valid: {', '.join(VARIANTS)}")
        num_classes, aux = VARIANTS[variant]
        tf = variant == "fid"
        self.variant = variant
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32, tf_pool=tf)
        self.Mixed_5c = InceptionA(256, pool_features=64, tf_pool=tf)
        self.Mixed_5d = InceptionA(288, pool_features=64, tf_pool=tf)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, tf_pool=tf)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, tf_pool=tf)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, tf_pool=tf)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, tf_pool=tf)
        self.AuxLogits = InceptionAux(768, num_classes) if aux else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg_tf" if tf else "avg")
        self.Mixed_7c = InceptionE(2048, pool="max" if tf else "avg")
        self.fc = nn.Linear(FEATURES, num_classes)
        self._init_random()
        self.requires_grad_(False)
        self.eval()

    def _init_random(self) -> None:
        """He-normal convolutions: a random network keeps O(1) activations (tests run on one)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def train(self, mode: bool = True) -> InceptionV3Features:
        return super().train(False)  # a fixed feature extractor: BatchNorm always uses its statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1] -> (B, 2048)
        if self.resize and tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # both ports expect [-1, 1]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (B, 2048, 8, 8)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # pool3: (B, 2048)


# --------------------------------------------------------------------------- weight files


def _optional(key: str) -> bool:
    # BatchNorm's step counter: older files lack it and it has no effect in eval mode.
    return key.endswith("num_batches_tracked")


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of junk files: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # a class or function the safe unpickler will not import: never run
            raise I2IError(f"refusing to load {path}: it holds objects other than tensors") from None
        raise I2IError(f"cannot read Inception weights {path}: truncated or not a torch file") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, junk bytes (KeyError, EOFError, ...): all one message
        reason = " ".join(str(exc).split())[:120] or exc.__class__.__name__
        raise I2IError(f"cannot read Inception weights {path}: truncated or not a torch file ({reason})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise I2IError(f"{path} is not a state dict of tensors; supply {FID_FILE}")
    return state


def detect_variant(state: Mapping[str, torch.Tensor]) -> str:
    """``torch`` for torchvision's file (aux head, 1000 classes), else ``fid``."""
    fc = state.get("fc.weight")
    if any(k.startswith("AuxLogits.") for k in state) or (fc is not None and fc.shape[0] == 1000):
        return "torch"
    return "fid"


def load_inception(path: str | Path) -> InceptionV3Features:
    """The Inception network of ``path`` (variant from its keys), every tensor matched by name and shape."""
    path = Path(path)
    if not path.is_file():
        raise I2IError(missing_weights_message(path))
    state = _read_state_dict(path)
    variant = detect_variant(state)
    with torch.random.fork_rng(devices=[]):  # the random init it replaces must not move the training RNG
        net = InceptionV3Features(variant)
    own = net.state_dict()
    expected = {k: tuple(v.shape) for k, v in own.items() if not _optional(k)}
    found = {k: tuple(v.shape) for k, v in state.items() if not _optional(k)}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in expected if k in found and found[k] != expected[k])
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise I2IError(f"{path} is not an Inception-v3 weight file ({FID_FILE}): {'; '.join(parts)}")
    full = {k: state.get(k, own[k]) for k in own}  # num_batches_tracked from the file when it has one
    net.load_state_dict(full, strict=True)
    return net


def hub_inception_paths() -> list[Path]:
    """Where pytorch-fid / torchvision would have cached the files (``$TORCH_HOME/hub/checkpoints``)."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / FID_FILE, folder / TORCHVISION_FILE]


def missing_weights_message(path: str | Path | None = None) -> str:
    where = f"Inception weights not found: {path}; " if path else "FID/KID need Inception weights: "
    return f"{where}pass --inception-weights PATH/{FID_FILE} (download {FID_URL})"


def resolve_inception_weights(explicit: str | Path | None) -> Path:
    """The explicit file (which must exist), else a hub-cache copy; otherwise a one-line I2IError."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise I2IError(missing_weights_message(explicit))
        return path
    for cached in hub_inception_paths():
        if cached.is_file():
            return cached
    raise I2IError(missing_weights_message())
