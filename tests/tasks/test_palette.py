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


# --- §8.1 procedure, pooled and GMM palettes (issue 6) ------------------------------------------
def _note_81(frame: np.ndarray, k: int, seed: int, n_sample: int, min_rgb_var=None):
    """The pseudo-code of notes 003 §8.1, line by line, as the oracle."""
    from skimage.color import rgb2lab
    from sklearn.cluster import KMeans

    x = frame.reshape(-1, 3).astype(np.float64)
    if min_rgb_var is not None:
        x = x[x.var(axis=1) >= min_rgb_var]
    rng = np.random.default_rng(seed)
    if len(x) > n_sample:
        x = x[rng.choice(len(x), n_sample, replace=False)]
    lab = rgb2lab((x / 255)[None])[0]
    km = KMeans(n_clusters=k, init="k-means++", n_init=4, max_iter=300, tol=1e-4,
                random_state=seed).fit(lab)
    w = np.bincount(km.labels_, minlength=k) / len(lab)
    order = np.lexsort((-km.cluster_centers_[:, 0], -w))
    return km.cluster_centers_[order], w[order]


@pytest.mark.parametrize("min_rgb_var", [None, 50.0])
def test_extract_palette_follows_note_8_1_exactly(min_rgb_var):
    img = _noisy(_blocks(120, 240), 30.0, seed=5)
    img[:40, :60] = 128  # some gray pixels for the vivid filter to drop
    centres, w = _note_81(img, 5, 11, 6000, min_rgb_var)
    pal = extract_palette([img], k=5, seed=11, max_pixels=6000, min_rgb_var=min_rgb_var)
    np.testing.assert_allclose(pal.colors_lab, centres, atol=1e-4)
    np.testing.assert_allclose(pal.weights, w, atol=1e-7)


def test_vivid_filter_runs_before_the_subsample():
    # 100 red pixels among 40 000 gray: filtering first keeps all red ones in a 50-pixel sample
    img = np.full((200, 200, 3), 128, np.uint8)
    img[:10, :10] = RED
    pal = extract_palette([img], k=2, seed=0, max_pixels=50, min_rgb_var=50)
    assert pal.weights[0] == 1.0 and np.linalg.norm(pal.colors_lab[0] - _lab(RED)) < 1.0


def test_pooled_palette_weights_by_shot_length_and_is_deterministic():
    from reel.tasks.palette import pooled_palette

    red = np.full((40, 40, 3), RED, np.uint8)
    blue = np.full((10, 10, 3), BLUE, np.uint8)  # small image, long shot: its weight counts
    pal = pooled_palette([red, blue], [100, 300], k=2, seed=0, max_pixels=2000)
    assert pal.source == "pooled"
    np.testing.assert_allclose(pal.weights, [0.75, 0.25], atol=1e-6)
    assert np.linalg.norm(pal.colors_lab[0] - _lab(BLUE)) < 1.0
    again = pooled_palette([red, blue], [100, 300], k=2, seed=0, max_pixels=2000)
    assert again.colors_lab.tobytes() == pal.colors_lab.tobytes()
    with pytest.raises(ValueError):
        pooled_palette([red, blue], [1.0], k=2)


def test_luminance_modes_weight_ordered():
    from reel.tasks.palette import luminance_modes

    rng = np.random.default_rng(0)
    L = np.r_[rng.normal(20, 1, 3000), rng.normal(60, 1, 2000), rng.normal(85, 1, 1000)]
    c, w = luminance_modes(L, k=3, seed=0)
    np.testing.assert_allclose(c, [20, 60, 85], atol=0.3)
    np.testing.assert_allclose(w, [0.5, 1 / 3, 1 / 6], atol=1e-6)
    c1, w1 = luminance_modes(np.full(50, 42.0), k=3)
    assert c1.tolist() == [42.0] * 3 and w1.tolist() == [1.0, 0.0, 0.0]


def test_gmm_palette_seeded_conditioned_on_luminance_and_in_gamut():
    from reel.models.palette_gmm import PaletteGMM
    from reel.tasks.colorizers.base import limit_chroma_to_gamut
    from reel.tasks.palette import gmm_palette

    model = PaletteGMM.load()
    rng = np.random.default_rng(1)
    dark = np.clip(np.r_[rng.normal(15, 3, 4000), rng.normal(35, 3, 2000)], 0, 100)
    p1 = gmm_palette(dark, k=5, seed=42, model=model)
    p2 = gmm_palette(dark, k=5, seed=42, model=model)
    p3 = gmm_palette(dark, k=5, seed=43, model=model)
    assert p1.colors_lab.tobytes() == p2.colors_lab.tobytes()
    assert p1.colors_lab.tobytes() != p3.colors_lab.tobytes()
    assert (p1.source, p1.seed, p1.model_version) == ("gmm", 42, model.version)
    assert p1.model_version.startswith("palette-gmm-v1-")
    # the palette's tones are the shot's luminance modes, weights their shares
    assert p1.colors_lab[:, 0].max() < 45 and abs(float(p1.weights.sum()) - 1) < 1e-5
    assert np.all(np.diff(p1.weights) <= 0)
    # chroma is inside sRGB at each colour's L (gamut-limited, not clipped later)
    lim = limit_chroma_to_gamut(p1.colors_lab[None, :, 0], p1.colors_lab[None, :, 1:])[0]
    np.testing.assert_allclose(lim, p1.colors_lab[:, 1:], atol=1e-4)
    # not gray: sampled from a model fitted on vivid pixels
    assert float(np.hypot(p1.colors_lab[:, 1], p1.colors_lab[:, 2]).max()) > 3.0


def test_palette_record_round_trip_with_source_and_old_schema(tmp_path):
    import json

    pal = Palette(np.array([[50, 10, 20], [70, -5, 5]], np.float32), np.array([0.6, 0.4]), 2, 9,
                  source="gmm", model_version="palette-gmm-v1-abc")
    back = Palette.load(pal.save(tmp_path / "p.json"))
    assert (back.source, back.model_version, back.seed) == ("gmm", "palette-gmm-v1-abc", 9)
    old = pal.to_dict()
    old.update(schema_version=1)
    del old["source"], old["model_version"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Palette.load(tmp_path / "old.json").source == "reference"
    with pytest.raises(ValueError):
        Palette(pal.colors_lab, pal.weights, 2, 0, source="made-up")


def test_video_training_pixels_drop_gray(tmp_path):
    from reel.tasks import media
    from reel.tasks.palette import video_training_pixels

    path = tmp_path / "clip.mkv"
    with media.FrameWriter(path, 64, 32, "10/1", pix_fmt_in="rgb24") as w:
        for i in range(12):
            f = np.full((32, 64, 3), 120, np.uint8)
            f[:, :16] = (200, 40, 40)  # a quarter of each frame is red
            w.write(f)
    x = video_training_pixels(path, frames=4, pixels_per_frame=100000, min_rgb_var=50, seed=0)
    assert x.shape == (4 * 32 * 16, 3)
    assert np.all(np.hypot(x[:, 1], x[:, 2]) > 40)  # only the red pixels (no gray ones) remain


def test_derive_seed_is_stable_and_31_bit():
    from reel.tasks.palette import derive_seed

    s = derive_seed(0, "abc", 30)
    assert s == derive_seed(0, "abc", 30) and 0 <= s < 2**31
    assert s != derive_seed(0, "abc", 31) and s != derive_seed(1, "abc", 30)
