"""FuseNet, its trainer and the ``learned-fuse`` engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reel.models.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from reel.models.fuse_net import FourierUnit, FuseConfig, FuseNet, gaussian_blur
from reel.tasks.fusers import band_weight

SMALL = FuseConfig(widths=(6, 8, 8), ffc_blocks=1, heads=2)


def _clip(B=1, T=3, H=28, W=36, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = torch.rand(B, T, 1, H, W, generator=g) * 100
    ab0 = torch.randn(B, T, 2, H, W, generator=g) * 15
    ab1 = ab0 + torch.tensor([30.0, -20.0]).view(1, 1, 2, 1, 1)
    m = torch.zeros(B, T, 1, H, W)
    m[..., 6:22, 8 + 0:26] = 1
    band = torch.from_numpy(np.stack([band_weight(x.numpy().astype(np.uint8), 6.0)
                                      for x in m.flatten(0, 2)])).view_as(m)
    return L, ab0, ab1, m, band


def _randomize_head(net: FuseNet, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.3)
        net.head.bias.fill_(0.5)


def test_forward_shapes_dtypes_and_feather_at_init():
    torch.manual_seed(0)
    net = FuseNet(SMALL)
    L, ab0, ab1, m, band = _clip(H=27, W=35)
    m, band = m[..., :27, :35], band[..., :27, :35]
    out = net(L, ab0, ab1, m, band)
    assert out["ab"].shape == ab0.shape and out["ab"].dtype == torch.float32
    assert out["alpha"].shape == m.shape
    prior = gaussian_blur((m >= 0.5).float().flatten(0, 1), SMALL.prior_sigma_px)
    prior = prior.clamp(1e-3, 1 - 1e-3).unflatten(0, m.shape[:2])
    assert torch.allclose(out["alpha_band"], prior, atol=1e-5)  # untrained = feathered mask


def test_input_prior_is_returned_at_init():
    torch.manual_seed(0)
    net = FuseNet(FuseConfig(widths=(6, 8, 8), ffc_blocks=1, prior="input"))
    L, ab0, ab1, m, band = _clip()
    g = torch.Generator().manual_seed(2)
    prior = torch.rand(m.shape, generator=g).clamp(0.01, 0.99)
    out = net(L, ab0, ab1, m, band, prior)
    assert torch.allclose(out["alpha_band"], prior, atol=1e-5)  # untrained = the classical weight
    with pytest.raises(ValueError):
        net(L, ab0, ab1, m, band)


def test_core_and_outside_are_exact_with_any_weights():
    torch.manual_seed(0)
    net = FuseNet(SMALL)
    _randomize_head(net)
    L, ab0, ab1, m, band = _clip()
    out = net(L, ab0, ab1, m, band)["ab"]
    free = (band == 0).expand_as(ab0)
    core = free & (m >= 0.5).expand_as(ab0)
    outside = free & (m < 0.5).expand_as(ab0)
    assert core.any() and outside.any()
    assert torch.equal(out[core], ab1[core])
    assert torch.equal(out[outside], ab0[outside])
    in_band = (band > 0).expand_as(ab0)
    lo, hi = torch.minimum(ab0, ab1), torch.maximum(ab0, ab1)
    assert bool(((out[in_band] >= lo[in_band] - 1e-4) & (out[in_band] <= hi[in_band] + 1e-4)).all())


def test_fourier_unit_is_global_and_attention_spans_frames():
    torch.manual_seed(0)
    fu = FourierUnit(2)
    x = torch.randn(1, 2, 16, 16)
    y0 = fu(x)
    x[0, :, 0, 0] += 5.0
    assert (fu(x)[0, :, 15, 15] - y0[0, :, 15, 15]).abs().max() > 1e-4  # opposite corner
    net = FuseNet(SMALL).eval()
    _randomize_head(net)
    L, ab0, ab1, m, band = _clip(T=3)
    feats, before = [], []
    hook = net.temporal.register_forward_hook(lambda mod, inp, out: feats.append(out[0]))
    hook2 = net.ffc[-1].register_forward_hook(lambda mod, inp, out: before.append(out[0]))
    with torch.no_grad():
        net(L, ab0, ab1, m, band)
        L2 = L.clone()
        L2[:, 2] = torch.rand_like(L2[:, 2]) * 100  # change only frame 2
        net(L2, ab0, ab1, m, band)
    hook.remove()
    hook2.remove()
    # frame 0's features (1/4 res, (B*T, C, h, w)): unchanged before the temporal attention,
    # changed after it (it sees frame 2)
    assert torch.equal(before[0], before[1])
    assert (feats[0] - feats[1]).abs().max() > 1e-6


def test_few_steps_reduce_loss_on_fixed_batch(overfit):
    from reel.models.train_fuse import fuse_loss

    torch.manual_seed(0)
    net = FuseNet(SMALL)
    L, ab0, ab1, m, band = _clip(B=2, T=2)
    true = torch.zeros_like(m)
    true[..., 8:20, 10:24] = 1  # the real region is smaller than the coarse mask
    batch = {"L": L, "ab": ab0, "ab_edited": ab1, "coarse": m, "band": band, "true": true,
             "ab_ideal": torch.where(true > 0, ab1, ab0)}
    losses, _ = overfit(net, fuse_loss, batch, steps=12, lr=3e-3)
    assert losses[-1] < 0.9 * losses[0]


def test_checkpoint_round_trip_and_cpu_determinism(tmp_path):
    torch.manual_seed(4)
    net = FuseNet(SMALL).eval()
    _randomize_head(net)
    sha = save_checkpoint(tmp_path / "f.pt", net, SMALL, {"steps": 1})
    assert sha == file_sha256(tmp_path / "f.pt")
    model, cfg, meta = load_checkpoint(tmp_path / "f.pt", FuseNet, FuseConfig)
    assert cfg == SMALL and meta["sha256"] == sha
    assert save_checkpoint(tmp_path / "f2.pt", model, cfg, {"steps": 1}) == sha
    args = _clip()
    with torch.no_grad():
        a, b, c = net(*args)["ab"], model(*args)["ab"], model(*args)["ab"]
    assert torch.equal(a, b) and torch.equal(b, c)


def test_trainer_smoke_with_reel_edits():
    from reel.flows.train import guided_alpha
    from reel.models.training import TrainOptions, get_trainer
    from reel.tasks.edit import synthetic_regional_edit

    res = get_trainer("fuse").fn(TrainOptions(steps=2, extra={
        "edit_fn": synthetic_regional_edit, "band_fn": band_weight, "prior_fn": guided_alpha,
        "clips": 1, "val_clips": 1,
        "frames": 2, "size": (32, 48), "config": {"widths": (6, 8, 8), "ffc_blocks": 1}}), None)
    assert res.steps == 2 and len(res.history["loss"]) == 2
    assert set(res.val_metrics) >= {"l1_band_ab", "l1_band_ab_prior", "l1_band_ab_hard"}
    assert all(np.isfinite(v) for v in res.val_metrics.values())


def test_engine_contract_exact_core_and_outside():
    from reel.tasks.fusers import FUSERS

    f = FUSERS.create("learned-fuse", device="cpu", band_px=6.0)
    assert f.uses_gpu and f.weights_sha256 == file_sha256(f.checkpoint_file)
    T, H, W = 3, 40, 56
    rng = np.random.default_rng(0)
    L = rng.uniform(20, 80, (T, H, W)).astype(np.float32)
    ab0 = rng.normal(0, 10, (T, H, W, 2)).astype(np.float32)
    ab1 = (ab0 + np.float32([25, -10])).astype(np.float32)
    mask = np.zeros((T, H, W), np.float32)
    mask[:, 10:30, 14:42] = 1
    out = f.fuse_clip(L, ab0, ab1, mask)
    assert out.shape == ab0.shape and out.dtype == np.float32
    band = np.stack([band_weight(m.astype(np.uint8), 6.0) for m in mask]) > 0
    core, outside = (mask > 0.5) & ~band, (mask < 0.5) & ~band
    assert np.array_equal(out[core], ab1[core]) and np.array_equal(out[outside], ab0[outside])
    L_e = L + 5
    f.reset()  # the guided prior carries temporal state across windows of a shot
    L_out, ab_out = f.fuse_lab(L, L_e, ab0, ab1, mask)
    assert np.array_equal(ab_out, out)
    assert np.array_equal(L_out[core], L_e[core]) and np.array_equal(L_out[outside], L[outside])
    f.reset()
    assert np.array_equal(f.fuse_clip(L, ab0, ab1, mask), out)  # deterministic after reset


def test_doctests_of_fuse_modules():
    import doctest

    import reel.models.fuse_net as net_mod
    import reel.models.train_fuse as train_mod
    import reel.tasks.fusers as fusers_mod
    import reel.tasks.fusers.learned as eng_mod

    for mod in (net_mod, train_mod, eng_mod, fusers_mod):
        assert doctest.testmod(mod).failed == 0, mod.__name__


def test_trainer_adds_video_clips_and_validates_on_held_out_videos(tmp_path):
    from reel.flows.train import guided_alpha
    from reel.models.refcolor_train import VAL_VIDEOS
    from reel.models.train_fuse import build_video_dataset
    from reel.models.training import TrainOptions, get_trainer
    from reel.tasks.edit import synthetic_regional_edit

    shot = np.zeros((12, 40, 60, 3), np.uint8)
    shot[..., 0] = np.linspace(30, 220, 60, dtype=np.float32).astype(np.uint8)
    shot[..., 1] = (10 * np.arange(12, dtype=np.uint8))[:, None, None]
    shot[:, 10:30, 20:40] = (40, 160, 60)
    asked: list[tuple] = []

    def video_fn(names):
        asked.append(tuple(names))
        return {n: [shot] for n in names}

    kw = dict(frames=2, size=(32, 48), seed=3, band_px=6.0)
    a = build_video_dataset(video_fn(["x"]), 2, synthetic_regional_edit, band_weight, **kw)
    b = build_video_dataset(video_fn(["x"]), 2, synthetic_regional_edit, band_weight, **kw)
    assert a["L"].shape == (2, 2, 32, 48) and all(np.array_equal(a[k], b[k]) for k in a)
    asked.clear()
    res = get_trainer("fuse").fn(TrainOptions(steps=2, work_dir=tmp_path, extra={
        "edit_fn": synthetic_regional_edit, "band_fn": band_weight, "prior_fn": guided_alpha,
        "clips": 1, "val_clips": 1, "frames": 2, "size": (32, 48),
        "config": {"widths": (6, 8, 8), "ffc_blocks": 1}, "video_clips": 2,
        "val_video_clips": 1, "train_videos": ["tree"], "video_fn": video_fn}), None)
    assert asked == [("tree",), VAL_VIDEOS]
    assert {"video_l1_band_ab", "video_l1_band_ab_prior", "l1_band_ab"} <= set(res.val_metrics)
    assert res.params["train_videos"] == "tree" and "tree" in res.data_description


@pytest.mark.slow
def test_validate_checkpoint_script_scores_the_shipped_fuse_checkpoint(reel_home, capsys):
    """scripts/validate_checkpoint.py (how candidates are compared with the shipped checkpoint,
    docs/models.md) on the shipped FuseNet: the still clips give the model card's figure and
    the pooled row is the clip-weighted mean of the two parts (real held-out videos)."""
    import importlib.util
    import shutil
    from pathlib import Path

    from reel.models.inference import checkpoint_file

    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available (the held-out videos come from Debian packages)")

    path = Path(__file__).resolve().parents[2] / "scripts" / "validate_checkpoint.py"
    spec = importlib.util.spec_from_file_location("validate_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pooled = mod.main("fuse", str(checkpoint_file("fuse")), 2)
    out = capsys.readouterr().out
    stills = dict(kv.split("=") for kv in out.split("stills (4 clips): ")[1].splitlines()[0]
                  .split(", "))
    video = dict(kv.split("=") for kv in out.split("video (2 clips): ")[1].splitlines()[0]
                 .split(", "))
    assert abs(float(stills["l1_band_ab"]) - 4.16) < 0.01  # models/checkpoints/fuse.md
    assert float(stills["l1_band_ab"]) < float(stills["l1_band_ab_prior"])
    expect = (4 * float(stills["l1_band_ab"]) + 2 * float(video["l1_band_ab"])) / 6
    assert abs(pooled["l1_band_ab"] - expect) < 1e-3
