"""Palette adherence in QC (issue 6): ΔE2000 to the nearest palette chroma, covered weight, flag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reel.tasks import qc
from reel.tasks.colorspace import lab_to_rgb, rgb_to_gray, rgb_to_lab

PAL = np.array([[50.0, 40.0, 20.0], [60.0, -30.0, -30.0]])


def test_adherence_zero_on_palette_and_grows_off_it():
    lab = np.array([[70.0, 40.0, 20.0]] * 5 + [[30.0, -30.0, -30.0]] * 5)  # palette chroma, other L
    de, cov = qc.palette_adherence(lab, PAL, np.array([0.5, 0.5]))
    assert de == pytest.approx(0.0, abs=1e-9) and cov == pytest.approx(1.0)
    gray = lab.copy()
    gray[:, 1:] = 0.0
    de_g, cov_g = qc.palette_adherence(gray, PAL, np.array([0.5, 0.5]))
    assert de_g > 15.0 and cov_g == 0.0
    # half the pixels gray: adherence halfway, coverage of the weight actually used
    half = np.concatenate([lab[:5], gray[5:]])
    de_h, cov_h = qc.palette_adherence(half, PAL, np.array([0.5, 0.5]))
    assert de_h == pytest.approx(de_g / 2, rel=0.3) and cov_h == pytest.approx(0.5)


def test_adherence_weights_and_padding():
    lab = np.array([[50.0, 40.0, 20.0]] * 10)
    _, cov = qc.palette_adherence(lab, PAL, np.array([0.8, 0.2]))
    assert cov == pytest.approx(0.8)
    # zero-weight (padding) colours are ignored
    _, cov_pad = qc.palette_adherence(lab, np.vstack([PAL, PAL[:1]]), np.array([0.8, 0.2, 0.0]))
    assert cov_pad == pytest.approx(0.8)
    # sampled: seeded, bounded
    big = np.tile(lab, (1000, 1))
    assert qc.palette_adherence(big, PAL, max_samples=100, seed=1) == qc.palette_adherence(
        big, PAL, max_samples=100, seed=1)


def test_off_palette_flag_thresholds():
    assert "off_palette" in qc.flags_from_metrics({"palette_adherence_de2000": 20.0})
    assert "off_palette" in qc.flags_from_metrics({"palette_coverage": 0.1})
    assert "off_palette" not in qc.flags_from_metrics(
        {"palette_adherence_de2000": 3.0, "palette_coverage": 0.9})
    assert "off_palette" not in qc.flags_from_metrics(
        {"palette_coverage": 0.4}, {"min_palette_coverage": 0.3})
    assert "off_palette" not in qc.flags_from_metrics({})  # no palette: no flag


def test_qc_shot_records_palette_metrics(tmp_path):
    from reel.tasks import media

    H, W, n = 48, 64, 6
    rng = np.random.default_rng(0)
    L = np.clip(rng.normal(55, 10, (H, W)), 5, 95).astype(np.float32)
    ab = np.zeros((H, W, 2), np.float32)
    ab[:, : W // 2] = PAL[0, 1:]
    ab[:, W // 2:] = PAL[1, 1:]
    colour = lab_to_rgb(L, ab)
    with media.FrameWriter(tmp_path / "src.mkv", W, H, "24/1", pix_fmt_in="gray") as w:
        for _ in range(n):
            w.write(rgb_to_gray(colour))
    for name, frame in (("good.mkv", colour), ("gray.mkv", np.dstack([rgb_to_gray(colour)] * 3))):
        with media.FrameWriter(tmp_path / name, W, H, "24/1", pix_fmt_in="rgb24") as w:
            for _ in range(n):
                w.write(frame)
    pal = tmp_path / "palette.json"
    pal.write_text(json.dumps({"colors_lab": PAL.tolist(), "weights": [0.5, 0.5]}))
    good = qc.qc_shot(tmp_path / "src.mkv", 0, n, tmp_path / "good.mkv", tmp_path / "qc1",
                      palette_path=pal)
    bad = qc.qc_shot(tmp_path / "src.mkv", 0, n, tmp_path / "gray.mkv", tmp_path / "qc2",
                     palette_path=pal)
    assert good.metrics["palette_adherence_de2000"] < 3.0
    assert good.metrics["palette_coverage"] > 0.9 and "off_palette" not in good.flags
    assert bad.metrics["palette_adherence_de2000"] > 15.0 and "off_palette" in bad.flags
    none = qc.qc_shot(tmp_path / "src.mkv", 0, n, tmp_path / "good.mkv", tmp_path / "qc3")
    assert "palette_coverage" not in none.metrics
