"""Regional colour edits: the colour transform, the fusers, the streaming edit task, the
synthetic-edit generator and the fusion benchmark's metrics."""

from __future__ import annotations

import numpy as np
import pytest

from reel.tasks.edit import (
    EditError,
    EditParams,
    apply_brightness,
    apply_edit,
    edit_shot,
    normalize_edit,
    region_stats,
    synthetic_regional_edit,
)
from reel.tasks.fusers import FUSERS, Fuser, band_weight, border_distance


def _lab(seed=0, shape=(3, 16, 20)):
    rng = np.random.default_rng(seed)
    L = rng.uniform(0, 100, shape).astype(np.float32)
    ab = rng.uniform(-60, 60, shape + (2,)).astype(np.float32)
    return L, ab


# ------------------------------------------------------------------------------------------
# the colour transform
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hue", [-180.0, -37.5, 15.0, 90.0, 180.0])
def test_hue_rotation_preserves_chroma_and_rotates_the_angle(hue):
    L, ab = _lab()
    L2, ab2 = apply_edit(L, ab, EditParams(hue_deg=hue))
    np.testing.assert_allclose(np.hypot(ab2[..., 0], ab2[..., 1]), np.hypot(ab[..., 0], ab[..., 1]),
                               rtol=1e-5, atol=1e-4)
    turned = np.degrees(np.arctan2(ab2[..., 1], ab2[..., 0]) - np.arctan2(ab[..., 1], ab[..., 0]))
    np.testing.assert_allclose(np.cos(np.radians(turned - hue)), 1.0, atol=1e-5)
    assert np.array_equal(L2, L)


def test_zero_params_are_the_identity_bit_for_bit():
    L, ab = _lab(1)
    L2, ab2 = apply_edit(L, ab, EditParams())
    assert np.array_equal(L2, L) and np.array_equal(ab2, ab)
    L3, ab3 = apply_edit(L, ab, {"hue_deg": 0, "saturation": 1, "warmth": 0, "brightness": 0})
    assert np.array_equal(L3, L) and np.array_equal(ab3, ab)
    assert ab2 is not ab  # a new array, the input is not modified in place


@pytest.mark.parametrize("b", [-50.0, -20.0, -3.0, 3.0, 20.0, 50.0])
def test_brightness_stays_in_range_is_monotonic_and_moves_mid_gray_exactly(b):
    L = np.linspace(0, 100, 1001, dtype=np.float32)
    out = apply_brightness(L, b)
    assert out.min() >= 0.0 and out.max() <= 100.0
    assert np.all(np.diff(out) >= -1e-5)
    assert out[500] == pytest.approx(50.0 + b, abs=1e-4)
    # the end that the edit moves towards stays fixed
    assert out[-1 if b > 0 else 0] == pytest.approx(100.0 if b > 0 else 0.0, abs=1e-4)
    L2, ab2 = apply_edit(L[None], np.zeros((1, L.size, 2), np.float32), EditParams(brightness=b))
    assert np.array_equal(L2[0], out) and not ab2.any()


def test_saturation_and_warmth():
    L = np.float32([[0.0, 50.0, 100.0]])
    ab = np.float32([[[10.0, -20.0]] * 3])
    _, gray = apply_edit(L, ab, EditParams(saturation=0.0))
    assert not gray.any()
    _, sat = apply_edit(L, ab, EditParams(saturation=1.5))
    np.testing.assert_allclose(sat, ab * 1.5)
    _, warm = apply_edit(L, ab, EditParams(warmth=1.0))
    d = warm - ab
    # towards orange-yellow (+a, +b; mostly +b) in the mid-tones, none at black and white
    assert d[0, 1, 1] > d[0, 1, 0] > 0 and np.hypot(*d[0, 1]) == pytest.approx(20.0, abs=1e-3)
    np.testing.assert_allclose(d[0, [0, 2]], 0.0, atol=1e-4)
    _, cool = apply_edit(L, ab, EditParams(warmth=-1.0))
    np.testing.assert_allclose(cool - ab, -d, atol=1e-4)


def test_bad_params_are_refused_with_the_range():
    with pytest.raises(EditError, match=r"saturation must be in \[0, 4\]"):
        EditParams(saturation=-1)
    with pytest.raises(EditError, match="hue_deg"):
        EditParams(hue_deg=400)
    with pytest.raises(EditError, match="unknown edit parameter"):
        EditParams.from_dict({"contrast": 2})
    with pytest.raises(EditError, match="region"):
        normalize_edit({"params": {"hue_deg": 10}})


# ------------------------------------------------------------------------------------------
# fusers
# ------------------------------------------------------------------------------------------


