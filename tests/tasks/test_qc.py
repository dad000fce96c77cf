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


@pytest.mark.parametrize("shape", [(136, 320, 3), (50, 37), (11, 11), (11, 40, 3)])
def test_ssim_equals_scikit_image(shape):
    """reel's OpenCV SSIM = skimage.metrics.structural_similarity with reel's settings."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, shape), 0, 255).astype(np.uint8)
    b[: shape[0] // 3] = 255 - b[: shape[0] // 3]          # structure changes in a band
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=255,
                                channel_axis=-1 if a.ndim == 3 else None)
    assert qc.ssim(a, b) == pytest.approx(ref, abs=1e-10)
    assert -1.0 <= qc.ssim(a, b) < 0.9
    with pytest.raises(ValueError, match="sides >= 11"):
        qc.ssim(a[:10], b[:10])


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
    ({"reference_match_de2000": 20.0}, "reference_mismatch"),
    ({"warp_error_ab_max": 60.0, "warp_error_ab_median": 2.0}, "warp_error_jump"),
    ({"cut_jump_in": 0.5, "cut_luma_jump_in": 0.05}, "cut_jump"),
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


def test_new_flags_need_both_conditions():
    # a warp-error spike that is large relative to the median but small in absolute terms
    assert qc.flags_from_metrics({**GOOD, "warp_error_ab_max": 8.0, "warp_error_ab_median": 0.5}) == []
    # a large colour jump at a cut between different scenes (luminance jumps too) is expected
    assert qc.flags_from_metrics({**GOOD, "cut_jump_in": 0.6, "cut_luma_jump_in": 0.4}) == []
    # unknown luminance jump (old edge files): the colour jump alone decides
    assert qc.flags_from_metrics({**GOOD, "cut_jump_in": 0.6,
                                  "cut_luma_jump_in": float("nan")}) == ["cut_jump"]
    assert qc.flags_from_metrics({**GOOD, "cut_jump_in": 0.6, "cut_luma_jump_in": 0.05},
                                 {"max_cut_jump": 0.7}) == []


# Hand-computed values -------------------------------------------------------------------------
def test_colorfulness_hand_computed():
    # pixels (100, 50, 0) and (0, 0, 0): rg = [50, 0], yb = [75, 0]
    # σ_rg = 25, σ_yb = 37.5, μ_rg = 25, μ_yb = 37.5 → M = 1.3 · √(25² + 37.5²)
    img = np.array([[[100, 50, 0], [0, 0, 0]]], np.uint8)
    assert qc.colorfulness(img) == pytest.approx(1.3 * math.sqrt(25 ** 2 + 37.5 ** 2), rel=1e-12)


def test_js_divergence_hand_computed():
    # p = [1, 0], q = [½, ½], m = [¾, ¼]: KL(p‖m) = ln(4/3), KL(q‖m) = ½ ln(2/3) + ½ ln 2
    want = 0.5 * (math.log(4 / 3) + 0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert qc.js_divergence([1.0, 0.0], [0.5, 0.5]) == pytest.approx(want, rel=1e-12)
    assert qc.js_divergence([3, 1], [3, 1]) == 0.0


def test_cdc_hand_computed():
    # black, white, black: d = 1 pairs are disjoint (JS = ln 2 on every channel), the d = 2 pair
    # is identical (0), d = 4 has no pair (skipped) → CDC = (ln 2 + 0) / 2
    black = np.zeros((1, 2, 3), np.uint8)
    white = np.full((1, 2, 3), 255, np.uint8)
    assert qc.cdc([black, white, black]) == pytest.approx(math.log(2) / 2, rel=1e-12)
    assert qc.cdc([black, white, black], dilations=(1,)) == pytest.approx(math.log(2), rel=1e-12)


def test_psnr_and_luminance_psnr_hand_computed():
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 10, np.uint8)                  # MSE = 100
    assert qc.psnr_db(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 100), rel=1e-12)
    L = np.full((3, 3), 40.0)
    L2 = L.copy()
    L2[0, 0] += 3.0                                       # MSE = 9 / 9 = 1 → 40 dB
    assert qc.luminance_psnr_db(L2, L) == pytest.approx(40.0, rel=1e-12)


def test_warp_errors_with_flow_hand_computed():
    o0 = np.zeros((2, 2, 3), np.uint8)
    o1 = o0.copy()
    o1[0, 0] = (255, 0, 0)
    flow = np.zeros((2, 2, 2), np.float32)
    e_ab, e_rgb = qc.warp_errors_with_flow(o0, o1, flow, np.ones((2, 2), bool))
    assert e_rgb == pytest.approx(1 / 12, rel=1e-6)       # one of 4 pixels x 3 channels is off by 1
    red_ab = qc.rgb_to_lab(o1)[0, 0, 1:].astype(np.float64)
    assert e_ab == pytest.approx(float((red_ab ** 2).sum()) / 4, rel=1e-5)
    only = np.zeros((2, 2), bool)
    only[0, 0] = True                                     # the mask selects the changed pixel
    assert qc.warp_errors_with_flow(o0, o1, flow, only)[1] == pytest.approx(1 / 3, rel=1e-6)
    # a one-pixel flow brings the neighbour: frame 1 shifted left by 1 px matches frame 0
    f0 = np.zeros((1, 3, 3), np.uint8)
    f0[0, 1] = (0, 200, 0)
    f1 = np.zeros((1, 3, 3), np.uint8)
    f1[0, 2] = (0, 200, 0)
    shift = np.zeros((1, 3, 2), np.float32)
    shift[..., 0] = 1.0
    assert qc.warp_errors_with_flow(f0, f1, shift, np.array([[True, True, False]])) == (0.0, 0.0)


def test_luma_histogram_and_cut_jump_from_edges(tmp_path):
    g = np.array([[0, 0], [255, 255]], np.uint8)
    h = qc.luma_histogram([g, g])
    assert h[0] == h[255] == 0.5 and h.sum() == pytest.approx(1.0)
    red = np.tile(np.array([200, 30, 30], np.uint8), (8, 8, 1))
    blue = np.tile(np.array([30, 30, 200], np.uint8), (8, 8, 1))
    gray8 = np.full((8, 8), 90, np.uint8)
    for name, frames in (("a", [red]), ("b", [blue]), ("c", [red])):
        np.savez(tmp_path / f"{name}.npz", first=qc.ab_histogram(frames),
                 last=qc.ab_histogram(frames), first_luma=qc.luma_histogram([gray8]),
                 last_luma=qc.luma_histogram([gray8]))
    m = qc.cut_jump_from_edges(tmp_path / "a.npz", tmp_path / "b.npz")
    assert m["cut_jump_in"] == pytest.approx(math.log(2)) and m["cut_luma_jump_in"] == 0.0
    assert qc.cut_jump_from_edges(tmp_path / "a.npz", tmp_path / "c.npz")["cut_jump_in"] == 0.0


def test_reference_match_de2000():
    f = _colored(_texture()[:, :W])
    de, frac = qc.reference_match_de2000(f, f)
    assert de == pytest.approx(0.0, abs=1e-9) and frac > 0.9
    # the same scene seen 3 px further right: matched where visible, small ΔE
    shot, _ = _moving_shot(n=4, step_px=1)
    de, frac = qc.reference_match_de2000(shot[3], shot[0])
    assert frac > 0.7 and de < 2.0
    # same luminance, other colours: matched geometry, large ΔE
    wrong = lab_to_rgb(rgb_to_lab(f)[..., 0], -rgb_to_lab(f)[..., 1:])
    de, frac = qc.reference_match_de2000(f, wrong)
    assert frac > 0.5 and de > 10.0
    # another scene: nothing matches
    other = _colored(_texture(seed=9)[:, :W])
    de, frac = qc.reference_match_de2000(f, other)
    assert frac < 0.3


def test_qc_doctests():
    import doctest

    assert doctest.testmod(qc, optionflags=doctest.ELLIPSIS).failed == 0


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
    with np.load(good.edge_hist_path) as e:
        assert {"first", "last", "first_luma", "last_luma"} <= set(e.files)
    # reference = the middle frame: its key frame, a near-zero matched ΔE
    assert good.keyframes == {str(tmp_path / "ref.png"): n // 2}
    assert m["reference_match_de2000"] < 1.0 and m["reference_matched_fraction"] > 0.8
    assert m["reference_keyframe"] == n // 2
    # per-frame series as Parquet beside the thumbnails
    import pandas as pd

    assert good.per_frame_path == tmp_path / "qc_good" / "qc_frames.parquet"
    df = pd.read_parquet(good.per_frame_path)
    assert list(df.columns) == ["frame", "t", "colorfulness", "luminance_psnr_db",
                                "warp_error_ab", "warp_error_rgb", "reference_layout_corr",
                                "psnr_db", "ssim", "delta_e2000"]
    assert df["frame"].tolist() == list(range(3, 3 + n)) and df["t"].tolist() == list(range(n))
    assert np.allclose(df["colorfulness"], good.per_frame["colorfulness"])
    assert df["warp_error_ab"].notna().sum() == 5 and df["warp_error_ab"].notna()[[0, 3, 6, 9, 12]].all()
    assert df["ssim"].notna().sum() == n   # gt stride ceil(16 / 24) = 1: every frame
    assert df["reference_layout_corr"].max() == pytest.approx(1.0, abs=1e-3)

    # Bad: luminance brightened, colours fading to gray along the shot.
    bad = []
    for t, f in enumerate(outs):
        lab = rgb_to_lab(f)
        fade = 1.0 - t / (n - 1)
        bad.append(lab_to_rgb(np.clip(lab[..., 0] + 12, 0, 100), lab[..., 1:] * fade))
    _write(media, tmp_path / "bad.mkv", bad)
    r = qc.qc_shot(tmp_path / "src.mkv", 3, 3 + n, tmp_path / "bad.mkv", tmp_path / "qc_bad")
    assert {"luminance_altered", "fading"} <= set(r.flags)
    import pandas as pd

    df = pd.read_parquet(r.per_frame_path)   # no ground truth, no references: fewer columns
    assert "psnr_db" not in df and df["reference_layout_corr"].isna().all()
    # thresholds are configurable: a lenient fading threshold clears that flag
    r2 = qc.qc_shot(tmp_path / "src.mkv", 3, 3 + n, tmp_path / "bad.mkv", tmp_path / "qc_bad2",
                    thresholds={"fading_drop_fraction": 1.1})
    assert "fading" not in r2.flags and "luminance_altered" in r2.flags
    assert r.metrics["colorfulness_trend_per_100_frames"] < 0
