"""HarmonizeNet, its trainer and the ``learned-harmonize`` engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reel.models.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from reel.models.harmonize_net import (FgBgAttention, HarmonizeConfig, HarmonizeNet,
                                       masked_stats)

SMALL = HarmonizeConfig(widths=(8, 8, 12), attn_dim=8)


def _clip(B=2, T=3, H=24, W=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(B, T, 1, H, W, generator=g) * 100
    ab = torch.randn(B, T, 2, H, W, generator=g) * 15
    m = torch.zeros(B, T, 1, H, W)
    m[..., 6:18, 10:26] = 1
    return L, ab, m


def _randomize_head(net: HarmonizeNet, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.05)
        net.head.bias.copy_(torch.randn(net.head.bias.shape, generator=g) * 0.05)


def test_forward_shapes_dtypes_and_identity_at_init():
    torch.manual_seed(0)
    net = HarmonizeNet(SMALL)
    L, ab, m = _clip(H=21, W=37)  # not multiples of 8
    out = net(L, ab, m)
    assert out["ab"].shape == ab.shape and out["ab"].dtype == torch.float32
    assert out["gain"].shape == ab.shape and out["offset"].shape == ab.shape
    assert out["hidden"].shape == (2, 12, 3, 5)
    assert torch.equal(out["ab"], ab)  # zero-initialised output: the composite itself


def test_background_pixels_never_change():
    torch.manual_seed(0)
    net = HarmonizeNet(SMALL)
    _randomize_head(net)
    L, ab, m = _clip()
    out = net(L, ab, m)["ab"]
    bg = m.expand_as(ab) == 0
    assert torch.equal(out[bg], ab[bg])
    assert not torch.equal(out[~bg], ab[~bg])  # the foreground does change


def test_attention_ignores_foreground_keys():
    torch.manual_seed(0)
    att = FgBgAttention(4, 4, 4)
    q = torch.randn(1, 4, 3, 3)
    k = torch.randn(1, 4, 2, 4)
    bg = torch.ones(1, 1, 2, 4)
    bg[..., :, :2] = 0  # left half of the keys is foreground
    k2 = k.clone()
    k2[..., :, :2] = torch.randn(1, 4, 2, 2) * 5  # change only the foreground keys
    a, b = att(q, k, bg), att(q, k2, bg)
    assert torch.allclose(a, b, atol=5e-3)
    k3 = k.clone()
    k3[..., :, 2:] += 3.0  # changing background keys does change the result
    assert not torch.allclose(a, att(q, k3, bg), atol=1e-2)


def test_masked_stats_values():
    ab = torch.zeros(1, 2, 4, 4)
    ab[:, 0, :2] = 10.0
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2, :] = 1
    s = masked_stats(ab, m)
    assert s[0, 0].item() == pytest.approx(10.0, abs=0.01)  # fg mean a
    assert s[0, 4].item() == pytest.approx(0.0, abs=1e-6)  # bg mean a


def test_streaming_equals_whole_clip():
    torch.manual_seed(0)
    net = HarmonizeNet(SMALL).eval()
    _randomize_head(net)
    L, ab, m = _clip(B=1, T=4)
    with torch.no_grad():
        whole = net(L, ab, m)["ab"]
        h, parts = None, []
        for t in range(4):
            o = net(L[:, t:t + 1], ab[:, t:t + 1], m[:, t:t + 1], h)
            h = o["hidden"]
            parts.append(o["ab"])
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)


def test_few_steps_reduce_loss_on_fixed_batch(overfit):
    from reel.models.train_harmonize import harmonize_loss

    torch.manual_seed(0)
    net = HarmonizeNet(SMALL)
    L, ab, m = _clip(B=2, T=2, H=24, W=32)
    gt = ab.clone()
    comp = ab + m * torch.tensor([25.0, -15.0]).view(1, 1, 2, 1, 1)  # shifted foreground
    batch = {"L": L, "ab": comp, "mask": m, "gt": gt}
    losses, _ = overfit(net, harmonize_loss, batch, steps=12, lr=3e-3)
    assert losses[-1] < 0.8 * losses[0]


def test_checkpoint_round_trip_and_cpu_determinism(tmp_path):
    torch.manual_seed(3)
    net = HarmonizeNet(SMALL)
    _randomize_head(net)
    sha = save_checkpoint(tmp_path / "h.pt", net, SMALL, {"steps": 1})
    assert sha == file_sha256(tmp_path / "h.pt")
    model, cfg, meta = load_checkpoint(tmp_path / "h.pt", HarmonizeNet, HarmonizeConfig)
    assert cfg == SMALL and meta["sha256"] == sha
    assert save_checkpoint(tmp_path / "h2.pt", model, cfg, {"steps": 1}) == sha
    L, ab, m = _clip()
    with torch.no_grad():
        a = net.eval()(L, ab, m)["ab"]
        b = model(L, ab, m)["ab"]
        c = model(L, ab, m)["ab"]
    assert torch.equal(a, b) and torch.equal(b, c)
    torch.manual_seed(7)
    n1 = HarmonizeNet(SMALL)
    torch.manual_seed(7)
    n2 = HarmonizeNet(SMALL)
    assert all(torch.equal(p, q) for p, q in zip(n1.state_dict().values(),
                                                 n2.state_dict().values()))


def test_trainer_smoke_with_reel_composites():
    from reel.models.training import TrainOptions, get_trainer
    from reel.tasks.composites import make_composite

    res = get_trainer("harmonize").fn(TrainOptions(steps=2, extra={
        "composite_fn": make_composite, "clips": 2, "val_clips": 1, "frames": 2,
        "size": (32, 48), "config": {"widths": (8, 8, 8), "attn_dim": 8}}), None)
    assert res.steps == 2 and len(res.history["loss"]) == 2
    assert set(res.val_metrics) >= {"fpsnr_harmonized", "fpsnr_composite", "fpsnr_gain_db"}
    assert all(np.isfinite(v) for v in res.val_metrics.values())


def _composite_frames():
    rng = np.random.default_rng(0)
    H, W = 48, 64
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([120 + 40 * np.sin(xx / 9.0), 140 + 20 * np.cos(yy / 7.0),
                     90 + 0 * xx], -1)
    frames = []
    for t in range(3):
        f = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        f[12:36, 16 + t:44 + t] = (40, 60, 220)  # an out-of-place blue patch
        frames.append(f)
    labels = np.zeros((3, H, W), np.uint16)
    for t in range(3):
        labels[t, 12:36, 16 + t:44 + t] = 1
    return frames, labels


def test_engine_keeps_background_and_L_exactly():
    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.harmonize import HARMONIZERS, harmonize_frames

    eng = HARMONIZERS.create("learned-harmonize", device="cpu")
    assert eng.uses_gpu and eng.weights_sha256 == file_sha256(eng.checkpoint_file)
    assert eng.describe()["weights_sha256"] == eng.weights_sha256
    frames, labels = _composite_frames()
    out = harmonize_frames(frames, label_maps=labels, engine="learned-harmonize", device="cpu")
    again = harmonize_frames(frames, label_maps=labels, engine="learned-harmonize", device="cpu")
    for f, o, a, lab in zip(frames, out, again, labels):
        assert np.array_equal(o, a)  # deterministic
        bg = lab == 0
        assert np.array_equal(o[bg], f[bg])  # background bytes untouched
        dL = np.abs(rgb_to_lab(o)[..., 0] - rgb_to_lab(f)[..., 0])
        assert float(dL[~bg].mean()) < 1.5  # chroma-only change (up to 8-bit gamut rounding)
    assert any(not np.array_equal(o, f) for o, f in zip(out, frames))


def test_doctests_of_harmonize_modules():
    import doctest

    import reel.models.harmonize_net as net_mod
    import reel.models.train_harmonize as train_mod
    import reel.tasks.harmonize_learned as eng_mod

    for mod in (net_mod, train_mod, eng_mod):
        assert doctest.testmod(mod).failed == 0, mod.__name__


def _moving_shot(n: int = 16, h: int = 60, w: int = 80) -> np.ndarray:
    """A colour shot: a red square moving right by 1 px per frame over a blue-green ramp."""
    shot = np.zeros((n, h, w, 3), np.uint8)
    shot[..., 1] = np.linspace(40, 200, w, dtype=np.float32).astype(np.uint8)
    shot[..., 2] = 150
    for t in range(n):
        shot[t, 20:40, 20 + t:40 + t] = (220, 30, 30)
    return shot


def test_video_labels_follow_the_content():
    from reel.models.refcolor_train import cut_video_clip
    from reel.models.train_harmonize import video_labels

    shot = _moving_shot()
    clip = cut_video_clip(shot[[0, 4]], np.random.default_rng(0), frames=2, size=(60, 80),
                          max_stride=1)
    labels = video_labels(clip, 4)
    assert labels.shape == (2, 60, 80) and labels.dtype == np.int32
    square0 = labels[0, 25:35, 25:35]
    assert (square0 == square0[0, 0]).all()  # the square is one region...
    sq = int(square0[0, 0])
    # ...which moved 4 px right with the content, not stayed where it was
    assert (labels[1, 25:35, 29:39] == sq).mean() > 0.9
    assert (labels[1, 25:35, 20:23] == sq).mean() < 0.5


def test_trainer_adds_video_clips_and_validates_on_held_out_videos(tmp_path):
    from reel.models.refcolor_train import TRAIN_VIDEOS, VAL_VIDEOS
    from reel.models.training import TrainOptions, get_trainer
    from reel.tasks.composites import make_composite

    asked: list[tuple] = []

    def video_fn(names):
        asked.append(tuple(names))
        return {n: [_moving_shot()] for n in names}

    extra = {"composite_fn": make_composite, "clips": 2, "val_clips": 1, "frames": 2,
             "size": (32, 48), "config": {"widths": (8, 8, 8), "attn_dim": 8},
             "video_clips": 2, "val_video_clips": 1, "video_fn": video_fn}
    res = get_trainer("harmonize").fn(TrainOptions(steps=2, work_dir=tmp_path, extra=extra),
                                      None)
    assert asked == [TRAIN_VIDEOS, VAL_VIDEOS]
    assert {"video_fpsnr_harmonized", "video_fpsnr_gain_db", "fpsnr_gain_db"} <= set(
        res.val_metrics)
    assert res.params["video_clips"] == 2 and "DIS flow" in res.data_description
    with pytest.raises(ValueError, match="video_fn"):
        get_trainer("harmonize").fn(TrainOptions(steps=1, extra={
            k: v for k, v in extra.items() if k != "video_fn"}), None)
