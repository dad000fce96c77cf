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
    # a caller that knows the frame count (the flow: colorization's) spares the counting decode
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(media, "probe", lambda *a, **k: pytest.fail("n_frames was given: no probe"))
        r2 = harmonize_shot(src, tmp_path / "h2.mkv", n_frames=n, **kw)
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


# temporal-stats -------------------------------------------------------------------------------
def _drifting(n=30, noise=0.0, seed=0):
    """Frames whose region chroma drifts (a from 60 to 89) over a constant background."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        ab = np.empty((24, 32, 2), np.float32)
        ab[:] = BG_AB
        lab = np.zeros((24, 32), np.uint16)
        lab[6:18, 8:24] = 1
        ab[6:18, 8:24] = (60.0 + t + noise * rng.standard_normal(), -40.0)
        out.append((ab, lab))
    return out


def _fit_engine(engine, frames, **params):
    h = HARMONIZERS.create(engine, feather_px=0.0, **params)
    st = ShotChromaStats(keep_frames=h.keep_frame_stats)
    for t, (ab, lab) in enumerate(frames):
        st.update(ab, lab, t)
    h.fit(st, None)
    return h


def test_temporal_stats_follows_a_drifting_region_shot_constant_does_not():
    frames = _drifting()
    L = np.full((24, 32), 50.0, np.float32)
    errs = {}
    for engine in ("temporal-stats", "palette-stats"):
        h = _fit_engine(engine, frames, strength=1.0, transfer_std=False,
                        distance_threshold_ab=10.0,
                        **({"temporal_sigma_frames": 2.0} if engine == "temporal-stats" else {}))
        assert h.n_regions_adjusted == 1
        errs[engine] = max(float(np.linalg.norm(h.apply(L, ab, lab, t)[12, 16] - BG_AB))
                           for t, (ab, lab) in enumerate(frames))
        # the background is never touched
        ab0, lab0 = frames[0]
        assert np.array_equal(h.apply(L, ab0, lab0, 0)[0, 0], ab0[0, 0])
    assert errs["temporal-stats"] < 2.0
    assert errs["palette-stats"] > 10.0


def test_temporal_stats_parameters_are_smooth_over_time():
    # the region's mean jitters by ±6 ab units from frame to frame: the applied offset must not
    frames = _drifting(n=40, noise=6.0, seed=3)
    h = _fit_engine("temporal-stats", frames, strength=1.0, transfer_std=False,
                    temporal_sigma_frames=6.0)
    offsets = np.array([h._tables_at(t)[1][1] for t in range(len(frames))])  # O of region 1
    raw = np.array([ab[12, 16] for ab, _ in frames])
    assert np.std(np.diff(offsets[:, 0])) < 0.25 * np.std(np.diff(raw[:, 0]))
    # deterministic
    h2 = _fit_engine("temporal-stats", frames, strength=1.0, transfer_std=False,
                     temporal_sigma_frames=6.0)
    assert np.array_equal(np.array([h2._tables_at(t)[1] for t in range(40)]),
                          np.array([h._tables_at(t)[1] for t in range(40)]))


def test_temporal_stats_equals_shot_level_for_a_constant_region():
    frames = [_scene(t)[1:3] for t in range(6)]
    frames = [(ab[::2, ::2], lab) for ab, lab in frames]
    pal = _palette()
    tmp = HARMONIZERS.create("temporal-stats", transfer_std=False, strength=0.7,
                             distance_threshold_ab=25.0, feather_px=0.0)
    ps = HARMONIZERS.create("palette-stats", transfer_std=False, strength=0.7, feather_px=0.0)
    for h in (tmp, ps):
        st = ShotChromaStats(keep_frames=h.keep_frame_stats)
        for t, (ab, lab) in enumerate(frames):
            st.update(ab, lab, t)
        h.fit(st, pal)
    L, ab, lab, region = _scene(2)
    a, b = tmp.apply(L, ab, lab, 2), ps.apply(L, ab, lab, 2)
    # same decision and target (the nearest palette colour); offsets within the noise
    assert tmp.n_regions_adjusted == ps.n_regions_adjusted == 1
    assert np.abs(a - b).max() < 2.0


def test_reinhard_global_moves_whole_frame_toward_palette():
    L, ab, labels, _ = _scene(0)
    st = ShotChromaStats()
    st.update(ab, None)
    h = HARMONIZERS.create("reinhard-global")
    h.fit(st, _palette())
    out = h.apply(L, ab)
    assert np.linalg.norm(out.reshape(-1, 2).mean(0) - _palette().mean_ab) < 1.0
    h.fit(st, None)  # no palette: nothing to transfer toward
    assert np.array_equal(h.apply(L, ab), ab)


# across shots ---------------------------------------------------------------------------------
from reel.tasks.harmonize import (  # noqa: E402
    FilmChromaShift,
    ShotEdgeStats,
    harmonize_film_plan,
    plan_film_chroma,
)

_LUM = np.full(256, 1 / 256)


def _edge(mean_ab, rms=20.0, luma=_LUM, end_ab=None):
    m = np.asarray(mean_ab, float)
    e = np.asarray(end_ab if end_ab is not None else mean_ab, float)
    return ShotEdgeStats(20, m, e, rms, rms, luma, luma, (m + e) / 2)


def test_film_plan_reduces_same_scene_jumps_and_is_bounded():
    plan = plan_film_chroma([_edge([0, 10]), _edge([0, 20]), _edge([0, 10])])
    assert all(a < 0.5 * b for a, b in zip(plan.jumps_after_ab, plan.jumps_before_ab))
    # the middle shot moves toward its neighbours, they toward it
    assert plan.shifts[1].offset_ab[1] < 0 < plan.shifts[0].offset_ab[1]
    big = plan_film_chroma([_edge([0, 0]), _edge([0, 60])], chroma_scene_change_ab=1e9)
    assert all(np.hypot(*s.offset_ab) <= 6.0 + 1e-9 for s in big.shifts)


def test_film_plan_leaves_scene_changes_gray_and_fixed_shots_alone():
    dark = np.zeros(256); dark[20:40] = 1 / 20
    bright = np.zeros(256); bright[200:220] = 1 / 20
    plan = plan_film_chroma([_edge([0, 10], luma=dark), _edge([0, 25], luma=bright)])
    assert plan.cut_weights == [0.0] and all(s.is_identity for s in plan.shifts)
    plan = plan_film_chroma([_edge([0, 10], rms=0.5), _edge([0, 25])])  # first shot is gray
    assert all(s.is_identity for s in plan.shifts)
    plan = plan_film_chroma([_edge([0, 10]), _edge([0, 20])], fixed=[True, False])
    assert plan.shifts[0] == FilmChromaShift()
    assert plan.shifts[1].offset_ab[1] < -1.0
    assert plan.jumps_after_ab[0] < plan.jumps_before_ab[0]


def _shot_file(path, ab_cast, n=8, seed=0):
    from reel.tasks import media
    rng = np.random.default_rng(seed)
    with media.FrameWriter(path, 48, 32, "25/1") as w:
        for t in range(n):
            L = np.clip(55 + 10 * rng.standard_normal((32, 48)), 5, 95).astype(np.float32)
            ab = np.empty((32, 48, 2), np.float32)
            ab[:] = ab_cast
            ab += 2.0 * rng.standard_normal((32, 48, 2)).astype(np.float32)
            w.write(lab_to_rgb(L, ab))
    return path


def test_film_plan_on_files_reduces_the_qc_cut_jump(tmp_path):
    from reel.tasks import media, qc
    a = _shot_file(tmp_path / "a.mkv", (5.0, 20.0), seed=1)
    b = _shot_file(tmp_path / "b.mkv", (5.0, 32.0), seed=2)
    plan = harmonize_film_plan([a, b, None], fixed=[False, False, False])
    assert plan.cut_weights[0] > 0.5 and plan.jumps_before_ab[1] is None
    outs = []
    for p, s in zip((a, b), plan.shifts):
        r = harmonize_shot(p, p.with_name(p.stem + "-h.mkv"), engine="none",
                           film_gain=s.gain, film_offset_ab=s.offset_ab)
        assert r.engine["params"]["film_offset_ab"] == [round(v, 4) for v in s.offset_ab]
        outs.append(list(media.iter_frames(r.out_path, pix_fmt="rgb24")))
        # luminance kept while every pixel's chroma moved
        src = list(media.iter_frames(p, pix_fmt="rgb24"))
        La, Lb = rgb_to_lab(src[0])[..., 0], rgb_to_lab(outs[-1][0])[..., 0]
        assert np.abs(La - Lb).mean() < 0.5
    before = qc.cut_jump(list(media.iter_frames(a, pix_fmt="rgb24"))[-3:],
                         list(media.iter_frames(b, pix_fmt="rgb24"))[:3])
    after = qc.cut_jump(outs[0][-3:], outs[1][:3])
    assert after < 0.6 * before


def test_film_plan_uses_edge_statistics_read_earlier(tmp_path):
    """The flow reads each shot's edges when it is colorized; the plan must come out the same
    as when it reads them itself, and only read the shots it was not given."""
    from reel.tasks import harmonize as hz

    a = _shot_file(tmp_path / "a.mkv", (5.0, 20.0), seed=1)
    b = _shot_file(tmp_path / "b.mkv", (5.0, 32.0), seed=2)
    whole = harmonize_film_plan([a, b], fixed=[False, False])
    ea = hz.shot_edge_stats(a)
    given = harmonize_film_plan([a, b], fixed=[False, False], edges=[ea, None])
    assert [(s.gain, s.offset_ab) for s in given.shifts] == \
        [(s.gain, s.offset_ab) for s in whole.shifts]
    # a given statistic is used as it is: a's file is not read again
    moved = hz.ShotEdgeStats(ea.n_frames, ea.first_mean_ab, ea.last_mean_ab + 8.0,
                             ea.first_rms_chroma, ea.last_rms_chroma, ea.first_luma,
                             ea.last_luma, ea.mean_ab)
    other = harmonize_film_plan([a, b], fixed=[False, False], edges=[moved, None])
    assert other.jumps_before_ab[0] != whole.jumps_before_ab[0]
    # a statistic read another way (here: at another width) is read again, the asked way
    narrow = hz.shot_edge_stats(a, analysis_width_px=16)
    assert narrow.width_px == 16 and not np.array_equal(narrow.first_luma, ea.first_luma)
    again = harmonize_film_plan([a, b], fixed=[False, False], edges=[narrow, None])
    assert [(s.gain, s.offset_ab) for s in again.shifts] == \
        [(s.gain, s.offset_ab) for s in whole.shifts]
    with pytest.raises(ValueError, match="edge statistics"):
        harmonize_film_plan([a, b], edges=[ea])


def test_edge_stats_accumulator_keeps_only_the_shot_ends():
    from reel.tasks.harmonize import EdgeStatsAccumulator

    acc = EdgeStatsAccumulator(edge_frames=2, width_px=8)
    red, gray, blue = ((200, 40, 40), (128, 128, 128), (40, 40, 200))
    for colour in (red, gray, gray, gray, blue):
        acc.add(np.tile(np.array(colour, np.uint8), (6, 16, 1)))
    s = acc.result()
    assert s.n_frames == 5 and (s.edge_frames, s.width_px) == (2, 8)
    # first = red + gray, last = gray + blue: a > 0 at the start, b < 0 at the end
    assert s.first_mean_ab[0] > 10 and s.last_mean_ab[1] < -10
    assert abs(s.first_luma.sum() - 1) < 1e-9 and np.count_nonzero(s.first_luma) == 2
    with pytest.raises(ValueError, match="no frames"):
        EdgeStatsAccumulator().result()
