"""Tests of tasks/deflicker.py on small generated gray films."""

from __future__ import annotations

import numpy as np
import pytest

from reel.tasks.deflicker import (
    DEFLICKERERS,
    cut_luma_jumps,
    deflicker_film,
    deflicker_frames,
    frame_percentiles,
    luma_flicker,
    robust_local_linear,
    tone_lut,
)

H, W = 40, 56


def _picture(level: float, seed: int) -> np.ndarray:
    """A textured gray picture around ``level`` (float, not yet quantised)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-30, 30, W)[None, :] + np.linspace(-10, 10, H)[:, None]
    return level + x + 6 * rng.standard_normal((H, W))


def _film(n1=30, n2=30, flicker=0.07, seed=0):
    """Two shots (dark, bright) with multiplicative per-frame flicker; returns frames, shots."""
    rng = np.random.default_rng(seed)
    pics = (_picture(80, 1), _picture(150, 2))
    frames = []
    for t in range(n1 + n2):
        gain = 1 + flicker * rng.standard_normal()
        frames.append(np.clip(pics[t >= n1] * gain, 0, 255).astype(np.uint8))
    return frames, [(0, n1), (n1, n1 + n2)]


def test_flicker_removed_cut_jump_preserved_in_memory():
    frames, shots = _film()
    out = deflicker_frames(frames, shots)
    before = luma_flicker([f.mean() for f in frames], shots)
    after = luma_flicker([f.mean() for f in out], shots)
    assert after < 0.35 * before
    # first and last frame of every shot untouched: the luminance jump at the cut is exact
    for a, b in shots:
        assert np.array_equal(out[a], frames[a]) and np.array_equal(out[b - 1], frames[b - 1])
    assert cut_luma_jumps([f.mean() for f in out], shots) == cut_luma_jumps(
        [f.mean() for f in frames], shots)


def test_fade_and_clean_shots_are_kept():
    # a fade (linear brightness ramp) without flicker: nothing to remove, the shot is unchanged
    frames = [np.clip(_picture(40 + 4 * t, 5), 0, 255).astype(np.uint8) for t in range(30)]
    out = deflicker_frames(frames, [(0, 30)])
    assert all(np.array_equal(a, b) for a, b in zip(frames, out))
    # with flicker on top of the fade the ramp survives (mean follows the fade within 2 levels)
    rng = np.random.default_rng(9)
    flick = [np.clip(_picture(40 + 4 * t, 5) * (1 + 0.06 * rng.standard_normal()), 0, 255)
             .astype(np.uint8) for t in range(30)]
    out = deflicker_frames(flick, [(0, 30)])
    ramp = np.array([f.mean() for f in frames])
    got = np.array([f.mean() for f in out])
    assert np.abs(got - ramp)[3:-3].mean() < 2.0
    assert np.polyfit(np.arange(30), got, 1)[0] == pytest.approx(np.polyfit(np.arange(30), ramp, 1)[0], rel=0.1)


def test_single_frame_flash_is_replaced_by_the_trend():
    y = np.full(21, 100.0) + np.random.default_rng(0).normal(0, 0.3, 21)
    y[10] = 140.0
    fit = robust_local_linear(y, 3.0)
    assert abs(fit[10] - 100.0) < 1.0


def test_tone_lut_is_monotone_and_bounded():
    lut = tone_lut(np.array([20.0, 60, 100, 140, 200]), np.array([30.0, 65, 120, 150, 230]),
                   max_shift_gray=12)
    assert np.all(np.diff(lut.astype(int)) >= 0)
    assert np.abs(lut.astype(int) - np.arange(256)).max() <= 12
    assert frame_percentiles(np.full((10, 10), 7, np.uint8)).tolist() == [7.0] * 5


def test_deflicker_film_file(tmp_path):
    from reel.tasks import media

    frames, shots = _film(n1=24, n2=20, seed=4)
    src = tmp_path / "film.mkv"
    with media.FrameWriter(src, W, H, "16/1", pix_fmt_in="gray") as w:
        for f in frames:
            w.write(f)
    sha = media.sha256_file(src)
    r = deflicker_film(src, shots, tmp_path / "d.mkv", cache_key="k", analysis_width_px=W)
    assert r.changed and r.shots_changed == [0, 1] and r.n_frames == 44
    assert r.flicker_after < 0.4 * r.flicker_before
    assert r.cut_jumps_after == pytest.approx(r.cut_jumps_before)
    info = media.probe(r.out_path)
    assert info.n_frames == 44 and info.display_size == (W, H) and str(info.fps) in ("16", "16/1")
    assert media.sha256_file(src) == sha  # the original is only read
    out = list(media.iter_frames(r.out_path, pix_fmt="gray"))
    assert np.array_equal(out[23], frames[23]) and np.array_equal(out[24], frames[24])
    again = deflicker_film(src, shots, tmp_path / "d.mkv", cache_key="k", analysis_width_px=W)
    assert again.reused and again.flicker_after == r.flicker_after
    # none (and a film without flicker) leave the source as the stages' input
    assert deflicker_film(src, shots, tmp_path / "n.mkv", engine="none").out_path == src
    clean = tmp_path / "clean.mkv"
    with media.FrameWriter(clean, W, H, "16/1", pix_fmt_in="gray") as w:
        for t in range(20):
            w.write(np.clip(_picture(100, 1), 0, 255).astype(np.uint8))
    r2 = deflicker_film(clean, [(0, 20)], tmp_path / "c.mkv")
    assert not r2.changed and r2.out_path == clean and not (tmp_path / "c.mkv").exists()


def test_registry_and_params():
    assert {"none", "luma-ratio"} <= set(DEFLICKERERS.names())
    with pytest.raises(ValueError):
        DEFLICKERERS.create("luma-ratio", sigma_frames=0)
    d = DEFLICKERERS.create("luma-ratio").describe()
    assert d["engine"] == "luma-ratio" and d["params"]["edge_taper_frames"] == 3
