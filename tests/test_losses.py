"""PatchNCE and the dual contrastive losses on hand-built features whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from i2i.train.losses.dcr import SEMANTIC_WEIGHTS, SemanticContrastiveLoss, StyleContrastiveLoss, gram_matrix
from i2i.train.losses.patchnce import PatchNCELoss, PatchSampleMLP, qs_attention


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors gain nothing from intra-op threads, which spin against other work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


T = 0.07


def one_hot_patches(b: int, p: int) -> torch.Tensor:
    """(B, P, P): patch i of every image is the unit vector e_i (unit norm, mutually orthogonal)."""
    return torch.eye(p).expand(b, p, p).clone()


# --------------------------------------------------------------------------- PatchNCE


def test_identical_query_and_key_give_the_closed_form_minimum() -> None:
    p = 8
    q = one_hot_patches(1, p)
    # positive logit 1/T; P-1 orthogonal negatives at 0; the masked diagonal at -10/T.
    expected = math.log(1 + (p - 1) * math.exp(-1 / T) + math.exp(-11 / T))
    loss = PatchNCELoss(T)(q, q.clone())
    # float32 cross-entropy: logsumexp(logits) − logit⁺, both near 1/T = 14.3, whose float32 spacing
    # is 2^-20 = 9.5e-7. Rounding the logsumexp to that grid errs by up to half a spacing, and a
    # kernel that evaluates log-softmax in another order (AVX-512 vs AVX2 paths) rounds elsewhere:
    # up to one spacing in all, plus ~1e-7 from log(1 + 4.4e-6) in float32. Two spacings bound it.
    # The loss itself, 4.4e-6, is only ~4.6 spacings: what is checked is that it is this tiny
    # positive number (not 0, not a wrong formula like the unmasked log(P)).
    spacing = float(np.spacing(np.float32(1 / T)))  # 9.54e-7
    assert loss.item() == pytest.approx(expected, abs=2 * spacing)
    assert 0 < loss.item() < 1e-3


def test_swapped_positive_gives_the_closed_form_maximum() -> None:
    p = 8
    key = one_hot_patches(1, p)
    query = key.roll(1, dims=1)  # query i equals key i-1: the positive is orthogonal, one negative matches
    expected = math.log(1 + math.exp(1 / T) + (p - 2) + math.exp(-10 / T))
    loss = PatchNCELoss(T)(query, key)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss.item() > PatchNCELoss(T)(key, key).item() + 10


def test_minibatch_negatives_see_the_other_images() -> None:
    b, p = 2, 4
    q = one_hot_patches(b, p)  # both images identical: with minibatch negatives, patch i of image 2 is a
    # negative as similar as the positive
    same_image = PatchNCELoss(T)(q, q.clone()).item()
    minibatch = PatchNCELoss(T, negatives_from_minibatch=True)(q, q.clone()).item()
    expected = math.log(1 + 1 + (b * p - 2) * math.exp(-1 / T) + math.exp(-11 / T))
    assert minibatch == pytest.approx(expected, rel=1e-5)
    assert minibatch > same_image + 0.5


def test_keys_are_detached_and_queries_get_gradients() -> None:
    q = torch.nn.functional.normalize(torch.randn(2, 5, 3), dim=-1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(2, 5, 3), dim=-1).requires_grad_()
    PatchNCELoss(T)(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(B, P, D\)"):
        PatchNCELoss(T)(torch.zeros(2, 4, 3), torch.zeros(2, 5, 3))


# --------------------------------------------------------------------------- sampling head


def test_head_builds_on_first_call_and_samples_the_same_places_for_queries() -> None:
    torch.manual_seed(0)
    head = PatchSampleMLP(channels=6)
    assert not head.built and not list(head.parameters())
    feats = [torch.randn(2, 3, 5, 5), torch.randn(2, 4, 3, 3)]
    keys, sampling = head(feats, num_patches=4)
    assert head.built and [k.shape for k in keys] == [(2, 4, 6), (2, 4, 6)]
    # L2-normalised as x / (‖x‖ + 1e-7): with the 0.02-gain init the raw norms are ~1e-3, hence ≈ 1.
    assert torch.allclose(keys[0].norm(dim=-1), torch.ones(2, 4), atol=5e-3)
    queries, _ = head(feats, num_patches=4, patch_ids=sampling)  # same features, same places
    assert all(torch.equal(q, k) for q, k in zip(queries, keys))
    capped, _ = head(feats, num_patches=100)  # never more patches than positions
    assert capped[1].shape == (2, 9, 6)


def test_head_is_rebuilt_from_a_state_dict() -> None:
    head = PatchSampleMLP(channels=6)
    head([torch.randn(1, 3, 4, 4), torch.randn(1, 5, 2, 2)], num_patches=2)
    fresh = PatchSampleMLP(channels=6)
    fresh.load_state_dict(head.state_dict())  # strict: building from the stored shapes makes the keys fit
    assert fresh.num_layers == 2
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), head.state_dict().values()))
    assert list(fresh.state_dict()) == ["mlp_0.0.weight", "mlp_0.0.bias", "mlp_0.2.weight", "mlp_0.2.bias"] + [
        "mlp_1.0.weight",
        "mlp_1.0.bias",
        "mlp_1.2.weight",
        "mlp_1.2.bias",
    ]


def test_qs_attention_picks_the_most_distinctive_positions() -> None:
    # Positions 0-2 share one direction (their attention spreads over three), position 3 is alone
    # and scaled up: its attention row is the sharpest, so it must be selected first.
    feat = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 5.0]]])  # (B=1, HW=4, C=2)
    rows = qs_attention(feat, num_patches=1)  # (1, 1, 4)
    assert rows.shape == (1, 1, 4)
    assert rows[0, 0].argmax().item() == 3
    assert rows.sum(-1).allclose(torch.ones(1, 1))  # softmax rows


# --------------------------------------------------------------------------- dual contrastive


def maps(value: float, channels: int = 2, size: int = 3, layers: int = 3) -> list[torch.Tensor]:
    return [torch.full((1, channels, size, size), value) for _ in range(layers)]


def test_gram_matrix_closed_form() -> None:
    g = gram_matrix(torch.ones(1, 2, 2, 2))
    assert torch.allclose(g, torch.full((1, 2, 2), 4 / 8))  # Σ_hw 1·1 = 4, normalised by C·H·W = 8


def test_semantic_loss_is_zero_for_identical_anchor_and_positive() -> None:
    anchor = [torch.randn(1, 2, 3, 3) for _ in range(3)]
    negative = maps(5.0)
    assert SemanticContrastiveLoss()(anchor, [a.clone() for a in anchor], negative).item() == 0.0


def test_semantic_loss_ratio_closed_form_and_swap() -> None:
    anchor, positive, negative = maps(0.0), maps(1.0), maps(2.0)
    loss = SemanticContrastiveLoss()(anchor, positive, negative)
    assert loss.item() == pytest.approx(sum(SEMANTIC_WEIGHTS) * 1 / (2 + 1e-7), rel=1e-6)
    swapped = SemanticContrastiveLoss()(anchor, negative, positive)  # 2 / 1 per layer
    assert swapped.item() == pytest.approx(sum(SEMANTIC_WEIGHTS) * 2, rel=1e-6)
    assert swapped > 3 * loss


def test_semantic_loss_pushes_only_the_anchor() -> None:
    anchor = [torch.randn(1, 2, 3, 3, requires_grad=True) for _ in range(3)]
    positive = [torch.randn(1, 2, 3, 3, requires_grad=True) for _ in range(3)]
    negative = [torch.randn(1, 2, 3, 3, requires_grad=True) for _ in range(3)]
    SemanticContrastiveLoss()(anchor, positive, negative).backward()
    assert all(a.grad is not None for a in anchor)
    assert all(t.grad is None for t in positive + negative)


def test_style_loss_closed_form_uses_two_layers() -> None:
    zeros, ones = maps(0.0), maps(1.0)  # Gram of all-ones (C=2) maps is 1/C everywhere: S = C²/C² = 1 per layer
    style = StyleContrastiveLoss(margin=0.04)
    assert style(zeros, zeros, ones).item() == 0.0  # anchor = positive, negative far beyond the margin
    assert style(zeros, ones, zeros).item() == pytest.approx(2 * 1.0 + 0.04, rel=1e-6)  # swapped
    third_changed = [*ones[:2], torch.full((1, 2, 3, 3), 9.0)]
    assert style(zeros, third_changed, zeros).item() == pytest.approx(2.04, rel=1e-6)  # relu3_3 not used


def test_style_loss_hinge_is_flat_inside_the_margin() -> None:
    anchor = [torch.zeros(1, 2, 3, 3, requires_grad=True) for _ in range(3)]
    loss = StyleContrastiveLoss(margin=0.04)(anchor, maps(0.0), maps(1.0))
    loss.backward()
    assert loss.item() == 0.0 and all(a.grad is None or a.grad.abs().sum() == 0 for a in anchor)
