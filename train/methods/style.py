"""Fast (feed-forward) style transfer: Johnson, Alahi, Fei-Fei, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution", ECCV 2016, with the losses of Gatys, Ecker, Bethge, "Image Style Transfer
Using Convolutional Neural Networks", CVPR 2016.

A transformer network T (:mod:`i2i.train.nets.transformer`) learns, from one style image s and a folder
of content images x, to produce ŷ = T(x) in one forward pass. With φ_j the frozen VGG16 activations::

    content  L_c = ‖φ_j(ŷ) − φ_j(x)‖² / (C_j H_j W_j),                  j = relu2_2   (Johnson Eq. 2; Gatys Eq. 1)
    style    L_s = Σ_{j ∈ relu1_2, relu2_2, relu3_3, relu4_3} mean((G_j(ŷ) − G_j(s))²)  (Gatys Eq. 4-5)
    Gram     G_j(y) = φ_j(y) φ_j(y)ᵀ / (C_j H_j W_j)                   (Johnson Eq. 3), (C_j, C_j)
    TV       L_tv = mean((ŷ_{i+1,j} − ŷ_{i,j})²) + mean((ŷ_{i,j+1} − ŷ_{i,j})²)   (squared total variation)
    L = λ_c L_c + λ_s L_s + λ_tv L_tv

The means (not the paper's sums) and λ_c : λ_s = 1 : 1e5 are pytorch/examples' ``fast_neural_style``
settings for the same torchvision VGG16 weights and ImageNet input normalisation; Adam at 1e-3, no
decay, as Johnson. Gram matrices and every loss are computed in fp32, also under ``--amp``. The
style image is resized so that its shorter side is ``style_size`` (default: the crop size).

VGG16 weights: ``--vgg-weights FILE`` or the torch hub cache (torchvision's ``vgg16-397923af.pth``);
without them training stops before any work with the file to supply (``--allow-random-vgg``: tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from i2i.errors import I2IError
from i2i.train.data import ResizeCropFlip, header_size, list_images, load_image_rgb, to_tensor
from i2i.train.methods import GeneratorSpec, Method, MethodConfig, check_crop_fits, register_method, total
from i2i.train.nets import build_net
from i2i.train.nets.vgg import (
    RELU1_2,
    RELU2_2,
    RELU3_3,
    RELU4_3,
    VGG16Features,
    frozen_vgg16,
    imagenet_input,
    require_vgg16_weights,
)
from i2i.train.options import option

if TYPE_CHECKING:
    from i2i.train.loop import TrainConfig

STYLE_TAPS = (RELU1_2, RELU2_2, RELU3_3, RELU4_3)
CONTENT_LAYERS = {"relu2_2": RELU2_2, "relu3_3": RELU3_3}


@dataclass(frozen=True)
class StyleConfig(MethodConfig):
    style_image: str = option("", "The style image the network learns to apply (required).")
    style_size: int = option(0, "Shorter side of the style image for its Gram matrices (0 = the crop size).", minimum=0)
    content_layer: str = option(
        "relu2_2",
        "VGG16 layer of the content loss: relu2_2 (Johnson et al.) or relu3_3.",
        choices=tuple(CONTENT_LAYERS),
    )
    content_weight: float = option(1.0, "Weight of the content (feature reconstruction) loss.")
    style_weight: float = option(1e5, "Weight of the Gram-matrix style loss (relu1_2, relu2_2, relu3_3, relu4_3).")
    tv_weight: float = option(1.0, "Weight of the total-variation regulariser.")
    ngf: int = option(32, "Generator width (filters in the first layer).", minimum=1)
    n_blocks: int = option(5, "Residual blocks in the generator.", minimum=0)
    vgg_weights: str = option(
        "", "ImageNet VGG16 weights (torchvision's vgg16-397923af.pth) [default: the torch hub cache]."
    )
    allow_random_vgg: bool = option(False, "Train with a random VGG16 when no weights are found (tests only).")
    epochs: int = 2
    epochs_decay: int = 0
    lr: float = 1e-3
    beta1: float = 0.9

    def __post_init__(self) -> None:
        if self.content_layer not in CONTENT_LAYERS:
            raise I2IError(f"--content-layer {self.content_layer!r}; valid: {', '.join(CONTENT_LAYERS)}")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise I2IError("--content-weight, --style-weight and --tv-weight must not be negative")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, C) = φφᵀ / (C·H·W), in fp32 even under autocast (sums of H·W products)."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        f = features.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertical and horizontal neighbours, fp32."""
    x = images.float()
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def content_images(data: Path) -> list[Path]:
    """Content images: DATA itself, else its train/A or trainA folder."""
    for folder in (data, data / "train" / "A", data / "trainA"):
        if folder.is_dir() and any(p.is_file() for p in folder.iterdir()):
            try:
                return list_images(folder)
            except I2IError:
                continue
    raise I2IError(f"no content images in {data} (looked in it, train/A and trainA)")


