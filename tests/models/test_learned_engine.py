"""The learned-refcolor engine: exact classical output at init, shipped checkpoint, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reel.models import CHECKPOINTS_DIR
from reel.models.checkpoint import file_sha256, save_checkpoint
from reel.models.refcolor_net import RefColorConfig, RefColorNet
from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.learned import classical_analysis


def _clip(T=6, H=32, W=48, seed=0):
    """A textured colour scene panning right, as Lab frames (reference = frame 0)."""
    rng = np.random.default_rng(seed)
    big = np.zeros((H, W + 3 * T, 3), np.float32)
    yy, xx = np.mgrid[0:H, 0:W + 3 * T].astype(np.float32)
    big[..., 0] = 50 + 30 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 2, yy.shape)
    big[..., 1] = 40 * np.sin(xx / 9.0)
    big[..., 2] = 30 * np.cos(yy / 7.0)
    return np.stack([big[:, 3 * t:3 * t + W] for t in range(T)])


def _run(engine, clip, refs):
    engine.start_shot(refs)
    return list(engine.colorize_frames([f[..., 0].copy() for f in clip]))


@pytest.fixture(scope="module")
def untrained_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8, head_width=8)
    path = tmp_path_factory.mktemp("ckpt") / "untrained.pt"
    save_checkpoint(path, RefColorNet(cfg), cfg, {"steps": 0})
    return path


@pytest.mark.parametrize("batch_frames", [1, 4])
def test_untrained_network_reproduces_exemplar_propagate_exactly(untrained_ckpt, batch_frames):
    clip = _clip()
    refs = [clip[0]]
    classical = _run(COLORIZERS.create("exemplar-propagate"), clip, refs)
    learned = _run(COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt),
                                     device="cpu", batch_frames=batch_frames), clip, refs)
    assert len(learned) == len(classical) == len(clip)
    for (a, ca), (b, cb) in zip(classical, learned):
        assert a.shape == b.shape == (32, 48, 2) and b.dtype == np.float32
        assert np.array_equal(a, b) and ca == cb


def test_engine_metadata_and_no_reference_shot(untrained_ckpt):
    eng = COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt), device="cpu")
    assert eng.uses_gpu is True and type(eng).uses_gpu is True
    assert eng.weights_sha256 == file_sha256(untrained_ckpt)
    assert eng.describe()["weights_sha256"] == eng.weights_sha256
    assert "device" not in eng.params  # where it runs does not change what it computes
    out = _run(eng, _clip(T=3), [])
    assert all(np.count_nonzero(ab) == 0 and c == 0.0 for ab, c in out)


def test_short_shots_and_missing_checkpoint(untrained_ckpt, tmp_path):
    eng = COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt), device="cpu")
    for T in (1, 2):
        clip = _clip(T=T)
        assert len(_run(eng, clip, [clip[0]])) == T
    with pytest.raises(FileNotFoundError, match="reel train refcolor"):
        COLORIZERS.create("learned-refcolor", checkpoint=str(tmp_path / "missing.pt"))


@pytest.mark.skipif(not (CHECKPOINTS_DIR / "refcolor.pt").is_file(),
                    reason="shipped checkpoint not built yet")
def test_shipped_checkpoint_refines_deterministically():
    clip = _clip(T=5, seed=1)
    refs = [clip[0]]
    eng = COLORIZERS.create("learned-refcolor", device="cpu")
    assert eng.weights_sha256 == file_sha256(CHECKPOINTS_DIR / "refcolor.pt")
    a = _run(eng, clip, refs)
    b = _run(COLORIZERS.create("learned-refcolor", device="cpu"), clip, refs)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    off = _run(COLORIZERS.create("learned-refcolor", device="cpu", residual_gain=0.0), clip, refs)
    classical = _run(COLORIZERS.create("exemplar-propagate"), clip, refs)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(off, classical))
    assert all(np.isfinite(x[0]).all() for x in a)


def test_classical_analysis_shapes():
    clip = _clip(T=4)
    ab, conf = classical_analysis([f[..., 0] for f in clip], clip[0])
    assert ab.shape == (4, 32, 48, 2) and conf.shape == (4, 32, 48)
    assert ab.dtype == conf.dtype == np.float32
    assert 0.0 <= conf.min() and conf.max() <= 1.0
    # the reference frame itself is coloured almost perfectly
    assert np.abs(ab[0] - clip[0, ..., 1:]).mean() < 3.0


# --- residual post-processing: confidence gate and flow-guided temporal filter ----------------
def test_filter_residual_static_scene_keeps_a_constant_residual():
    from reel.tasks.colorizers.learned import filter_residual

    rng = np.random.default_rng(0)
    r = rng.normal(0, 5, (12, 16, 2)).astype(np.float32)
    still = (np.zeros((12, 16, 2), np.float32), np.ones((12, 16), bool))
    prev, outs = None, []
    for t in range(6):
        prev = filter_residual(r, prev, None if t == 0 else still, 0.3)
        outs.append(prev)
    assert all(np.allclose(o, r, atol=1e-5) for o in outs)
    # a flickering per-frame residual on a static scene is damped
    prev, outs = None, []
    for t in range(40):
        raw = r + (8.0 if t % 2 else -8.0)
        prev = filter_residual(raw, prev, None if t == 0 else still, 0.25)
        outs.append(prev)
    raw_step = 16.0
    out_step = np.abs(outs[-1] - outs[-2]).max()
    assert out_step < 0.3 * raw_step


def test_filter_residual_follows_the_motion_and_resets_on_occlusion():
    from reel.tasks.colorizers.learned import filter_residual

    prev = np.zeros((8, 10, 2), np.float32)
    prev[:, 4] = 10.0                           # a stripe at x = 4 in frame t-1
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0] = -1.0                         # frame t at x comes from x - 1 in frame t-1
    ok = np.ones((8, 10), bool)
    ok[:, 0] = False                            # new content entering at the left edge
    new = np.full((8, 10, 2), 2.0, np.float32)
    out = filter_residual(new, prev, (flow, ok), 0.5)
    assert np.allclose(out[:, 5], 0.5 * 2.0 + 0.5 * 10.0)  # the stripe moved to x = 5
    assert np.allclose(out[:, 4], 1.0) and np.allclose(out[:, 0], 2.0)
    assert np.array_equal(filter_residual(new, None, None, 0.5), new)
    assert np.array_equal(filter_residual(new, prev, (flow, ok), 1.0), new)


def test_filter_residual_fades_new_content_in():
    """``new_blend < 1``: content without a reliable flow starts at that fraction of its
    residual, then converges to it at ``blend`` per frame; the shot's first frame is as is."""
    from reel.tasks.colorizers.learned import filter_residual

    r = np.full((4, 6, 2), 4.0, np.float32)
    still = (np.zeros((4, 6), np.float32)[..., None].repeat(2, -1), np.ones((4, 6), bool))
    occluded = (still[0], np.zeros((4, 6), bool))
    assert np.array_equal(filter_residual(r, None, None, 0.1, 0.5), r)
    first = filter_residual(r, r, occluded, 0.1, 0.5)
    assert np.allclose(first, 2.0)                       # half the residual at once
    prev, seen = first, [2.0]
    for _ in range(30):
        prev = filter_residual(r, prev, still, 0.1, 0.5)
        seen.append(float(prev[0, 0, 0]))
    assert all(b > a for a, b in zip(seen, seen[1:]))    # monotone fade-in, no overshoot
    assert 3.8 < seen[-1] <= 4.0
    # new_blend = 1 is the version-3 filter: the full residual on occluded pixels
    assert np.array_equal(filter_residual(r, r * 0, occluded, 0.1, 1.0), r)


