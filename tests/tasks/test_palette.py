"""Tests for reel.tasks.palette (k-means palettes in Lab)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reel.tasks.colorspace import rgb_to_lab
from reel.tasks.palette import Palette, extract_palette, nearest_palette_ab

RED = (200, 40, 40)
GREEN = (40, 160, 60)
BLUE = (30, 50, 170)


def _blocks(h: int = 100, w: int = 200) -> np.ndarray:
    """Three flat colour blocks covering 50 %, 30 % and 20 % of the image (columns)."""
    img = np.zeros((h, w, 3), np.uint8)
    a, b = w * 50 // 100, w * 80 // 100
    img[:, :a] = RED
    img[:, a:b] = GREEN
    img[:, b:] = BLUE
    return img


def _lab(rgb) -> np.ndarray:
    return rgb_to_lab(np.array([[rgb]], np.uint8))[0, 0]


def _noisy(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def test_blocks_recovered_with_weights_in_order():
    pal = extract_palette([_blocks()], k=3, seed=0)
    assert pal.k == 3 and pal.colors_lab.shape == (3, 3) and pal.colors_lab.dtype == np.float32
    for got, want in zip(pal.colors_lab, (RED, GREEN, BLUE)):
        assert np.linalg.norm(got - _lab(want)) < 1.0  # ΔE76
    # 20 000 pixels sampled of 20 000: weights are exact.
    np.testing.assert_allclose(pal.weights, [0.5, 0.3, 0.2], atol=1e-6)
    assert tuple(int(v) for v in pal.to_rgb()[0]) == RED


def test_blocks_with_noise_and_subsample():
    # Noisy blocks, 4x the pixels of the sample: colours within ΔE 2, weights within 2 %.
    img = _noisy(_blocks(200, 400), 4.0, seed=1)
    pal = extract_palette([img], k=3, seed=0, max_pixels=20000)
    for got, want in zip(pal.colors_lab, (RED, GREEN, BLUE)):
        assert np.linalg.norm(got - _lab(want)) < 2.0
    np.testing.assert_allclose(pal.weights, [0.5, 0.3, 0.2], atol=0.02)
    assert abs(float(pal.weights.sum()) - 1.0) < 1e-5


def test_deterministic_and_seed_recorded():
    img = _noisy(_blocks(150, 300), 25.0, seed=2)
    p1 = extract_palette([img], k=5, seed=7, max_pixels=5000)
    p2 = extract_palette([img], k=5, seed=7, max_pixels=5000)
    assert p1.seed == 7
    assert p1.colors_lab.tobytes() == p2.colors_lab.tobytes()
    assert p1.weights.tobytes() == p2.weights.tobytes()
    assert np.all(np.diff(p1.weights) <= 0)  # heaviest first


def test_fewer_distinct_colours_than_k_pads_with_zero_weight():
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, :15] = RED
    img[:, 15:] = BLUE
    pal = extract_palette([img], k=5)
    np.testing.assert_allclose(pal.weights, [0.75, 0.25, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(pal.colors_lab[2], pal.colors_lab[0])
    assert not pal.is_achromatic
    gray = extract_palette([np.full((8, 8, 3), 90, np.uint8)], k=3)
    assert gray.is_achromatic


def test_multiple_images_and_vivid_filter():
    red = np.zeros((50, 50, 3), np.uint8); red[:] = RED
    grey = np.full((50, 50, 3), 128, np.uint8)
    pal = extract_palette([red, grey], k=2, seed=0)
    np.testing.assert_allclose(pal.weights, [0.5, 0.5], atol=1e-6)
    assert len(pal.sources) == 2 and pal.sources[0].startswith("array0:50x50:sha256=")
    vivid = extract_palette([red, grey], k=2, seed=0, min_rgb_var=50)
    np.testing.assert_allclose(vivid.weights, [1.0, 0.0], atol=1e-6)
    assert np.linalg.norm(vivid.colors_lab[0] - _lab(RED)) < 1.0


def test_save_load_round_trip_and_swatch(tmp_path):
    pal = extract_palette([_noisy(_blocks(), 10.0, seed=3)], k=4, seed=3)
    path = pal.save(tmp_path / "pal" / "palette.json")
    back = Palette.load(path)
    assert back.k == pal.k and back.seed == pal.seed and back.sources == pal.sources
    assert back.colors_lab.tobytes() == pal.colors_lab.tobytes()
    assert back.weights.tobytes() == pal.weights.tobytes()
    assert back.to_vector().shape == (12,)

    png = pal.swatch(tmp_path / "swatch.png", width_px=200, height_px=20)
    img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    assert img.shape == (20, 200, 3)
    # Band widths follow the weights; the first band is the heaviest colour.
    first = np.all(img[0] == pal.to_rgb()[0], axis=1)
    assert abs(int(first[: int(first.argmin()) or 200].sum()) - round(200 * float(pal.weights[0]))) <= 1


def test_paths_are_read(tmp_path):
    p = tmp_path / "ref.png"
    cv2.imwrite(str(p), cv2.cvtColor(_blocks(), cv2.COLOR_RGB2BGR))
    pal = extract_palette([p], k=3)
    assert pal.sources == [str(p)]
    np.testing.assert_allclose(pal.weights, [0.5, 0.3, 0.2], atol=1e-6)
    with pytest.raises(ValueError):
        extract_palette([tmp_path / "missing.png"])


def test_nearest_palette_ab():
    pal = extract_palette([_blocks()], k=3)
    ab = np.stack([pal.colors_lab[:, 1:] + 3.0, pal.colors_lab[:, 1:] - 2.0])  # (2, 3, 2)
    snapped = nearest_palette_ab(ab, pal)
    np.testing.assert_allclose(snapped[0], pal.colors_lab[:, 1:])
    np.testing.assert_allclose(snapped[1], pal.colors_lab[:, 1:])
    L = np.broadcast_to(pal.colors_lab[:, 0], (2, 3))
    np.testing.assert_allclose(nearest_palette_ab(ab, pal, L), snapped)
