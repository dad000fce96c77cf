"""Tests for reel.tasks.references (gray-domain ranking of colour reference stills)."""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.references import (
    REFERENCE_RANKERS,
    RankedReference,
    rank_reference_arrays,
    rank_references,
    sample_keyframe_indices,
)


def _library() -> dict[str, np.ndarray]:
    hubble = data.hubble_deep_field()
    return {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "hubble": cv2.resize(hubble, (500, 436), interpolation=cv2.INTER_AREA),
    }


def _shot_from(rgb: np.ndarray, seed: int, n: int = 3) -> list[np.ndarray]:
    """Gray frames of ``rgb``: shifted a few pixels, re-exposed (gain/offset), cropped 5 %."""
    rng = np.random.default_rng(seed)
    g = rgb_to_gray(rgb).astype(np.float32)
    h, w = g.shape
    frames = []
    for _ in range(n):
        dx, dy = rng.uniform(-10, 10, 2)
        gain, offset = rng.uniform(0.85, 1.2), rng.uniform(-10, 20)
        M = np.float32([[1, 0, dx], [0, 1, dy]])
        f = cv2.warpAffine(g * gain + offset, M, (w, h), borderMode=cv2.BORDER_REFLECT)
        f = f[int(0.05 * h): int(0.95 * h), int(0.05 * w): int(0.95 * w)]
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return frames


def test_matching_reference_ranks_first_for_each():
    lib = _library()
    names = list(lib)
    refs = [lib[k] for k in names]
    for j, name in enumerate(names):
        ranked = rank_reference_arrays(_shot_from(lib[name], seed=j), refs)
        assert [i for i, _ in ranked][0] == j, (name, ranked)
        scores = [s for _, s in ranked]
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0 <= s <= 1.0 for s in scores)
        assert ranked[0][1] > 0.6 and ranked[0][1] - ranked[1][1] > 0.2


def test_gray_invariances():
    lib = _library()
    ranker = REFERENCE_RANKERS.create("luma-layout")
    gray = rgb_to_gray(lib["coffee"])
    f0 = ranker.features(gray)
    # Exposure (gain/offset without clipping) barely changes the descriptors.
    brighter = np.clip(gray.astype(np.float32) * 0.8 + 30, 0, 255).astype(np.uint8)
    assert ranker.similarity(f0, ranker.features(brighter)) > 0.95
    assert ranker.similarity(f0, f0) == pytest.approx(1.0)
    # An inverted image has anti-correlated layout.
    inverted = (255 - gray).astype(np.uint8)
    assert np.dot(f0["layout"], ranker.features(inverted)["layout"]) < -0.9


def test_ties_deterministic_and_empty(tmp_path):
    lib = _library()
    refs = [lib["chelsea"], lib["astronaut"], lib["chelsea"]]  # 0 and 2 tie exactly
    ranked = rank_reference_arrays(_shot_from(lib["chelsea"], seed=4), refs)
    assert [i for i, _ in ranked] == [0, 2, 1]
    assert ranked[0][1] == ranked[1][1]
    assert rank_reference_arrays(_shot_from(lib["chelsea"], seed=4), []) == []
    assert rank_references(tmp_path / "none.mkv", 0, 10, []) == []
    assert sample_keyframe_indices(10, 13, 5) == [10, 11, 12]
    assert sample_keyframe_indices(0, 90) == [15, 45, 75]
    with pytest.raises(ValueError):
        REFERENCE_RANKERS.create("luma-layout", weights={"colour": 1})


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_rank_references_file(tmp_path):
    media = pytest.importorskip("reel.tasks.media")
    if not hasattr(media, "iter_frames"):
        pytest.skip("reel.tasks.media.iter_frames not available")
    lib = _library()
    paths = []
    for name in ("rocket", "coffee", "astronaut"):
        p = tmp_path / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(lib[name], cv2.COLOR_RGB2BGR))
        paths.append(p)
    # A 12-frame gray clip of the coffee still, slowly panning.
    still = tmp_path / "coffee_gray.png"
    cv2.imwrite(str(still), rgb_to_gray(lib["coffee"]))
    clip = tmp_path / "shot.mkv"
    subprocess.run([
        "ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", str(still),
        "-vf", "crop=560:360:x=20+n:y=20,format=gray", "-frames:v", "12", "-r", "24",
        "-c:v", "ffv1", str(clip),
    ], check=True)
    ranked = rank_references(clip, 2, 11, paths, top_k=2)
    assert len(ranked) == 2 and all(isinstance(r, RankedReference) for r in ranked)
    assert ranked[0].path == tmp_path / "coffee.png"
    assert ranked[0].score > ranked[1].score
