"""Pieces of `reel benchmark refs` that need no media: augmentation and the ranking metrics."""

from __future__ import annotations

import numpy as np
from skimage import data

from reel.flows.benchmarks.references import COLUMNS, VARIANTS, _metrics, augment_still


def test_augment_still_is_seeded_and_changes_the_still():
    rgb = data.astronaut()
    a = augment_still(rgb, np.random.default_rng(3))
    b = augment_still(rgb, np.random.default_rng(3))
    c = augment_still(rgb, np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert np.array_equal(a, b) and not (a.shape == c.shape and np.array_equal(a, c))
    assert a.shape[:2] != rgb.shape[:2]  # cropped and rescaled


def test_metrics_from_ranks():
    m = _metrics([0, 0, 1, 2, 5])
    assert m["top1"] == 0.4 and m["top3"] == 0.8
    assert abs(m["mrr"] - (1 + 1 + 0.5 + 1 / 3 + 1 / 6) / 5) < 1e-12
    assert {"top1", "top3"} <= set(COLUMNS) and "augmented" in VARIANTS
