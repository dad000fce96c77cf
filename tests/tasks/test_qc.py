"""Tests of tasks/qc.py on small synthetic frames (and, with media.py, tiny video files)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from reel.tasks import qc
from reel.tasks.colorspace import gray_to_L, lab_to_rgb, rgb_to_gray, rgb_to_lab

H, W = 64, 96


def _texture(h=H, w=W + 40, seed=0) -> np.ndarray:
    """Smooth random texture, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3.0)
    return (t - t.min()) / (t.max() - t.min())


def _colored(tex: np.ndarray, hue_shift: float = 0.0) -> np.ndarray:
    """RGB frame whose L follows the texture and whose chroma is a function of it."""
    L = (25 + 55 * tex).astype(np.float32)
    ang = 4.0 * tex + hue_shift
    ab = np.dstack([30 * np.cos(ang), 30 * np.sin(ang)]).astype(np.float32)
    return lab_to_rgb(L, ab)


def _moving_shot(n=6, step_px=2, flicker=False):
    """A texture panning right-to-left ``step_px`` per frame; output and its gray input."""
    tex = _texture()
    outs, grays = [], []
    for t in range(n):
        crop = tex[:, t * step_px: t * step_px + W]
        rgb = _colored(crop, hue_shift=(1.2 if flicker and t % 2 else 0.0))
        outs.append(rgb)
        grays.append(rgb_to_gray(rgb))
    return outs, grays


# Colourfulness, CDC ---------------------------------------------------------------------------
def test_colorfulness_gray_is_zero_and_color_is_positive():
    g = (np.random.default_rng(1).integers(0, 256, (H, W)).astype(np.uint8))
    assert qc.colorfulness(np.dstack([g, g, g])) == 0.0
    assert qc.colorfulness(_colored(_texture()[:, :W])) > 10.0


def test_cdc_identical_zero_flicker_larger():
    f = _colored(_texture()[:, :W])
    assert qc.cdc([f] * 6) == 0.0
    steady, _ = _moving_shot(n=8, step_px=1)
    flick, _ = _moving_shot(n=8, step_px=1, flicker=True)
    c_steady, c_flick = qc.cdc(steady), qc.cdc(flick)
    assert c_flick > 3 * c_steady
    assert 0 <= c_steady <= math.log(2) and c_flick <= math.log(2)
    assert math.isnan(qc.cdc([f]))


def test_cdc_matches_reference_definition():
    # Direct transcription of the TCVC definition with scipy's entropy.
    from scipy.stats import entropy

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(7)]

    def js(p, q):
        m = (p + q) / 2
        return 0.5 * entropy(p, m) + 0.5 * entropy(q, m)

    hist = [[np.bincount(f[..., c].ravel(), minlength=256) / f[..., c].size for c in range(3)]
            for f in frames]
    per_c = [np.mean([np.mean([js(hist[i][c], hist[i + d][c]) for i in range(7 - d)])
                      for d in (1, 2, 4)]) for c in range(3)]
    assert qc.cdc(frames) == pytest.approx(float(np.mean(per_c)), rel=1e-9)


# Warp error -----------------------------------------------------------------------------------
def test_warp_error_identical_frames_zero():
    f = _colored(_texture()[:, :W])
    g = rgb_to_gray(f)
    assert qc.warp_error_ab([f, f, f], [g, g, g]) < 1e-3
    assert qc.warp_error_rgb([f, f, f], [g, g, g]) < 1e-6


def test_warp_error_static_vs_flickering_chroma():
    f = _colored(_texture()[:, :W])
    g = rgb_to_gray(f)
    flick = _colored(_texture()[:, :W], hue_shift=1.0)
    assert qc.warp_error_ab([f] * 4, [g] * 4) < 1e-3
    assert qc.warp_error_ab([f, flick, f, flick], [g] * 4) > 100.0