def test_engine_does_not_gate_a_gating_network_twice(tmp_path, monkeypatch):
    import reel.tasks.colorizers.learned as learned

    torch.manual_seed(0)
    cfg = RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8, head_width=8,
                         confidence_gate=1.0)
    path = tmp_path / "gated.pt"
    save_checkpoint(path, RefColorNet(cfg), cfg, {"steps": 0})
    calls = []
    monkeypatch.setattr(learned, "gate_residual", lambda *a: calls.append(1) or a[0])
    clip = _clip(T=3)
    _run(COLORIZERS.create("learned-refcolor", checkpoint=str(path), device="cpu"), clip,
         [clip[0]])
    assert calls == []


def test_gate_residual_keeps_confident_classical_pixels():
    from reel.tasks.colorizers.learned import gate_residual

    r = np.full((2, 3, 2), 4.0, np.float32)
    conf = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0]], np.float32)
    # band (0, 0): the plain (1 - c) gate
    assert gate_residual(r, conf, 0.0, 0.0)[0, :, 0].tolist() == [4.0, 2.0, 0.0]
    assert gate_residual(r, conf, 0.6, 0.6)[0, :, 0].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("low,high", [(0.2, 0.6), (0.1, 0.3), (0.0, 0.5)])
def test_band_gate_zero_below_low_one_minus_c_above_high_monotone_ramp(low, high):
    from reel.tasks.colorizers.learned import band_gate

    c = np.linspace(0.0, 1.0, 201, dtype=np.float32)
    w = band_gate(c, low, high)
    assert w.dtype == np.float32 and w.shape == c.shape
    below, above = c <= low, c >= high
    assert np.all(w[below] == 0.0)
    assert np.allclose(w[above], 1.0 - c[above], atol=1e-6)
    inside = ~below & ~above
    ramp = w[inside] / (1.0 - c[inside])        # the band factor rises monotonically 0 -> 1
    assert np.all(np.diff(ramp) >= 0) and np.all((ramp > 0) & (ramp < 1))
    assert np.all(w <= 1.0 - c + 1e-6) and np.all(w >= 0)
    # continuous at both band edges
    assert np.abs(np.diff(w)).max() < 0.05
    with pytest.raises(ValueError):
        band_gate(c, 0.6, 0.2)


