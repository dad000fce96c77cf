"""Tests for reel.tasks.degrade: each old-film degradation on small generated frames."""

from __future__ import annotations

import numpy as np
import pytest

from reel.tasks import degrade

H, W = 60, 120


def _frame(value=None, seed=0) -> np.ndarray:
    if value is not None:
        return np.full((H, W), value, np.uint8)
    yy, xx = np.mgrid[:H, :W]
    return (60 + 120 * (xx / W) + 20 * np.sin(yy / 5.0)).astype(np.uint8)


def test_flicker_gains_range_and_determinism():
    g = degrade.flicker_gains(5000, 0.2, rng=3)
    assert g.shape == (5000,) and g.dtype == np.float64
    assert 0.8 <= g.min() and g.max() <= 1.2
    assert abs(g.mean() - 1.0) < 0.01 and abs(g.std() - 0.4 / np.sqrt(12)) < 0.01  # uniform ±20 %
    assert np.array_equal(g, degrade.flicker_gains(5000, 0.2, rng=3))
    assert not np.array_equal(g, degrade.flicker_gains(5000, 0.2, rng=4))
    with pytest.raises(ValueError):
        degrade.flicker_gains(3, 1.5)
    f = _frame(100)
    assert int(degrade.apply_gain(f, 1.2)[0, 0]) == 120
    assert int(degrade.apply_gain(f, 3.0)[0, 0]) == 255  # clipped, stays uint8


def test_grain_is_zero_mean_and_midtone_weighted():
    mid, dark = _frame(128), _frame(5)
    out_mid = degrade.add_grain(mid, 6.0, rng=1).astype(float)
    out_dark = degrade.add_grain(dark, 6.0, rng=1).astype(float)
    assert abs(out_mid.mean() - 128) < 0.3 and 5.0 < out_mid.std() < 7.0
    assert out_dark.std() < 0.6 * out_mid.std()
    assert np.array_equal(degrade.add_grain(mid, 6.0, rng=2), degrade.add_grain(mid, 6.0, rng=2))
    assert np.array_equal(mid, _frame(128))  # input untouched


def test_dust_makes_small_specks():
    f = _frame(128)
    out = degrade.add_dust(f, rng=7, n_specks=(4, 4), radius_px=(1.5, 2.5))
    changed = np.abs(out.astype(int) - 128) > 40
    assert 0 < changed.mean() < 0.03  # a few small blobs
    # specks are dirt (dark) or bright dust; the cores reach far from the gray
    core = out[np.abs(out.astype(int) - 128) > 80]
    assert core.size and ((core < 48) | (core > 208)).all()
    assert np.array_equal(out, degrade.add_dust(f, rng=7, n_specks=(4, 4), radius_px=(1.5, 2.5)))
    rgb = np.repeat(f[..., None], 3, axis=2)
    assert degrade.add_dust(rgb, rng=7).shape == rgb.shape


def test_scratches_are_vertical_persistent_lines():
    proc = degrade.ScratchProcess(W, max_scratches=2, birth_probability=1.0, life_frames=(20, 20),
                                  drift_px=0.3, rng=0)
    tracks = [proc.step() for _ in range(10)]
    assert all(len(t) == 2 for t in tracks)  # born at once, alive 20 frames
    xs = np.array([[x for x, _ in t] for t in tracks])
    assert np.abs(np.diff(xs, axis=0)).max() < 2.0  # drift slowly
    out = degrade.add_scratches(_frame(100), [(40.0, 1), (80.0, -1)], width_px=1.5, strength=0.6, rng=0)
    cols = out.astype(float).mean(axis=0)
    assert cols[40] > 150 and cols[80] < 70  # bright and dark lines over the whole height
    assert np.abs(cols[60] - 100) < 1
    assert (out[:, 40] > 120).mean() > 0.9
    assert np.array_equal(degrade.add_scratches(_frame(100), []), _frame(100))