def test_warp_error_follows_motion():
    outs, grays = _moving_shot(n=5, step_px=2)
    we = qc.warp_error_ab(outs, grays)
    # Without motion compensation consecutive frames differ a lot in chroma...
    naive = np.mean([((rgb_to_lab(a)[..., 1:] - rgb_to_lab(b)[..., 1:]) ** 2).sum(-1).mean()
                     for a, b in zip(outs[:-1], outs[1:])])
    assert naive > 20 * we
    # ... and a consistent panning shot scores far below the same shot with chroma flicker.
    flick, _ = _moving_shot(n=5, step_px=2, flicker=True)
    assert qc.warp_error_ab(flick, grays) > 20 * we
    assert we < 5.0


def test_non_occlusion_mask_excludes_out_of_frame():
    fw = np.zeros((10, 12, 2), np.float32)
    fw[..., 0] = 3.0  # everything moves 3 px right
    bw = -fw
    m = qc.non_occlusion_mask(fw, bw)
    assert m[:, :9].all() and not m[:, 9:].any()
    # inconsistent backward flow -> occluded
    assert not qc.non_occlusion_mask(fw, fw)[:, :9].any()


# Fidelity -------------------------------------------------------------------------------------
def test_psnr_ssim_de_identical():
    f = _colored(_texture()[:, :W])
    assert qc.psnr_db(f, f) == qc.PSNR_CAP_DB
    assert qc.ssim(f, f) == pytest.approx(1.0)
    lab = rgb_to_lab(f)
    assert qc.delta_e2000_mean(lab, lab) == 0.0
    assert qc.luminance_psnr_db(lab[..., 0], lab[..., 0]) == qc.PSNR_CAP_DB
    g = f.copy()
    g[::2] = np.clip(g[::2].astype(int) + 20, 0, 255).astype(np.uint8)
    assert 10 < qc.psnr_db(f, g) < 40
    assert qc.ssim(f, g) < 0.99
    assert qc.delta_e2000_mean(lab, rgb_to_lab(g)) > 1.0
    assert qc.ssim(f[..., 0], f[..., 0]) == pytest.approx(1.0)


def test_luminance_psnr_of_recombined_frame_is_high():
    g = (_texture()[:, :W] * 255).astype(np.uint8)
    L = gray_to_L(g)
    ab = np.dstack([np.full_like(L, 40.0), np.full_like(L, -30.0)])
    rgb = lab_to_rgb(L, ab)
    assert qc.luminance_psnr_db(rgb_to_lab(rgb)[..., 0], L) > 45.0


def test_reference_fidelity():
    f = _colored(_texture()[:, :W])
    assert qc.reference_fidelity_de2000(f, f) == pytest.approx(0.0, abs=1e-9)
    other = _colored(_texture(seed=5)[:, :W], hue_shift=2.5)
    assert qc.reference_fidelity_de2000(f, other) > 5.0
    assert qc.reference_fidelity_de2000(f, other) == qc.reference_fidelity_de2000(f, other)


def test_cut_jump():
    a, _ = _moving_shot(n=3)
    assert qc.cut_jump(a, a) == pytest.approx(0.0, abs=1e-12)
    red = np.tile(np.array([200, 30, 30], np.uint8), (H, W, 1))
    green = np.tile(np.array([30, 170, 40], np.uint8), (H, W, 1))
    assert qc.cut_jump([red], [green]) > 0.6
    # a small drift is a small jump
    assert qc.cut_jump(a[:1], a[1:2]) < 0.2


# Flags ----------------------------------------------------------------------------------------
GOOD = {
    "colorfulness_mean": 30.0, "luminance_psnr_db_min": 52.0, "warp_error_ab": 2.0, "cdc": 0.01,
    "colorfulness_drop": 1.0, "colorfulness_drop_fraction": 0.03, "n_frames_restored": 24.0,
    "n_frames_expected": 24.0,
}