def test_postprocessed_untrained_engine_is_still_exactly_classical(untrained_ckpt):
    clip = _clip()
    refs = [clip[0]]
    classical = _run(COLORIZERS.create("exemplar-propagate"), clip, refs)
    learned = _run(COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt),
                                     device="cpu", gate_low=0.1, gate_high=0.5,
                                     temporal_blend=0.3,
                                     network_width_px=32), clip, refs)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(classical, learned))
    with pytest.raises(ValueError, match="temporal_blend"):
        COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt), temporal_blend=0.0)
    with pytest.raises(ValueError, match="new_content_blend"):
        COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt),
                          new_content_blend=1.5)
    with pytest.raises(ValueError, match="gate_low"):
        COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt),
                          gate_low=0.7, gate_high=0.3)


@pytest.mark.skipif(not (CHECKPOINTS_DIR / "refcolor.pt").is_file(),
                    reason="shipped checkpoint not built yet")
def test_temporal_filter_damps_residual_changes_on_a_static_shot(monkeypatch):
    import reel.tasks.colorizers.learned as learned

    rng = np.random.default_rng(3)
    frame = _clip(T=1, seed=2)[0]
    # a static shot whose gray frames carry independent noise: the per-frame residuals vary
    clip = np.stack([frame] * 8)
    clip[..., 0] = np.clip(clip[..., 0] + rng.normal(0, 3.0, clip.shape[:3]), 0, 100)
    seen = []
    original = learned.filter_residual

    def recording(residual, previous, motion, blend, new_blend=1.0):
        out = original(residual, previous, motion, blend, new_blend)
        seen.append((residual.copy(), out.copy()))
        return out

    monkeypatch.setattr(learned, "filter_residual", recording)
    _run(COLORIZERS.create("learned-refcolor", device="cpu", temporal_blend=0.25,
                                     new_content_blend=0.5), clip, [frame])
    raw = np.stack([r for r, _ in seen])
    filt = np.stack([f for _, f in seen])
    assert len(seen) == 8 and np.array_equal(filt[0], raw[0])  # the shot's first frame: as is
    step_raw = np.abs(np.diff(raw, axis=0)).mean()
    step_filt = np.abs(np.diff(filt, axis=0)).mean()
    assert step_raw > 0 and step_filt < 0.5 * step_raw