class ContentImages(Dataset):
    """A folder of images, each resized to load_size², randomly cropped to crop_size² and flipped."""

    def __init__(self, paths: list[Path], transform: ResizeCropFlip) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def image_sizes(self) -> dict[str, list[tuple[Path, int, int]]]:
        """The images' (path, width, height), from their headers (``check_stackable``)."""
        return {"source": [(p, *size) for p in self.paths if (size := header_size(p)) is not None]}

    def __getitem__(self, index: int) -> dict[str, Any]:
        (image,) = self.transform(load_image_rgb(self.paths[index]))
        return {"source": image, "name": self.paths[index].stem}


def load_style_image(path: str, short_side: int) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1], the shorter side resized to ``short_side`` (aspect kept)."""
    if not path:
        raise I2IError("style needs --style-image FILE (the image whose style the network learns)")
    if not Path(path).is_file():
        raise I2IError(f"--style-image {path}: no such file")
    rgb = load_image_rgb(path)
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return to_tensor(rgb)[None]


def load_vgg(config: StyleConfig) -> VGG16Features:
    """Frozen VGG16 up to relu4_3 from the configured weights; a one-line error when there are none."""
    return frozen_vgg16(config.vgg_weights, config.allow_random_vgg, "style", RELU4_3 + 1, STYLE_TAPS)


@register_method("style")
class Style(Method[StyleConfig]):
    config_class = StyleConfig
    layout = "images"
    summary = "fast style transfer from one --style-image: transformer net, VGG content + Gram style (Johnson 2016)"

    @classmethod
    def make_dataset(cls, config: TrainConfig, method_config: StyleConfig) -> ContentImages:
        # The loop calls this first: check the style image and the VGG weights before any work.
        load_style_image(method_config.style_image, 8)
        require_vgg16_weights(method_config.vgg_weights, method_config.allow_random_vgg, "style")
        check_crop_fits(config)
        transform = ResizeCropFlip(config.load_size, config.crop_size, config.flip, True, config.preprocess)
        dataset = ContentImages(content_images(Path(config.data)), transform)
        return dataset

    def __init__(self, config: StyleConfig, device: torch.device) -> None:
        super().__init__(config, device)
        self.vgg = load_vgg(config).to(device)
        self.content_index = STYLE_TAPS.index(CONTENT_LAYERS[config.content_layer])
        self.g_kwargs: dict[str, Any] = dict(input_nc=3, output_nc=3, ngf=config.ngf, n_blocks=config.n_blocks)
        self.generator = build_net("transformer", **self.g_kwargs).to(device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.style_size = config.style_size
        self.style_grams: list[torch.Tensor] | None = None  # from the first batch's crop size (or style_size)

    def vgg_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[-1, 1] RGB → [0, 1] → ImageNet statistics → VGG activations at relu1_2 … relu4_3."""
        return self.vgg(imagenet_input(images))

    @torch.no_grad()
    def _style_grams(self, crop: int) -> list[torch.Tensor]:
        if self.style_grams is None:
            cfg = self.config
            style = load_style_image(cfg.style_image, self.style_size or crop).to(self.device)
            self.style_grams = [gram_matrix(f) for f in self.vgg_features(style)]  # each (1, C, C)
        return self.style_grams

    def losses(self, content: torch.Tensor, stylised: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted content, style and TV terms (fp32) of ``stylised`` = T(``content``)."""
        cfg = self.config
        grams = self._style_grams(content.shape[-1])
        features = self.vgg_features(stylised)
        with torch.no_grad():
            target = self.vgg_features(content)[self.content_index]
        with torch.autocast(content.device.type, enabled=False):
            content_loss = F.mse_loss(features[self.content_index].float(), target.float())
            style_loss = sum(
                (F.mse_loss(gram_matrix(f), g.expand(f.shape[0], -1, -1)) for f, g in zip(features, grams)),
                content_loss.new_zeros(()),
            )
            return {
                "content": cfg.content_weight * content_loss,
                "style": cfg.style_weight * style_loss,
                "tv": cfg.tv_weight * total_variation(stylised),
            }

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        content = batch["source"].to(self.device, non_blocking=True)  # (B, 3, H, W) in [-1, 1]
        stylised = self.generator(content)
        losses = self.losses(content, stylised)
        temporal = self.temporal_term(self.generator, content, stylised)  # --lambda-temporal
        if temporal is not None:
            losses["g_temporal"] = temporal
        self.opt_g.zero_grad(set_to_none=True)
        self.backward(total(losses.values()))
        self.step(self.opt_g)
        return {k: v.item() for k, v in losses.items()}

    def generators(self) -> list[GeneratorSpec]:
        return [GeneratorSpec("model.pt", self.generator, "transformer", self.g_kwargs, "AtoB")]

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g}

    @torch.no_grad()
    def sample_rows(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        source = batch["source"].to(self.device)
        return [source, self.generator(source)]
