"""Tests of the composite generator (tasks/composites.py)."""

from __future__ import annotations

import numpy as np
import pytest

from reel.tasks.colorspace import rgb_to_lab
from reel.tasks.composites import (
    KINDS,
    ChromaPerturbation,
    harmonization_metrics,
    make_composite,
    perturb_frame,
    random_perturbation,
    select_region,
)


def _clip(n=5):
    rng = np.random.default_rng(0)
    frames = []
    for t in range(n):
        f = np.zeros((40, 60, 3), np.uint8)
        f[:] = (90, 140, 70)
        f[10:30, 15 + t:35 + t] = (200, 80, 60)
        frames.append(np.clip(f + rng.integers(0, 6, f.shape), 0, 255).astype(np.uint8))
    labels = np.zeros((n, 20, 30), np.uint16)
    for t in range(n):
        labels[t, 5:15, (15 + t) // 2:(35 + t) // 2] = 1
    return frames, labels


@pytest.mark.parametrize("kind", KINDS)
def test_composite_changes_only_the_region_and_keeps_L(kind):
    frames, labels = _clip()
    comp = make_composite(frames, labels, seed=3, kind=kind)
    assert comp.region_id == 1
    for f, g, m in zip(comp.frames, frames, comp.masks):
        assert np.array_equal(f[~m], g[~m])
        dL = np.abs(rgb_to_lab(f)[..., 0] - rgb_to_lab(g)[..., 0])[m]
        assert dL.mean() < 1.0
    assert harmonization_metrics(comp.frames[0], frames[0], comp.masks[0])["fmse"] > 20
    again = make_composite(frames, labels, seed=3, kind=kind)
    assert all(np.array_equal(a, b) for a, b in zip(comp.frames, again.frames))


def test_drift_moves_the_shift_linearly_and_seeds_differ():
    frames, labels = _clip(n=9)
    comp = make_composite(frames, labels, seed=1, kind="drift")
    shifts = np.array([p.shift_ab for p in comp.per_frame])
    d = np.diff(shifts, axis=0)
    assert np.allclose(d, d[0]) and np.linalg.norm(shifts[-1] - shifts[0]) >= 20
    other = make_composite(frames, labels, seed=2, kind="drift")
    assert other.perturbation != comp.perturbation


def test_perturbation_math_and_selection():
    p = ChromaPerturbation(hue_deg=180.0)
    assert np.allclose(p.apply_ab(np.array([[3.0, -4.0]])), [[-3.0, 4.0]], atol=1e-5)
    rng = np.random.default_rng(0)
    for kind in KINDS:
        random_perturbation(rng, kind)
    with pytest.raises(ValueError):
        random_perturbation(rng, "nope")
    lab = np.zeros((4, 10, 10), np.uint16)
    lab[:, :2, :2] = 1       # 4 %: candidate
    lab[:, 5:, :] = 2        # 50 %: too large
    assert select_region(lab, rng) == 1
    assert select_region(lab, rng, min_fraction=0.6) is None
    out = perturb_frame(np.full((4, 4, 3), 128, np.uint8), np.zeros((4, 4), bool), p)
    assert np.all(out == 128)


def test_metrics_match_hand_computation():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[:2, :2] = 20
    m = np.zeros((4, 4), bool)
    m[:2, :] = True
    r = harmonization_metrics(b, a, m)
    assert r["mse"] == pytest.approx(400 * 4 / 16)
    assert r["fmse"] == pytest.approx(400 * 4 / 8)
    assert r["fpsnr"] == pytest.approx(10 * np.log10(255 ** 2 / 200.0))
    assert harmonization_metrics(a, a, m)["psnr"] == 100.0
