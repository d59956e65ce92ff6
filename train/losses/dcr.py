"""Dual contrastive regularisation of SN-DCR (Zhao, Cai, Yuan, arXiv 2304.11319), as the official code computes it.

Anchor a = G(x) (generated), positive p = y (a real target-domain image), negative n = x (the
real source image); φ_i are frozen VGG16 features at relu1_2, relu2_2, relu3_3.

Semantic contrastive loss — a distance *ratio*, not InfoNCE (the form of Wu et al.'s contrastive
regularisation, "Contrastive Learning for Compact Single Image Dehazing", CVPR 2021)::

    L_sem = Σ_i w_i · ‖φ_i(a) − φ_i(p)‖₁ / (‖φ_i(a) − φ_i(n)‖₁ + 1e-7),   w = (1/32, 1/16, 1/8)

with ‖·‖₁ the mean absolute difference over the batch tensor, p and n detached. The official
weight list has five entries (1/32, 1/16, 1/8, 1/4, 1) but only three feature maps exist, so only
the first three are used; there is no temperature and a single negative per anchor.

Style contrastive loss — a triplet hinge on Gram matrices G(φ) = φφᵀ / (C·H·W)::

    S(a, b) = Σ_{j ∈ relu1_2, relu2_2} ‖G(φ_j a) − G(φ_j b)‖²  (sum of squares over the batch)
    L_style = max(S(a, p) − S(a, n) + 0.04, 0)

Only the first TWO feature maps enter the style term although three are computed (official code).
SN-DCR's generator objective adds 1·L_sem + 0.5·L_style.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

SEMANTIC_WEIGHTS = (1 / 32, 1 / 16, 1 / 8)
STYLE_LAYERS = 2
STYLE_MARGIN = 0.04
RATIO_EPS = 1e-7


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → (B, C, C) channel correlations normalised by C·H·W (Gatys et al. 2016)."""
    b, c, h, w = x.shape
    with torch.autocast(x.device.type, enabled=False):  # sums of H·W products: fp32 even under --amp
        f = x.float().reshape(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class SemanticContrastiveLoss(nn.Module):
    """Σ_i w_i · L1(a_i, p_i) / (L1(a_i, n_i) + ε): pull towards the positive relative to the negative."""

    def __init__(self, weights: Sequence[float] = SEMANTIC_WEIGHTS, eps: float = RATIO_EPS) -> None:
        super().__init__()
        self.weights = tuple(weights)
        self.eps = eps

    def forward(
        self, anchor: Sequence[torch.Tensor], positive: Sequence[torch.Tensor], negative: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if not len(anchor) == len(positive) == len(negative) <= len(self.weights):
            raise ValueError(f"need equal numbers of feature maps, at most {len(self.weights)}")
        total = anchor[0].new_zeros(())
        for w, a, p, n in zip(self.weights, anchor, positive, negative):
            total = total + w * F.l1_loss(a, p.detach()) / (F.l1_loss(a, n.detach()) + self.eps)
        return total


class StyleContrastiveLoss(nn.Module):
    """max(S(a, p) − S(a, n) + margin, 0) with S a sum of squared Gram-matrix differences."""

    def __init__(self, margin: float = STYLE_MARGIN, num_layers: int = STYLE_LAYERS) -> None:
        super().__init__()
        self.margin = margin
        self.num_layers = num_layers

    def distance(self, x: Sequence[torch.Tensor], y: Sequence[torch.Tensor]) -> torch.Tensor:
        pairs = list(zip(x, y))[: self.num_layers]
        return sum((F.mse_loss(gram_matrix(a), gram_matrix(b), reduction="sum") for a, b in pairs), x[0].new_zeros(()))

    def forward(
        self, anchor: Sequence[torch.Tensor], positive: Sequence[torch.Tensor], negative: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if min(len(anchor), len(positive), len(negative)) < self.num_layers:
            raise ValueError(f"the style term needs {self.num_layers} feature maps per image")
        return F.relu(self.distance(anchor, positive) - self.distance(anchor, negative) + self.margin)
