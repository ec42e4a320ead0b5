"""The flow-matching head on its own, with synthetic backbone features."""

from __future__ import annotations

import pytest
import torch

from vla_policy_node.model.flow_head import FlowHeadConfig, FlowMatchingHead

CFG = FlowHeadConfig(backbone_dim=24, dim=32, layers=4, heads=4, adapter_layers=1, horizon=8,
                     max_state_dim=10, max_action_dim=6, max_embodiments=3, num_future_tokens=4)


@pytest.fixture()
def head() -> FlowMatchingHead:
    torch.manual_seed(0)
    return FlowMatchingHead(CFG).eval()


def context(head: FlowMatchingHead, b: int = 2, s: int = 5, category=None):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(b, s, CFG.backbone_dim, generator=g)
    mask = torch.ones(b, s, dtype=torch.bool)
    state = torch.randn(b, CFG.max_state_dim, generator=g)
    cat = torch.zeros(b, dtype=torch.long) if category is None else category
    return head.encode_context(feats, mask, state, cat), (feats, mask, state, cat)


def test_shapes_and_loss(head: FlowMatchingHead) -> None:
    ctx, _ = context(head)
    v = head.velocity(ctx, torch.randn(2, 8, 6), torch.tensor([0, 999]))
    assert v.shape == (2, 8, 6) and torch.isfinite(v).all()
    loss = head.loss(ctx, torch.randn(2, 8, 6), torch.ones(2, 8, 6, dtype=torch.bool))
    assert loss.dim() == 0 and torch.isfinite(loss)
    out = head.sample(ctx, num_steps=4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 8, 6)


def test_dit_interleaves_cross_and_self_attention(head: FlowMatchingHead) -> None:
    assert [b.cross for b in head.blocks] == [True, False, True, False]


def test_time_distribution_matches_groot() -> None:
    torch.manual_seed(0)
    t = FlowMatchingHead(CFG).sample_time(40000, torch.device("cpu"))
    # u ~ Beta(1.5, 1) has mean 0.6 and t = (0.999 - u) / 0.999; P(u < 0.5) = 0.5 ** 1.5
    assert t.mean().item() == pytest.approx((0.999 - 0.6) / 0.999, abs=0.01)
    assert (t > (0.999 - 0.5) / 0.999).float().mean().item() == pytest.approx(0.5**1.5, abs=0.01)
    assert t.min() >= 0 and t.max() <= 1


def test_masked_features_are_ignored(head: FlowMatchingHead) -> None:
    _, (feats, mask, state, cat) = context(head)
    mask[:, -2:] = False
    x = torch.randn(2, 8, 6)
    ts = torch.tensor([100, 500])
    a = head.velocity(head.encode_context(feats, mask, state, cat), x, ts)
    feats2 = feats.clone()
    feats2[:, -2:] = 1e3 * torch.randn_like(feats2[:, -2:])
    b = head.velocity(head.encode_context(feats2, mask, state, cat), x, ts)
    torch.testing.assert_close(a, b)


def test_embodiments_have_their_own_encoders(head: FlowMatchingHead) -> None:
    x = torch.randn(2, 8, 6)
    ts = torch.tensor([300, 300])
    ctx0, _ = context(head, category=torch.tensor([0, 0]))
    ctx1, _ = context(head, category=torch.tensor([1, 1]))
    assert not torch.allclose(head.velocity(ctx0, x, ts), head.velocity(ctx1, x, ts))


def test_rtc_guidance_pins_frozen_prefix_and_leaves_free_part(head: FlowMatchingHead) -> None:
    ctx, _ = context(head)
    prefix = torch.randn(2, 8, 6)
    weights = torch.zeros(2, 8)
    weights[:, :3] = 1.0
    weights[:, 3:5] = torch.tensor([0.66, 0.33])
    free = head.sample(ctx, generator=torch.Generator().manual_seed(5))
    guided = head.sample(ctx, generator=torch.Generator().manual_seed(5), prefix=prefix, prefix_weights=weights)
    torch.testing.assert_close(guided[:, :3], prefix[:, :3], atol=1e-5, rtol=0)
    assert not torch.allclose(guided[:, :3], free[:, :3], atol=1e-2)
    # zero weights everywhere gives exactly the unguided sample
    none = head.sample(ctx, generator=torch.Generator().manual_seed(5), prefix=prefix,
                       prefix_weights=torch.zeros(2, 8))
    torch.testing.assert_close(none, free)
    with pytest.raises(ValueError, match="RTC prefix must be"):
        head.sample(ctx, prefix=prefix[:, :4], prefix_weights=weights[:, :4])


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="divisible"):
        FlowHeadConfig(backbone_dim=8, dim=30, heads=4)
    with pytest.raises(ValueError, match="horizon must be positive"):
        FlowHeadConfig(backbone_dim=8, horizon=0)