def test_selection_clips_have_sprites_from_stills_training_never_sees(monkeypatch):
    """build_dataset cuts a clip's sprite from *another* still of its list: one still alone
    gives sprite-less clips (the selection set's bug until 2026-11-22)."""
    from reel.models import refcolor_train
    from reel.tasks.colorizers.learned import SELECTION_IMAGES

    assert len(SELECTION_IMAGES) >= 2 and not set(SELECTION_IMAGES) & set(refcolor_train.TRAIN_IMAGES)
    sprites: list[bool] = []
    synth = refcolor_train.synthesize_clip

    def spy(image_lab, sprite_lab, *args, **kwargs):
        sprites.append(sprite_lab is not None)
        return synth(image_lab, sprite_lab, *args, **kwargs)

    monkeypatch.setattr(refcolor_train, "synthesize_clip", spy)
    plain = lambda frames, ref: (np.zeros(np.shape(frames) + (2,)), np.zeros(np.shape(frames)))  # noqa: E731
    refcolor_train.build_dataset(SELECTION_IMAGES, 12, plain, frames=3, size=(32, 48), seed=1000)
    assert sum(sprites) >= 6            # 70 % of the clips on average
    sprites.clear()
    refcolor_train.build_dataset(SELECTION_IMAGES[:1], 12, plain, frames=3, size=(32, 48), seed=1000)
    assert not any(sprites)


@pytest.mark.skipif(not (CHECKPOINTS_DIR / "refcolor.pt").is_file(),
                    reason="shipped checkpoint not built yet")
def test_select_postprocess_picks_from_its_grids_on_synthetic_clips():
    from reel.tasks.colorizers.learned import select_postprocess

    def video_fn(names):  # a panning colour shot per held-out video (no download in tests)
        ramp = np.linspace(0, 255, 160, dtype=np.float32)
        shot = np.stack([np.stack([np.roll(ramp, 3 * t)[None].repeat(72, 0),
                                   np.full((72, 160), 40 + 8 * t, np.float32),
                                   np.roll(ramp[::-1], 2 * t)[None].repeat(72, 0)], -1)
                         for t in range(12)]).astype(np.uint8)
        assert tuple(names) == VAL_VIDEOS
        return {n: [shot] for n in names}

    from reel.models.refcolor_train import VAL_VIDEOS

    kw = dict(clips=2, frames=5, size=(48, 64), bands=[(0.0, 0.0), (0.2, 0.6)],
              blends=(0.5, 1.0), new_blends=(1.0, 0.5), video_clips=2, video_fn=video_fn)
    r = select_postprocess(**kw)
    assert {k: v["clips"] for k, v in r["by_part"].items()} == {"synthetic": 2, "video": 2}
    assert (r["gate_low"], r["gate_high"]) in kw["bands"]
    assert r["gates"][(r["gate_low"], r["gate_high"])] == max(r["gates"].values())
    assert set(r["blend_rows"]) == {(0.5, 1.0), (1.0, 1.0), (0.5, 0.5), (1.0, 0.5)}
    chosen = (r["temporal_blend"], r["new_content_blend"])
    ok = {k: v for k, v in r["blend_rows"].items() if v[1] <= r["warp_classical"]}
    if ok:  # the best PSNR among the settings whose warp error is not above the classical one
        assert r["blend_rows"][chosen][0] == max(p for p, _ in ok.values())
    else:
        assert r["blend_rows"][chosen][1] == min(w for _, w in r["blend_rows"].values())
    assert np.isfinite(r["psnr_classical"]) and r["warp_classical"] >= 0
    assert select_postprocess(**kw)["blend_rows"] == r["blend_rows"]  # deterministic