def _disc_clip(T=6, H=48, W=64, r=14.0, seed=0, noise_px=0.0):
    """Static textured clip; mask = a disc whose border jitters by up to ``noise_px``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    base = 40 + 20 * np.sin(xx / 5) + 10 * np.cos(yy / 7)
    L = np.repeat(base[None], T, 0).astype(np.float32)
    ab0 = np.stack([np.full((T, H, W), 5, np.float32), np.full((T, H, W), -8, np.float32)], -1)
    ab1 = ab0 + np.float32([30, 20])
    dist = np.hypot(xx - W / 2, yy - H / 2)
    masks = np.stack([(dist < r + (rng.uniform(-noise_px, noise_px, (H, W)) if noise_px else 0))
                      .astype(np.float32) for _ in range(T)])
    return L, ab0, ab1, masks, dist


@pytest.mark.parametrize("name", ["hard", "feather", "guided"])
def test_fusers_are_exact_outside_the_band_and_in_between_inside(name):
    L, ab0, ab1, mask, dist = _disc_clip(noise_px=1.5)
    fuser = FUSERS.create(name)
    out = fuser.fuse_clip(L, ab0, ab1, mask)
    assert out.shape == ab0.shape and out.dtype == np.float32
    band = 10.0  # >= every engine's band (guided 8 px, feather 3 sigma = 9 px) + mask noise
    inside, outside = dist < 14 - 1.5 - band, dist > 14 + 1.5 + band
    assert np.array_equal(out[:, inside], ab1[:, inside])
    assert np.array_equal(out[:, outside], ab0[:, outside])
    lo, hi = np.minimum(ab0, ab1), np.maximum(ab0, ab1)
    assert np.all(out >= lo - 1e-4) and np.all(out <= hi + 1e-4)
    if name != "hard":  # a soft transition: some band pixels strictly between
        ring = (np.abs(dist - 14) < 2)
        frac = (out[:, ring, 0] - ab0[:, ring, 0]) / 30.0
        assert ((frac > 0.05) & (frac < 0.95)).mean() > 0.3


def test_guided_fuser_is_stable_on_a_static_clip_with_a_noisy_mask():
    L, ab0, ab1, mask, dist = _disc_clip(T=12, noise_px=3.0, seed=3)
    band = np.abs(dist - 14) < 8

    def flicker(name):
        out = FUSERS.create(name).fuse_clip(L, ab0, ab1, mask)
        return float(np.abs(np.diff(out[4:], axis=0))[:, band].mean())  # after the warm-up

    hard, feather, guided = flicker("hard"), flicker("feather"), flicker("guided")
    assert guided < 0.5 * hard and guided < 0.6 * feather, (hard, feather, guided)


def test_guided_fuser_keeps_state_across_windows_and_reset_forgets_it():
    L, ab0, ab1, mask, _ = _disc_clip(T=8, noise_px=2.0, seed=5)
    whole = FUSERS.create("guided").fuse_clip(L, ab0, ab1, mask)
    f = FUSERS.create("guided")
    parts = np.concatenate([f.fuse_clip(L[s:s + 3], ab0[s:s + 3], ab1[s:s + 3], mask[s:s + 3])
                            for s in range(0, 8, 3)])
    np.testing.assert_allclose(parts, whole, atol=1e-5)
    f.reset()
    again = f.fuse_clip(L, ab0, ab1, mask)
    np.testing.assert_allclose(again, whole, atol=1e-5)


def test_guided_alpha_follows_a_luminance_edge_near_a_misplaced_mask():
    H, W, T = 32, 64, 3
    L = np.full((T, H, W), 30, np.float32)
    L[:, :, 32:] = 70  # the object's true border is at x = 32
    ab0 = np.zeros((T, H, W, 2), np.float32)
    ab1 = ab0 + 40
    mask = np.zeros((T, H, W), np.float32)
    mask[:, :, 30:] = 1  # the coarse mask starts 2 px too early
    out = FUSERS.create("guided").fuse_clip(L, ab0, ab1, mask)[..., 0] / 40
    feather = FUSERS.create("feather").fuse_clip(L, ab0, ab1, mask)[..., 0] / 40
    hard = FUSERS.create("hard").fuse_clip(L, ab0, ab1, mask)[..., 0] / 40
    # guided: full edit right behind the true edge, a step at it, less in front of it
    assert out[:, :, 32:36].min() > 0.99 and feather[:, :, 32:34].max() < 0.9
    assert (out[:, :, 32] - out[:, :, 31]).min() > 0.25
    assert np.abs(np.diff(feather, axis=2)).max() < 0.15
    assert out[:, :, 30:32].mean() < 0.8 < hard[:, :, 30:32].mean()
    assert out[:, :, :28].max() < 0.01  # no halo further out


def test_fuse_lab_blends_luminance_with_the_same_weight():
    L, ab0, ab1, mask, dist = _disc_clip(noise_px=0.0)
    L_e = apply_brightness(L, 20)
    for name in ("feather", "guided"):
        L_out, ab_out = FUSERS.create(name).fuse_lab(L, L_e, ab0, ab1, mask)
        w_ab = (ab_out[..., 0] - ab0[..., 0]) / 30
        w_L = (L_out - L) / np.where(L_e != L, L_e - L, 1)
        np.testing.assert_allclose(w_L[L_e != L], w_ab[L_e != L], atol=1e-4)


def test_the_default_fuse_lab_of_a_chroma_only_engine():
    class ChromaOnly(Fuser):  # an engine (e.g. a learned one) that only implements fuse_clip
        name, version = "test-chroma-only", "0"

        def fuse_clip(self, L, ab_original, ab_edited, mask):
            return FUSERS.create("feather").fuse_clip(L, ab_original, ab_edited, mask)

    L, ab0, ab1, mask, dist = _disc_clip()
    L_e = L + 10
    L_out, ab_out = ChromaOnly().fuse_lab(L, L_e, ab0, ab1, mask)
    np.testing.assert_allclose(L_out[:, dist < 3], L_e[:, dist < 3], atol=1e-4)
    np.testing.assert_allclose(L_out[:, dist > 30], L[:, dist > 30], atol=1e-4)
    # brightness-only edit (no chroma change): the blurred mask carries L
    L_out2, _ = ChromaOnly().fuse_lab(L, L_e, ab0, ab0.copy(), mask)
    assert np.all((L_out2 >= L - 1e-4) & (L_out2 <= L_e + 1e-4))


def test_band_helpers_and_interface_checks():
    m = np.zeros((1, 9), np.uint8)
    m[0, 4:] = 1
    assert border_distance(m)[0, 3] == 0.5 and border_distance(np.ones((2, 2)))[0, 0] == np.inf
    w = band_weight(m, 4.0)[0]
    assert w[3] == 1.0 and 0 < w[1] < 1 and band_weight(m, 2.0)[0, 0] == 0.0
    L, ab0, ab1, mask, _ = _disc_clip()
    with pytest.raises(ValueError, match="mask must be"):
        FUSERS.create("guided").fuse_clip(L, ab0, ab1, mask[:, :-1])
    assert set(FUSERS.names()) >= {"hard", "feather", "guided"}


# ------------------------------------------------------------------------------------------
# the edit task on a shot file
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fuser", ["guided", "feather"])
def test_edit_shot_changes_the_region_only_and_is_deterministic(tmp_path, two_region_shot, fuser):
    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.media import count_frames, iter_frames, sha256_file

    src, frames, labels = two_region_shot()
    before = sha256_file(src)
    edit = {"region": {"labels": [1]}, "params": {"hue_deg": -30}, "id": 7}
    res = edit_shot(src, tmp_path / "restored.mkv", [edit], labels_path=labels, fuser=fuser)
    assert res.n_frames == 8 and count_frames(res.out_path) == 8 and sha256_file(src) == before
    assert res.engine["engine"] == "regional-edit" and res.engine["params"]["region_edit_ids"] == [7]
    assert res.engine["params"]["fuser"]["engine"] == fuser and res.mean_shift_ab > 1
    out = list(iter_frames(res.out_path, pix_fmt="rgb24"))
    for f_in, f_out in zip(frames, out):
        assert np.array_equal(f_out[:, 36:], f_in[:, 36:])  # beyond the band: bit-exact
        lab_in, lab_out = rgb_to_lab(f_in[:, :12]), rgb_to_lab(f_out[:, :12])
        np.testing.assert_allclose(lab_out[..., 0], lab_in[..., 0], atol=1.0)  # L kept
        h_in = np.degrees(np.arctan2(lab_in[..., 2], lab_in[..., 1])).mean()
        h_out = np.degrees(np.arctan2(lab_out[..., 2], lab_out[..., 1])).mean()
        assert abs(((h_out - h_in + 180) % 360) - 180 + 30) < 5  # hue turned by ~-30 degrees
    again = edit_shot(src, tmp_path / "again.mkv", [edit], labels_path=labels, fuser=fuser)
    assert sha256_file(again.out_path) == sha256_file(res.out_path)


def test_edit_shot_target_colour_edit_and_missing_labels(tmp_path, two_region_shot):
    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.edit import regional_edit, target_ab
    from reel.tasks.media import iter_frames

    src, frames, labels = two_region_shot()
    res = regional_edit(src, tmp_path / "t.mkv", {"region": {"labels": [1]}, "target_rgb": "#3050c0"},
                        labels_path=labels, feather_px=0.0)
    out = next(iter(iter_frames(res.out_path, pix_fmt="rgb24")))
    np.testing.assert_allclose(rgb_to_lab(out)[:, :20, 1:].mean((0, 1)), target_ab("#3050c0"), atol=3.0)
    assert res.engine["params"]["target_rgb"] == "#3050c0"
    with pytest.raises(EditError, match="labels.npz"):
        edit_shot(src, tmp_path / "x.mkv", [{"region": {"labels": [1]}, "params": {"hue_deg": 5}}])


def test_region_stats_lists_areas_and_mean_colours(tmp_path, two_region_shot):
    src, frames, labels = two_region_shot()
    stats = region_stats(src, labels)
    assert [s.region_id for s in stats] == [0, 1] or [s.region_id for s in stats] == [1, 0]
    by_id = {s.region_id: s for s in stats}
    assert by_id[1].area_fraction == pytest.approx(0.5, abs=0.01) and by_id[1].frames == 8
    assert by_id[1].mean_a < -10 < by_id[0].mean_b  # green region, orange-ish rest
    assert by_id[1].hex_rgb.startswith("#") and len(by_id[1].hex_rgb) == 7


# ------------------------------------------------------------------------------------------
# synthetic edits and the benchmark metrics
# ------------------------------------------------------------------------------------------


def _colour_clip(T=6, H=36, W=48):
    yy, xx = np.mgrid[:H, :W]
    clip = np.zeros((T, H, W, 3), np.uint8)
    for t in range(T):
        clip[t] = (180, 170, 150)
        blob = (xx - 18 - t) ** 2 + (yy - 18) ** 2 < 100
        clip[t][blob] = (40, 80, 200)
        clip[t][::3] = np.clip(clip[t][::3].astype(int) + 8, 0, 255)
    return clip


def test_synthetic_regional_edit_ground_truth():
    clip = _colour_clip()
    s = synthetic_regional_edit(clip, seed=2, n_clusters=2, area_range=(0.05, 0.5))
    m = s.true_mask > 0.5
    assert s.true_mask.shape == (6, 36, 48) and 0.05 < m.mean() < 0.5
    assert np.array_equal(s.ab_ideal[m], s.ab_edited[m]) and np.array_equal(s.ab_ideal[~m], s.ab[~m])
    assert np.array_equal(s.L_ideal[~m], s.L[~m])
    assert 0 < (s.coarse_mask != s.true_mask).mean() < 0.2  # coarse but close
    assert s.band[m].any() and not s.band[0, 0, 0]
    again = synthetic_regional_edit(clip, seed=2, n_clusters=2, area_range=(0.05, 0.5))
    assert again.params == s.params and np.array_equal(again.coarse_mask, s.coarse_mask)


def test_benchmark_scores_the_ideal_as_perfect_and_hard_seams():
    from reel.flows.benchmarks.fusion import run_fuser, score

    s = synthetic_regional_edit(_colour_clip(), seed=0, n_clusters=2, area_range=(0.05, 0.5),
                                params=EditParams(hue_deg=90, saturation=1.3))
    ideal = score(s, s.L_ideal, s.ab_ideal)
    assert ideal["de2000_nonedge"] == 0 and ideal["de2000_band"] == 0 and ideal["seam"] == 0
    L, ab, sec = run_fuser(FUSERS.create("hard"), s)
    hard = score(s, L, ab)
    assert hard["de2000_band"] > 0 and hard["seam"] > 0 and sec >= 0
    assert hard["de2000_nonedge"] < hard["de2000_band"]


def test_flow_adapter_runs_a_gpu_capable_fuser_on_the_device_the_runner_chose(tmp_path,
                                                                                two_region_shot):
    """The restore flow routes the edit stage through flows/runners.gpu_stage_task, which passes
    ``device=`` for fusers that declare ``uses_gpu`` (learned-fuse); the adapter hands it on."""
    from types import SimpleNamespace

    from reel.flows import runners
    from reel.tasks.edit import _edit_for_flow
    from reel.tasks.fusers import FUSERS

    src, _, labels = two_region_shot(T=4)
    cls = FUSERS.get("learned-fuse")
    assert cls.uses_gpu and runners.accepts_param(cls, "device")
    edit = {"region": {"labels": [1]}, "params": {"hue_deg": 30.0}}
    res = _edit_for_flow(SimpleNamespace(out_path=src), tmp_path / "out.mkv", edits=[edit],
                         segmentation=SimpleNamespace(labels_path=labels),
                         fuser="learned-fuse", device="cpu")
    assert res.out_path.is_file() and res.engine["params"]["fuser"]["engine"] == "learned-fuse"
    # the device is where it runs, not a parameter of the result: same bytes without it
    again = _edit_for_flow(SimpleNamespace(out_path=src), tmp_path / "again.mkv", edits=[edit],
                           segmentation=SimpleNamespace(labels_path=labels), fuser="learned-fuse")
    assert res.out_path.read_bytes() == again.out_path.read_bytes()