def test_weave_and_translate():
    w = degrade.WeaveProcess(amplitude_px=1.5, rng=2)
    steps = np.array([w.step() for _ in range(3000)])
    assert abs(steps[:, 0].std() - 1.5) < 0.2 and abs(steps[:, 1].std() - 0.75) < 0.12
    assert np.corrcoef(steps[:-1, 0], steps[1:, 0])[0, 1] > 0.5  # smooth, not white noise
    f = _frame()
    assert np.array_equal(degrade.translate(f, 0, 0), f)
    moved = degrade.translate(f, 3, 0).astype(int)
    assert np.abs(moved[:, 10:] - f[:, 7:-3].astype(int)).max() <= 1
    half = degrade.translate(f, 0.5, 0).astype(float)
    ref = 0.5 * (f[:, 9:-1].astype(float) + f[:, 10:].astype(float))
    assert np.abs(half[:, 10:] - ref).max() <= 1.0


def test_misframe_shows_the_frame_line():
    f = _frame(200)
    down = degrade.misframe(f, 15, line_rows=4, line_level=10)
    assert (down[11:15] == 10).all() and (down[15:] == 200).all() and (down[:11] == 200).all()
    up = degrade.misframe(f, -15, line_rows=4)
    assert (up[H - 15: H - 11] < 20).all()
    assert np.array_equal(degrade.misframe(f, 0), f)
    g = _frame()
    moved = degrade.misframe(g, 15)
    assert np.array_equal(moved[15:], g[:-15])  # the picture moved down, unchanged
    with pytest.raises(ValueError):
        degrade.misframe(f, H)


def test_flash_washes_out():
    f = _frame()
    out = degrade.flash(f)
    assert out.mean() > f.mean() + 60
    assert (out == 255).mean() > 0.3  # highlights clip


def test_dissolve_is_a_linear_blend():
    a, b = [_frame(0)] * 12, [_frame(240)] * 12
    mix = degrade.dissolve(a, b)
    vals = [int(x[0, 0]) for x in mix]
    assert len(mix) == 12 and vals == sorted(vals)
    assert vals[0] == round(240 / 13) and vals[-1] == round(240 * 12 / 13)
    assert vals[5] < 120 < vals[6]  # the middle is frame n // 2
    with pytest.raises(ValueError):
        degrade.dissolve(a, b[:3])


def test_fade_through_black():
    a, b = [_frame(140)] * 6, [_frame(210)] * 6
    out = degrade.fade_through_black(a, b, n_black=2, black_level=0)
    vals = [int(x[0, 0]) for x in out]
    assert len(out) == 14 and vals[6] == vals[7] == 0
    assert vals[:6] == sorted(vals[:6], reverse=True) and vals[8:] == sorted(vals[8:])
    assert vals[0] == round(140 * 6 / 7) and vals[-1] == 180
    assert degrade.fade_through_black(a, b, 0, black_level=20)[5][0, 0] > 20


def test_old_film_chain():
    frames = [_frame()] * 20
    film = degrade.OldFilm(seed=5, misframe_rows={10: 12}, flash_frames=frozenset({4}))
    out = list(film.apply(frames))
    again = list(degrade.OldFilm(seed=5, misframe_rows={10: 12}, flash_frames=frozenset({4})).apply(frames))
    assert len(out) == 20 and all(o.shape == (H, W) and o.dtype == np.uint8 for o in out)
    assert all(np.array_equal(x, y) for x, y in zip(out, again))  # deterministic
    means = np.array([o.mean() for o in out])
    others = np.delete(means, 4)
    assert means[4] > others.max() + 30  # the flash frame
    assert others.std() > 1.0  # flicker
    # frames 10+ are misframed: the frame line is a dark band near row 12
    rows_after = np.mean([o.mean(axis=1) for o in out[12:]], axis=0)
    rows_before = np.mean([o.mean(axis=1) for o in out[:4]], axis=0)
    assert rows_after[8:12].mean() < 0.5 * rows_before[8:12].mean()
    other = list(degrade.OldFilm(seed=6).apply(frames))
    assert not all(np.array_equal(x, y) for x, y in zip(out, other))
