"""RefColorNet: shapes, identity at init, attention, alignment, optimisation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reel.models.refcolor_net import RefColorConfig, RefColorNet, attend, warp


def _inputs(B=2, T=3, H=24, W=32, R=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(B, T, 1, H, W, generator=g) * 100
    ab = (torch.rand(B, T, 2, H, W, generator=g) - 0.5) * 60
    conf = torch.rand(B, T, 1, H, W, generator=g)
    ref = torch.cat([torch.rand(B, R, 1, H + 4, W + 8, generator=g) * 100,
                     (torch.rand(B, R, 2, H + 4, W + 8, generator=g) - 0.5) * 80], dim=2)
    return L, ab, conf, ref


def test_forward_shapes_and_dtypes():
    torch.manual_seed(0)
    net = RefColorNet(RefColorConfig())
    L, ab, conf, ref = _inputs(B=2, H=21, W=30, R=2)  # not multiples of 8, two references
    out = net(L, ab, conf, ref)
    assert out["ab"].shape == (2, 2, 21, 30) and out["ab"].dtype == torch.float32
    assert out["warped_ab"].shape == (2, 2, 21, 30) and out["warped_ab"].dtype == torch.float32
    assert out["residual"].shape == (2, 2, 21, 30)
    # attention over 1/8 tokens of the frame (3x4) and of both references (4x5 each)
    assert out["attention"].shape == (2, 3 * 4, 2 * 4 * 5)
    assert torch.allclose(out["attention"].sum(-1), torch.ones(2, 12), atol=1e-5)


def test_wrong_window_is_refused():
    net = RefColorNet(RefColorConfig(window=3))
    L, ab, conf, ref = _inputs(T=5)
    with pytest.raises(ValueError, match="window of 3"):
        net(L, ab, conf, ref)
    with pytest.raises(ValueError, match="odd"):
        RefColorConfig(window=2)


def test_at_init_the_output_is_the_classical_input_exactly():
    torch.manual_seed(3)
    net = RefColorNet()
    L, ab, conf, ref = _inputs(seed=5)
    out = net(L, ab, conf, ref)
    assert torch.equal(out["ab"], ab[:, 1])
    assert torch.count_nonzero(out["residual"]) == 0


def test_in_network_confidence_gate_keeps_confident_pixels():
    torch.manual_seed(3)
    net = RefColorNet(RefColorConfig(confidence_gate=1.0))
    torch.nn.init.normal_(net.out.weight, std=0.1)   # a non-zero residual
    L, ab, conf, ref = _inputs(seed=5)
    conf[:, 1, ..., :12] = 1.0                        # left part fully confident
    conf[:, 1, ..., 12:] = 0.0
    out = net(L, ab, conf, ref)
    assert torch.equal(out["ab"][..., :12], ab[:, 1, :, :, :12])
    assert torch.count_nonzero(out["residual"][..., 12:]) > 0
    with pytest.raises(ValueError, match="confidence_gate"):
        RefColorConfig(confidence_gate=2.0)


def test_attend_with_one_hot_correlation_copies_the_reference_exactly():
    g = torch.Generator().manual_seed(1)
    M = 12
    values = torch.randn(2, 5, M, generator=g)           # reference values (e.g. ab + features)
    perm = torch.randperm(M, generator=g)
    logits = torch.full((2, M, M), -1e4)
    logits[:, torch.arange(M), perm] = 0.0                # query i looks only at key perm[i]
    out, weights = attend(logits, values)
    assert torch.equal(out, values[:, :, perm])
    assert torch.equal(weights.sum(-1), torch.ones(2, M))


def test_network_attention_warps_reference_colours_by_correspondence():
    """Cosine attention with a huge temperature on one-hot features is a one-hot correlation:
    the warped reference ab is the reference ab at the matching tokens, exactly."""
    net = RefColorNet(RefColorConfig(widths=(8, 8, 8), match_dim=8))
    # make the matching features the identity of an 8-channel one-hot code
    with torch.no_grad():
        net.q.weight.copy_(torch.eye(8).view(8, 8, 1, 1)); net.q.bias.zero_()
        net.k.weight.copy_(torch.eye(8).view(8, 8, 1, 1)); net.k.bias.zero_()
        net.log_temperature.fill_(12.0)
    codes = torch.eye(8)[torch.tensor([3, 1, 7, 0, 5, 2])]          # 6 distinct tokens (2x3)
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    q = codes[perm].T.reshape(1, 8, 2, 3)
    k = codes.T.reshape(1, 8, 2, 3)
    ab_ref = torch.randn(1, 2, 2, 3)
    logits = torch.exp(net.log_temperature) * torch.einsum(
        "bcn,bcm->bnm", torch.nn.functional.normalize(net.q(q).flatten(2), dim=1),
        torch.nn.functional.normalize(net.k(k).flatten(2), dim=1))
    out, _ = attend(logits, ab_ref.flatten(2))
    assert torch.equal(out, ab_ref.flatten(2)[:, :, perm])


def test_warp_identity_and_integer_shift():
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 5, 6)), x, atol=1e-4)
    flow = torch.zeros(1, 2, 5, 6)
    flow[:, 0] = 1.0  # sample one pixel to the right
    out = warp(x, flow)
    assert torch.allclose(out[..., :-1], x[..., 1:], atol=1e-4)


def test_a_few_optimisation_steps_reduce_the_loss_on_a_fixed_batch(overfit):
    from reel.models.refcolor_train import refcolor_loss

    torch.manual_seed(0)
    net = RefColorNet(RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8, head_width=8))
    L, ab, conf, ref = _inputs(B=2, H=16, W=24, seed=2)
    gt = ab[:, 1] + 10.0 * torch.tanh(L[:, 1] / 50.0 - 1.0)   # truth = classical + learnable fix
    batch = {"L": L, "ab_cls": ab, "conf": conf, "ref": ref, "gt": gt}
    losses, step_parts = overfit(net, refcolor_loss, batch, steps=25, lr=5e-3)
    l1, parts = [p["l1_ab"] for p in step_parts], step_parts[-1]
    assert np.mean(losses[-5:]) < 0.85 * losses[0]
    assert np.mean(l1[-5:]) < 0.7 * l1[0]   # the refined output itself improves
    assert set(parts) == {"l1_ab", "l1_warp"}


def test_cpu_inference_is_deterministic():
    torch.manual_seed(7)
    net = RefColorNet().eval()
    with torch.no_grad():
        for p in net.out.parameters():   # non-zero residual so the whole net matters
            p.normal_(0, 0.1)
    L, ab, conf, ref = _inputs(seed=9)
    with torch.inference_mode():
        a = net(L, ab, conf, ref)["ab"]
        b = net(L, ab, conf, ref)["ab"]
    assert torch.equal(a, b)
    torch.manual_seed(7)
    net2 = RefColorNet().eval()
    net2.load_state_dict(net.state_dict())
    with torch.inference_mode():
        assert torch.equal(net2(L, ab, conf, ref)["ab"], a)
    assert not torch.equal(a, ab[:, 1])
    assert np.isfinite(a.numpy()).all()
