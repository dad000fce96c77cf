"""Tests of tasks/harmonize.py on small synthetic Lab frames (and, with media.py, a tiny file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab
from reel.tasks.harmonize import (
    HARMONIZERS,
    PaletteColors,
    ShotChromaStats,
    harmonize_shot,
)

H, W = 48, 64
BG_AB = np.array([5.0, 25.0])        # warm, slightly yellow scene
BLOTCH_AB = np.array([80.0, 0.0])  # magenta colorizer blotch
ORANGE = np.array([60.0, 40.0, 45.0])  # palette colour (L, a, b)


def _scene(t: int = 0, *, blotch_ab=BLOTCH_AB, label_scale: int = 2):
    """L, ab (H, W, 2) with a square region, and labels at 1/label_scale resolution."""
    rng = np.random.default_rng(100 + t)
    L = np.clip(50 + 15 * rng.standard_normal((H, W)), 5, 95).astype(np.float32)
    ab = np.empty((H, W, 2), np.float32)
    ab[:] = BG_AB + 2.0 * rng.standard_normal((H, W, 2))
    y0, x0 = 12 + t, 16 + t  # the region moves one pixel per frame
    ab[y0:y0 + 16, x0:x0 + 20] = blotch_ab + 3.0 * rng.standard_normal((16, 20, 2))
    full = np.zeros((H, W), np.uint16)
    full[y0:y0 + 16, x0:x0 + 20] = 1
    labels = full[::label_scale, ::label_scale].copy()
    return L, ab, labels, full.astype(bool)


def _palette():
    cols = np.array([[70.0, *BG_AB], ORANGE, [30.0, -20.0, 10.0]], np.float32)
    return PaletteColors(cols, np.array([0.5, 0.3, 0.2], np.float32))


def _fitted(engine="palette-stats", palette=None, n_frames=4, **params):
    h = HARMONIZERS.create(engine, **params)
    stats = ShotChromaStats()
    for t in range(n_frames):
        _, ab, labels, _ = _scene(t)
        # statistics at label resolution, as harmonize_shot gathers them
        stats.update(ab[::2, ::2], labels)
    h.fit(stats, palette)
    return h


def test_out_of_palette_region_pulled_toward_palette_background_untouched():
    h = _fitted(palette=_palette(), strength=0.7, feather_px=3.0)
    assert h.n_regions_adjusted == 1
    L, ab, labels, region = _scene(1)
    out = h.apply(L, ab, labels)
    target = ORANGE[1:]  # nearest palette colour to the blotch in ab
    pal_ab = _palette().colors_lab[:, 1:]
    assert np.argmin(np.linalg.norm(pal_ab - BLOTCH_AB, axis=1)) == 1
    from scipy.ndimage import binary_dilation, binary_erosion

    # Whole region: clearly closer; its core (away from the feathered rim): strength 0.7
    # removes ~70 % of the distance.
    before = np.linalg.norm(ab[region].mean(0) - target)
    after = np.linalg.norm(out[region].mean(0) - target)
    assert after < 0.6 * before
    core = binary_erosion(region, iterations=7)
    before = np.linalg.norm(ab[core].mean(0) - target)
    after = np.linalg.norm(out[core].mean(0) - target)
    assert 0.2 * before < after < 0.4 * before
    # Background farther than the feather support (3 sigma = 9 px, plus label upsampling) is
    # bit-identical.

    near = binary_dilation(region, np.ones((3, 3), bool), iterations=12)  # square kernel support
    assert np.array_equal(out[~near], ab[~near])
    # The background statistics did not move.
    assert np.allclose(out[~region].mean(0), ab[~region].mean(0), atol=1.0)


def test_region_close_to_palette_is_left_alone():
    # Far from the background but an orange that the palette allows: not an outlier.
    h = HARMONIZERS.create("palette-stats")
    stats = ShotChromaStats()
    L, ab, labels, _ = _scene(0, blotch_ab=ORANGE[1:] + 5.0)
    stats.update(ab[::2, ::2], labels)
    h.fit(stats, _palette())
    assert h.n_regions_adjusted == 0
    assert np.array_equal(h.apply(L, ab, labels), ab)
    # Without a palette the same region is far from the background and gets pulled to it.
    h.fit(stats, None)
    assert h.n_regions_adjusted == 1
    out = h.apply(L, ab, labels)
    region = labels.repeat(2, 0).repeat(2, 1).astype(bool)
    assert np.linalg.norm(out[region].mean(0) - BG_AB) < np.linalg.norm(ab[region].mean(0) - BG_AB)


def test_neutral_region_never_colored():
    h = HARMONIZERS.create("palette-stats")
    stats = ShotChromaStats()
    L, ab, labels, _ = _scene(0, blotch_ab=np.array([0.0, 0.0]))
    stats.update(ab[::2, ::2], labels)
    h.fit(stats, PaletteColors(np.array([[50, 70, 60]], np.float32), np.ones(1, np.float32)))
    assert h.n_regions_adjusted == 0


def test_feathering_leaves_no_hard_seam():
    L, ab, labels, region = _scene(0)
    row = 20
    xs = slice(0, W)
    hard = _fitted(palette=_palette(), feather_px=0.0).apply(L, ab, labels)
    soft = _fitted(palette=_palette(), feather_px=4.0).apply(L, ab, labels)
    shift_hard = np.linalg.norm(hard[row, xs] - ab[row, xs], axis=1)
    shift_soft = np.linalg.norm(soft[row, xs] - ab[row, xs], axis=1)
    total = shift_hard.max()
    assert total > 20
    # Hard edges change the shift by (almost) all of it in one pixel; feathered ones spread it.
    assert np.abs(np.diff(shift_hard)).max() > 0.8 * total
    assert np.abs(np.diff(shift_soft)).max() < 0.3 * total


def test_luminance_preserved_after_recombination():
    h = _fitted(palette=_palette(), strength=1.0)
    L, ab, labels, _ = _scene(2)
    rgb = lab_to_rgb(L, ab)
    lab = rgb_to_lab(rgb)
    out_ab = h.apply(lab[..., 0], lab[..., 1:], labels)
    assert not np.allclose(out_ab, lab[..., 1:])
    rgb2 = lab_to_rgb(lab[..., 0], out_ab)
    L2 = rgb_to_lab(rgb2)[..., 0]
    mse = float(np.mean((L2.astype(np.float64) - lab[..., 0]) ** 2))
    psnr = 10 * np.log10(100.0 ** 2 / mse) if mse > 0 else np.inf
    assert psnr >= 50.0


def test_identity_engine_returns_same_ab():
    h = HARMONIZERS.create("none")
    L, ab, labels, _ = _scene(0)
    h.fit(None, _palette())
    assert h.stats_stride(100) is None
    assert not h.frame_changes(labels)
    assert np.array_equal(h.apply(L, ab, labels), ab)


def test_transform_is_deterministic_and_constant_over_the_shot():
    a = _fitted(palette=_palette())
    b = _fitted(palette=_palette())
    assert a.describe() == b.describe()
    for t in range(3):
        L, ab, labels, _ = _scene(t)
        assert np.array_equal(a.apply(L, ab, labels), b.apply(L, ab, labels))
    # Same chroma in two frames -> same output chroma (one transform per shot: no flicker).
    L, ab, labels, region = _scene(0)
    out1 = a.apply(L, ab, labels)
    out2 = a.apply(L + 3.0, ab, labels)
    assert np.array_equal(out1, out2)


def test_global_mode_without_labels_moves_cast_toward_palette_mean():
    h = HARMONIZERS.create("palette-stats", strength=1.0)
    ab = np.zeros((H, W, 2), np.float32) + np.array([-40.0, -40.0], np.float32)  # cyan cast
    stats = ShotChromaStats()
    stats.update(ab)
    pal = _palette()
    h.fit(stats, pal)
    assert h.n_regions_adjusted == 1
    out = h.apply(np.full((H, W), 50, np.float32), ab, None)
    assert np.allclose(out, pal.mean_ab, atol=1e-3)


def test_params_validated():
    with pytest.raises(ValueError):
        HARMONIZERS.create("palette-stats", strength=1.5)
    with pytest.raises(KeyError):
        HARMONIZERS.create("no-such-engine")


def test_harmonize_shot_file(tmp_path):
    media = pytest.importorskip("reel.tasks.media")
    n = 6
    frames, labels = [], []
    for t in range(n):
        L, ab, lab, _ = _scene(t)
        frames.append(lab_to_rgb(L, ab))
        labels.append(lab)
    src = tmp_path / "shot.mkv"
    with media.FrameWriter(src, W, H, "24/1") as w:
        for f in frames:
            w.write(f)
    np.savez_compressed(tmp_path / "labels.npz", labels=np.stack(labels))
    pal = _palette()
    (tmp_path / "palette.json").write_text(json.dumps({
        "schema_version": 1, "k": 3, "seed": 0,
        "colors_lab": pal.colors_lab.tolist(), "weights": pal.weights.tolist(),
    }))
    kw = dict(labels_path=tmp_path / "labels.npz", palette_path=tmp_path / "palette.json",
              feather_px=3.0)
    r1 = harmonize_shot(src, tmp_path / "h1.mkv", **kw)
    r2 = harmonize_shot(src, tmp_path / "h2.mkv", **kw)
    assert r1.n_frames == n and r1.n_regions_adjusted == 1 and r1.mean_shift_ab > 1.0
    assert r1.engine["engine"] == "palette-stats"
    out1 = list(media.iter_frames(r1.out_path, pix_fmt="rgb24"))
    out2 = list(media.iter_frames(r2.out_path, pix_fmt="rgb24"))
    assert all(np.array_equal(a, b) for a, b in zip(out1, out2))
    src_frames = list(media.iter_frames(src, pix_fmt="rgb24"))
    for a, b in zip(src_frames, out1):
        La, Lb = rgb_to_lab(a)[..., 0], rgb_to_lab(b)[..., 0]
        assert 10 * np.log10(1e4 / max(np.mean((La - Lb) ** 2), 1e-12)) >= 50.0
        assert np.array_equal(a[:2], b[:2])  # top rows are far from the region: untouched bytes
    kw.pop("feather_px")
    ident = harmonize_shot(src, tmp_path / "id.mkv", engine="none", **kw)
    assert ident.mean_shift_ab == 0.0
    assert all(np.array_equal(a, b) for a, b in
               zip(src_frames, media.iter_frames(ident.out_path, pix_fmt="rgb24")))


def test_over_segmented_scene_only_the_outlier_moves():
    # Background cut into 12 superpixel-like tiles; the blotch is one more region.
    L, ab, _, region = _scene(0)
    full = (np.arange(H)[:, None] // 16) * 4 + (np.arange(W)[None, :] // 16) + 1
    full = np.where(region, 0, full).astype(np.uint16)
    stats = ShotChromaStats()
    stats.update(ab, full)
    h = HARMONIZERS.create("palette-stats", feather_px=2.0)
    h.fit(stats, None)
    adjusted = [r["label"] for r in h.region_report if r["adjusted"]]
    assert adjusted == [0]
    out = h.apply(L, ab, full)
    assert np.linalg.norm(out[region].mean(0) - BG_AB) < 0.5 * np.linalg.norm(ab[region].mean(0) - BG_AB)
