"""reel.models.palette_gmm: the colour model behind GMM palettes (fit, conditioning, file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reel.models.palette_gmm import (SHIPPED_MODEL, PaletteGMM, PaletteGMMConfig,
                                     fit_palette_gmm)


def _two_clusters(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dark_red = rng.normal([30, 40, 25], [3, 3, 3], (3000, 3))
    light_yellow = rng.normal([80, -5, 60], [3, 3, 3], (1000, 3))
    return np.concatenate([dark_red, light_yellow])


def test_fit_recovers_components_ordered_by_weight():
    gmm = fit_palette_gmm(_two_clusters(), PaletteGMMConfig(n_components=2, seed=0))
    np.testing.assert_allclose(gmm.weights, [0.75, 0.25], atol=0.01)
    np.testing.assert_allclose(gmm.means[0], [30, 40, 25], atol=0.5)
    np.testing.assert_allclose(gmm.means[1], [80, -5, 60], atol=0.5)
    assert gmm.n_pixels == 4000 and gmm.config["n_components"] == 2


def test_sampling_is_conditioned_on_L_and_seeded():
    gmm = fit_palette_gmm(_two_clusters(), PaletteGMMConfig(n_components=2, seed=0))
    L = np.array([30.0] * 20 + [80.0] * 20)
    ab, comps = gmm.sample_at_luminance(L, seed=7)
    assert comps[:20].tolist() == [0] * 20 and comps[20:].tolist() == [1] * 20
    assert np.all(np.abs(ab[:20] - [40, 25]).max(axis=1) < 15)
    assert np.all(np.abs(ab[20:] - [-5, 60]).max(axis=1) < 15)
    again, _ = gmm.sample_at_luminance(L, seed=7)
    other, _ = gmm.sample_at_luminance(L, seed=8)
    assert np.array_equal(ab, again) and not np.array_equal(ab, other)
    # temperature 0: the conditional means of the drawn components
    mean_ab, _ = gmm.sample_at_luminance(np.array([30.0]), seed=0, temperature=0.0)
    resp, mu, _ = gmm.condition_on_L(np.array([30.0]))
    np.testing.assert_allclose(mean_ab[0], mu[0, 0], atol=1e-9)
    assert resp[0, 0] > 0.999


def test_conditional_follows_L_within_a_component():
    # one component with a and L correlated: the conditional mean of a moves with L
    rng = np.random.default_rng(0)
    L = rng.uniform(20, 80, 5000)
    lab = np.column_stack([L, 0.5 * (L - 50) + rng.normal(0, 1, 5000), rng.normal(0, 1, 5000)])
    gmm = fit_palette_gmm(lab, PaletteGMMConfig(n_components=1, seed=0))
    _, mu, cov = gmm.condition_on_L(np.array([30.0, 70.0]))
    np.testing.assert_allclose(mu[:, 0, 0], [-10, 10], atol=0.5)
    assert cov[0, 0, 0] < 2.0  # most of a's variance is explained by L


def test_save_load_round_trip_and_version(tmp_path):
    gmm = fit_palette_gmm(_two_clusters(), PaletteGMMConfig(n_components=2, seed=0),
                          sources=[{"name": "x.mp4", "sha256": "0" * 64, "pixels": 4000}])
    path = gmm.save(tmp_path / "m.json")
    back = PaletteGMM.load(path)
    assert back.version == gmm.version and back.sources == gmm.sources
    np.testing.assert_array_equal(back.covariances, gmm.covariances)
    data = json.loads(path.read_text())
    data["means"][0][0] += 1.0  # parameters no longer match the recorded version
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="do not match"):
        PaletteGMM.load(path)
    with pytest.raises(FileNotFoundError, match="reel palette fit-gmm"):
        PaletteGMM.load(tmp_path / "missing.json")


def test_too_few_pixels_is_an_error():
    with pytest.raises(ValueError, match="at least"):
        fit_palette_gmm(np.zeros((10, 3)), PaletteGMMConfig(n_components=4))


def test_shipped_model_loads_and_names_its_training_clips():
    gmm = PaletteGMM.load()
    assert SHIPPED_MODEL.name == "palette_gmm_v1.json" and SHIPPED_MODEL.is_file()
    assert gmm.version.startswith("palette-gmm-v1-") and gmm.n_components == 12
    names = {s["name"] for s in gmm.sources}
    assert {"bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"} <= names
    assert gmm.config["min_rgb_var"] == 50.0 and gmm.config["frames_per_video"] == 10
    for c in gmm.covariances:  # valid covariances
        assert np.all(np.linalg.eigvalsh(c) > 0)
