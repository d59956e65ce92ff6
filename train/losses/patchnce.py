"""Multilayer PatchNCE (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020).

For a patch of the output, the positive is the input patch at the same place and the negatives are
the other sampled patches of the SAME input image (paper Eq. 2 and 5)::

    ℓ(v, v⁺, v⁻) = −log  exp(v·v⁺/τ) / (exp(v·v⁺/τ) + Σₙ exp(v·v⁻ₙ/τ)),   τ = 0.07

Features are taken from several encoder layers of the generator itself, sampled at the same
random positions in input and output, passed through a per-layer 2-layer MLP (:class:`PatchSampleMLP`,
the reference's ``PatchSampleF`` with ``netF=mlp_sample``) and L2-normalised. Keys are detached:
only the query (output) side is pushed, as in the reference.

:class:`PatchSampleMLP` can also select the deep layers' patches by QS-Attn (Hu et al., "QS-Attn:
Query-Selected Attention for Contrastive Learning in I2I Translation", CVPR 2022, global variant),
as SN-DCR's code does for its last two NCE layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Self-similarity of a key with its own query patch is meaningless as a negative: the reference
# fills it with -10, i.e. exp(-10/τ) ≈ 0 after the temperature.
DIAGONAL_FILL = -10.0


class PatchNCELoss(nn.Module):
    """InfoNCE over patches: positive = same location, negatives = the other sampled locations."""

    def __init__(self, temperature: float = 0.07, negatives_from_minibatch: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        # False (CUT/FastCUT): negatives from the same image only; True: from the whole minibatch
        # (the reference's --nce_includes_all_negatives_from_minibatch, for single-image training).
        self.negatives_from_minibatch = negatives_from_minibatch

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """query, key: (B, P, D) L2-normalised patch embeddings → mean loss over the B·P queries."""
        if query.shape != key.shape or query.dim() != 3:
            raise ValueError(f"query and key must both be (B, P, D), got {tuple(query.shape)} and {tuple(key.shape)}")
        # fp32 under --amp: logits are similarities / 0.07, where bf16's 3 significant digits are too few.
        with torch.autocast(query.device.type, enabled=False):
            return self._loss(query.float(), key.detach().float())

    def _loss(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        b, p, d = query.shape
        l_pos = (query * key).sum(dim=-1).reshape(-1, 1)  # (B·P, 1)
        if self.negatives_from_minibatch:
            query, key = query.reshape(1, b * p, d), key.reshape(1, b * p, d)
        l_neg = torch.bmm(query, key.transpose(1, 2))  # (b', n, n): every query against every key
        n = l_neg.shape[1]
        eye = torch.eye(n, device=query.device, dtype=torch.bool)[None]
        l_neg = l_neg.masked_fill(eye, DIAGONAL_FILL).reshape(-1, n)  # (B·P, n)
        logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature  # the positive is class 0
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
        return F.cross_entropy(logits, target)


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """x / (‖x‖ + 1e-7) along the last dim, the reference's ``Normalize(2)`` (not F.normalize's max(‖x‖, eps))."""
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


def qs_attention(feat: torch.Tensor, num_patches: int) -> torch.Tensor:
    """QS-Attn (global): rows of softmax(F Fᵀ) with the lowest entropy, (B, HW, C) → (B, P, HW).

    Low-entropy rows are positions that attend to few others: distinctive patches, which make
    harder and more informative contrastive queries than uniformly random ones.
    """
    attn = torch.bmm(feat, feat.transpose(1, 2)).softmax(dim=2)  # (B, HW, HW)
    with torch.no_grad():  # the selection is not differentiated; the selected rows are
        # −Σ a log a with 0·log 0 = 0 (the reference replaces the inf of −log 0 by 0).
        entropy = -(attn * torch.log(attn).nan_to_num(neginf=0.0)).sum(dim=2)  # (B, HW)
        index = entropy.argsort(dim=1)[:, :num_patches]  # (B, P)
    return torch.gather(attn, 1, index[:, :, None].expand(-1, -1, attn.shape[2]))


class PatchSampleMLP(nn.Module):
    """Sample patches from each feature map and project them with a per-layer MLP (the reference's netF).

    The MLPs' input widths are those of the generator's features, so they are created on the first
    call (:meth:`build`, the reference's ``create_mlp`` inside ``data_dependent_initialize``). Loading a
    state dict into an unbuilt head builds it from the stored weight shapes, so ``state.pt`` resumes.
    Parameter names match the reference (``mlp_0.0.weight`` …).
    """

    def __init__(self, channels: int = 256, init_gain: float = 0.02, qs_attn_deepest: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.init_gain = init_gain
        self.qs_attn_deepest = qs_attn_deepest  # the last N feature maps use QS-Attn (SN-DCR: 2)
        self.num_layers = 0
        # Tracks .to(device) so that build() from a CPU state dict lands on the module's device.
        self._device_anchor: torch.Tensor
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    @property
    def built(self) -> bool:
        return self.num_layers > 0

    def build(self, in_channels: Sequence[int]) -> None:
        """One Linear(C, nc) → ReLU → Linear(nc, nc) per feature map, xavier-normal(0.02) like the reference."""
        if self.built:
            raise RuntimeError("PatchSampleMLP is already built")
        device = self._device_anchor.device
        for i, c in enumerate(in_channels):
            first, second = nn.Linear(c, self.channels), nn.Linear(self.channels, self.channels)
            for layer in (first, second):
                nn.init.xavier_normal_(layer.weight, gain=self.init_gain)
                nn.init.zeros_(layer.bias)
            self.add_module(f"mlp_{i}", nn.Sequential(first, nn.ReLU(), second).to(device))
        self.num_layers = len(in_channels)

    def mlp(self, i: int) -> nn.Module:
        module = getattr(self, f"mlp_{i}")
        assert isinstance(module, nn.Module)
        return module

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        num_patches: int,
        patch_ids: Sequence[torch.Tensor | None] | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """feats: (B, C_l, H_l, W_l) maps → (B, P, nc) normalised embeddings, and the sampling used.

        Pass the sampling returned for the keys (source image) as ``patch_ids`` for the queries, so
        both sides are taken at the same places. A sampling is either (P,) random positions shared
        by the batch, or (B, P, HW) QS-Attn rows.
        """
        if not self.built:
            self.build([f.shape[1] for f in feats])
        if len(feats) != self.num_layers:
            raise ValueError(f"head was built for {self.num_layers} feature maps, got {len(feats)}")
        first_qs = len(feats) - self.qs_attn_deepest
        out, used = [], []
        for i, feat in enumerate(feats):
            flat = feat.flatten(2).transpose(1, 2)  # (B, HW, C)
            given = patch_ids[i] if patch_ids is not None else None
            if i >= first_qs:
                attn = given if given is not None else qs_attention(flat, num_patches)
                sample = torch.bmm(attn, flat)  # (B, P, C): attention-weighted patch features
                used.append(attn)
            else:
                ids = given
                if ids is None:
                    ids = torch.randperm(flat.shape[1])[:num_patches].to(feat.device)
                sample = flat[:, ids, :]  # (B, P, C), the same positions in every image of the batch
                used.append(ids)
            out.append(l2_normalize(self.mlp(i)(sample)))
        return out, used

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        if not self.built:
            widths: list[int] = []
            while f"{prefix}mlp_{len(widths)}.0.weight" in state_dict:
                weight = state_dict[f"{prefix}mlp_{len(widths)}.0.weight"]
                if weight.shape[0] != self.channels:
                    error_msgs.append(f"{prefix}mlp_{len(widths)}: stored width {weight.shape[0]} != {self.channels}")
                    return
                widths.append(int(weight.shape[1]))
            if widths:
                self.build(widths)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