@pytest.mark.parametrize("change,flag", [
    ({"colorfulness_mean": 2.0}, "low_colorfulness"),
    ({"luminance_psnr_db_min": 31.0}, "luminance_altered"),
    ({"warp_error_ab": 120.0}, "high_warp_error"),
    ({"cdc": 0.2}, "high_cdc"),
    ({"colorfulness_drop": 15.0, "colorfulness_drop_fraction": 0.5}, "fading"),
    ({"psnr_db": 18.0}, "low_psnr"),
    ({"delta_e2000": 30.0}, "high_delta_e2000"),
    ({"reference_fidelity_de2000": 40.0}, "off_reference"),
    ({"n_frames_restored": 20.0}, "frame_count_mismatch"),
])
def test_flags_fire(change, flag):
    assert qc.flags_from_metrics(GOOD) == []
    assert qc.flags_from_metrics({**GOOD, **change}) == [flag]


def test_flag_thresholds():
    assert qc.flags_from_metrics({**GOOD, "colorfulness_mean": 30.0},
                                 {"min_colorfulness": 40.0}) == ["low_colorfulness"]
    assert qc.flags_from_metrics({**GOOD, "warp_error_ab": float("nan")}) == []
    with pytest.raises(ValueError):
        qc.flags_from_metrics(GOOD, {"min_colourfulnes": 3.0})


# Per-shot task (needs media.py) ----------------------------------------------------------------
def _write(media, path, frames, gray=False):
    with media.FrameWriter(path, W, H, "24/1", pix_fmt_in="gray" if gray else "rgb24") as w:
        for f in frames:
            w.write(f)


def test_qc_shot_good_and_bad(tmp_path):
    media = pytest.importorskip("reel.tasks.media")
    n = 16
    outs, grays = _moving_shot(n=n, step_px=1)
    pad = [np.zeros((H, W), np.uint8)] * 3  # the shot sits at [3, 3 + n) of the source
    _write(media, tmp_path / "src.mkv", [np.dstack([g] * 3) for g in pad + grays])
    _write(media, tmp_path / "good.mkv", outs)
    _write(media, tmp_path / "gt.mkv", [np.zeros((H, W, 3), np.uint8)] * 3 + outs)

    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(outs[n // 2], cv2.COLOR_RGB2BGR))
    good = qc.qc_shot(tmp_path / "src.mkv", 3, 3 + n, tmp_path / "good.mkv", tmp_path / "qc_good",
                      ground_truth_path=tmp_path / "gt.mkv", reference_paths=[tmp_path / "ref.png"],
                      write_preview=True, max_warp_pairs=5)
    m = good.metrics
    assert good.flags == []
    assert m["n_frames"] == n and m["luminance_psnr_db_min"] > 45
    assert m["colorfulness_mean"] > 10 and m["warp_error_ab"] < 5 and m["cdc"] < 0.05
    assert m["psnr_db"] > 45 and m["ssim"] > 0.99 and m["delta_e2000"] < 1.0
    assert m["reference_fidelity_de2000"] < 1.0
    assert len(good.per_frame["colorfulness"]) == n
    assert good.per_frame["warp_pair_start"] == [0.0, 3.0, 6.0, 9.0, 12.0]  # stride ceil(15/5)
    assert media.probe(good.preview_path).n_frames == n
    for p in (good.before_thumb, good.after_thumb):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[1] <= 320
    assert good.edge_hist_path.is_file()

    # Bad: luminance brightened, colours fading to gray along the shot.
    bad = []
    for t, f in enumerate(outs):
        lab = rgb_to_lab(f)
        fade = 1.0 - t / (n - 1)
        bad.append(lab_to_rgb(np.clip(lab[..., 0] + 12, 0, 100), lab[..., 1:] * fade))
    _write(media, tmp_path / "bad.mkv", bad)
    r = qc.qc_shot(tmp_path / "src.mkv", 3, 3 + n, tmp_path / "bad.mkv", tmp_path / "qc_bad")
    assert {"luminance_altered", "fading"} <= set(r.flags)
    assert r.metrics["colorfulness_trend_per_100_frames"] < 0
