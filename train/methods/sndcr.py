"""SN-DCR: spectral normalisation and dual contrastive regularisation (Zhao, Cai, Yuan, arXiv 2304.11319).

CUT (``cut.py``) with three changes, following the official code (ChenzhaoNju/SN-DCR, ``sndcr_model.py``):

* generator ``sn_resnet``: spectral-normalised first conv in each of the 9 residual blocks and FCA
  channel attention after each down/up step (see :mod:`i2i.train.nets.sn_resnet`);
* patch selection by QS-Attn (global, lowest attention entropy) for the two deepest NCE layers,
  random patches for the others;
* dual contrastive regularisation in frozen VGG16 space (:mod:`i2i.train.losses.dcr`)::

    L_G = L_GAN + ½(NCE(x, G(x)) + NCE(y, G(y))) + 1·L_sem(G(x); y, x) + 0.5·L_style(G(x); y, x)

Where the official code and the paper differ, the code is the default and the paper's form is an
option where it is cheap:

==========================  ==========================================  ==========================
item                        official code (default)                     paper / option
==========================  ==========================================  ==========================
NCE layers                  "0,4,8,12,16" — with the FCA layers in the   Fig. 3: RGB, the two down
                            Sequential this is pad, down1 conv, FCA1,    convs, blocks 1 and 5:
                            Downsample2, SN block 3                      ``--nce-layers 0,4,9,14,18``
deep-layer patch selection  QS-Attn on the last 2 NCE layers             not in the paper (CUT's
                                                                         random patches):
                                                                         ``--qs-attn-deepest 0``
VGG input                   G's [-1, 1] output, no ImageNet              ``--vgg-imagenet-norm``
                            normalisation                                (what the weights expect)
semantic term               L1 ratio, 3 of the 5 listed weights          unverified (paper text not
                                                                         available offline)
style term                  Gram hinge on relu1_2 + relu2_2 only         unverified
==========================  ==========================================  ==========================

Other official-code facts kept: λ_GAN = λ_NCE = 1, identity NCE on, no flip equivariance,
200 + 200 epochs, and the spectral norm's σ is a constant for autograd (one power iteration per
training forward). Not kept: the official forward also encodes the source once more per step
(``feat_k``, unused), which only advances the power iteration.

VGG16 weights: ``--vgg-weights FILE`` or the torch hub cache; without them the method stops before
training with the file name and URL to get, unless ``--allow-random-vgg`` (tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from i2i.errors import I2IError
from i2i.train.losses.dcr import SemanticContrastiveLoss, StyleContrastiveLoss
from i2i.train.methods import MethodConfig, register_method
from i2i.train.methods.cut import CUT, CUTConfig
from i2i.train.nets.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RELU1_2,
    RELU2_2,
    RELU3_3,
    VGG16Features,
    frozen_vgg16,
)
from i2i.train.options import option


@dataclass(frozen=True)
class SNDCRConfig(CUTConfig):
    qs_attn_deepest: int = option(
        2, "SN-DCR: the deepest N NCE layers choose patches by QS-Attn (0 = random, as CUT).", minimum=0
    )
    lambda_semantic: float = option(1.0, "SN-DCR: weight of the VGG semantic contrastive (L1 ratio) loss.")
    lambda_style: float = option(0.5, "SN-DCR: weight of the Gram-matrix style contrastive loss.")
    style_margin: float = option(0.04, "SN-DCR: margin of the style triplet loss.")
    vgg_weights: str = option(
        "", "ImageNet VGG16 weights (torchvision's vgg16-397923af.pth) [default: the torch hub cache]."
    )
    allow_random_vgg: bool = option(False, "Train with a random VGG16 when no weights are found (tests only).")
    vgg_imagenet_norm: bool = option(
        False, "Normalise VGG inputs with ImageNet statistics (the official SN-DCR code does not)."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.qs_attn_deepest <= len(self.layer_ids):
            raise I2IError(f"--qs-attn-deepest must lie in [0, {len(self.layer_ids)}] (the number of NCE layers)")


def load_vgg(config: SNDCRConfig) -> VGG16Features:
    """The frozen VGG16 (relu1_2, relu2_2, relu3_3) from the configured weights; one-line error if none."""
    return frozen_vgg16(config.vgg_weights, config.allow_random_vgg, "sndcr", RELU3_3 + 1, (RELU1_2, RELU2_2, RELU3_3))


@register_method("sndcr")
class SNDCR(CUT[SNDCRConfig]):
    config_class: ClassVar[type[MethodConfig]] = SNDCRConfig
    summary = "unpaired: CUT + spectral-norm/FCA generator + VGG semantic & Gram style contrast (Zhao et al. 2023)"
    arch: ClassVar[str] = "sn_resnet"

    def __init__(self, config: SNDCRConfig, device: torch.device) -> None:
        vgg = load_vgg(config)  # first: a missing weight file stops everything before any work
        super().__init__(config, device)
        self.vgg = vgg.to(device)
        self.semantic_loss = SemanticContrastiveLoss()
        self.style_loss = StyleContrastiveLoss(margin=config.style_margin)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self._vgg_norm = (mean, std) if config.vgg_imagenet_norm else None

    def _qs_layers(self, config: CUTConfig) -> int:
        assert isinstance(config, SNDCRConfig)
        return config.qs_attn_deepest

    def vgg_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self._vgg_norm is not None:  # [-1, 1] → [0, 1] → ImageNet statistics
            mean, std = self._vgg_norm
            images = ((images + 1) / 2 - mean) / std
        return self.vgg(images)

    def extra_generator_losses(
        self, source: torch.Tensor, target: torch.Tensor, fake_target: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        anchor = self.vgg_features(fake_target)
        with torch.no_grad():  # positives and negatives are real images: constants
            positive = self.vgg_features(target)
            negative = self.vgg_features(source)
        return {
            "semantic": cfg.lambda_semantic * self.semantic_loss(anchor, positive, negative),
            "style": cfg.lambda_style * self.style_loss(anchor, positive, negative),
        }
