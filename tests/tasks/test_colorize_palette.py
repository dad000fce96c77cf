"""The palette constraint of exemplar-propagate (issue 6): low-confidence chroma pulled toward
the palette colour the pixel's luminance selects; reference-less shots coloured by the palette."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data

from reel.tasks.colorize import colorize_L_frames, colorize_shot
from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import palette_chroma, pull_to_palette
from reel.tasks.colorspace import gray_to_L, rgb_to_gray, rgb_to_lab

H, W, T = 72, 120, 8
PALETTE = np.array([[25.0, 30.0, 20.0], [75.0, -20.0, 45.0]], np.float32)


@pytest.fixture(scope="module")
def shot() -> list[np.ndarray]:
    big = cv2.resize(skimage.data.coffee(), (W + 2 * T + 4, H + T + 4), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(big[t:t + H, 2 * t:2 * t + W]) for t in range(T)]


def _L(rgb):
    return gray_to_L(rgb_to_gray(rgb))


def _run(frames, refs, palette=None, weights=None, **params):
    eng = COLORIZERS.create("exemplar-propagate", analysis_width_px=64, **params)
    eng.start_shot([rgb_to_lab(r) for r in refs], palette, weights)
    Ls = [_L(f) for f in frames]
    out = list(colorize_L_frames(eng, lambda: iter(Ls)))
    return [ab for _, ab, _ in out], [c for _, _, c in out]


def test_palette_chroma_soft_assignment_and_shot_remap():
    L = np.array([[25.0, 50.0, 75.0]], np.float32)
    ab = palette_chroma(L, PALETTE, np.array([0.5, 0.5]), sigma_L=10.0)
    np.testing.assert_allclose(ab[0, 0], PALETTE[0, 1:], atol=0.1)
    np.testing.assert_allclose(ab[0, 2], PALETTE[1, 1:], atol=0.1)
    np.testing.assert_allclose(ab[0, 1], PALETTE[:, 1:].mean(0), atol=1e-3)  # halfway: the mean
    # zero-weight (padding) colours never contribute
    padded = np.vstack([PALETTE, [[50.0, 90.0, -90.0]]])
    np.testing.assert_allclose(palette_chroma(L, padded, np.array([0.5, 0.5, 0.0])), ab, atol=1e-5)
    # a dark shot (L mean 15, std 5) is remapped onto the palette's tones: its brightest pixels
    # take the bright palette colour although their L is only 20
    dark = np.array([[10.0, 20.0]], np.float32)
    ab_d = palette_chroma(dark, PALETTE, np.array([0.5, 0.5]), L_stats=(15.0, 5.0))
    np.testing.assert_allclose(ab_d[0, 1], PALETTE[1, 1:], atol=0.1)
    np.testing.assert_allclose(ab_d[0, 0], PALETTE[0, 1:], atol=0.1)


def test_pull_to_palette_weights():
    ab = np.zeros((1, 3, 2), np.float32)
    target = np.full((1, 3, 2), 10.0, np.float32)
    conf = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_allclose(pull_to_palette(ab, conf, target)[0, :, 0], [10, 5, 0])
    np.testing.assert_allclose(pull_to_palette(ab, conf, target, strength=0.5)[0, :, 0], [5, 2.5, 0])
    np.testing.assert_allclose(pull_to_palette(ab, conf, target, low_confidence=0.5)[0, :, 0],
                               [10, 0, 0])


def test_no_reference_shot_gets_palette_colours(shot):
    abs_, confs = _run(shot, [], PALETTE, np.array([0.6, 0.4]))
    assert confs == [0.0] * T
    for f, ab in zip(shot, abs_):
        chroma = np.hypot(ab[..., 0], ab[..., 1])
        assert float(chroma.mean()) > 10.0  # coloured, not gray
        # hues lie between the two palette hues (blends of the two colours; the L-guided
        # upsampling may overshoot a little at edges)
        lo, hi = sorted(np.degrees(np.arctan2(PALETTE[:, 2], PALETTE[:, 1])))
        hue = np.degrees(np.arctan2(ab[..., 1], ab[..., 0]))[chroma > 5]
        assert np.mean((hue >= lo - 5) & (hue <= hi + 5)) > 0.99
    # temporally stable: the same L gives the same chroma in every frame (shot statistics)
    same, _ = _run([shot[0]] * 3, [], PALETTE, np.array([0.6, 0.4]))
    assert np.array_equal(same[0], same[2])
    # palette_fill=0, or no palette: gray exactly as before
    for kw in ({"palette_fill": 0.0},):
        gray, _ = _run(shot[:2], [], PALETTE, None, **kw)
        assert not any(ab.any() for ab in gray)
    gray, _ = _run(shot[:2], [], None)
    assert not any(ab.any() for ab in gray)


def test_constraint_off_is_byte_identical_and_on_moves_low_confidence_pixels(shot):
    base, c0 = _run(shot, [shot[0]])
    off, c1 = _run(shot, [shot[0]], PALETTE, np.array([0.5, 0.5]))  # palette_strength=0 default
    assert c0 == c1 and all(np.array_equal(a, b) for a, b in zip(base, off))
    on, c2 = _run(shot, [shot[0]], PALETTE, np.array([0.5, 0.5]), palette_strength=1.0)
    assert c2 == c0  # confidence is the engine's evidence, not changed by the prior
    assert any(not np.array_equal(a, b) for a, b in zip(base, on))
    # the change goes toward the palette: the mean distance to the palette chroma shrinks
    eng = COLORIZERS.create("exemplar-propagate")
    d_base = d_on = 0.0
    for f, a, b in zip(shot, base, on):
        target = palette_chroma(_L(f), PALETTE, np.array([0.5, 0.5]))
        d_base += float(np.linalg.norm(a - target, axis=-1).mean())
        d_on += float(np.linalg.norm(b - target, axis=-1).mean())
    assert d_on < d_base
    del eng


def test_colorize_shot_reads_palette_weights(tmp_path, shot):
    from reel.tasks import media

    src = tmp_path / "gray.mkv"
    with media.FrameWriter(src, W, H, "10/1", pix_fmt_in="rgb24") as w:
        for f in shot[:4]:
            w.write(np.dstack([rgb_to_gray(f)] * 3))
    pal = tmp_path / "palette.json"
    pal.write_text(json.dumps({"colors_lab": PALETTE.tolist(), "weights": [1.0, 0.0]}))
    res = colorize_shot(src, 0, 4, [], tmp_path / "out.mkv", palette_path=pal,
                        analysis_width_px=64)
    assert res.n_frames == 4 and res.mean_confidence == 0.0
    frames = list(media.iter_frames(res.out_path, pix_fmt="rgb24"))
    lab = rgb_to_lab(frames[0])
    # weight 0 for the second colour: only the first colour's hue appears
    hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))[np.hypot(lab[..., 1], lab[..., 2]) > 8]
    want = np.degrees(np.arctan2(PALETTE[0, 2], PALETTE[0, 1]))
    assert hue.size > 0 and np.all(np.abs(hue - want) < 8)
