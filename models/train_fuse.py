"""Trainer ``fuse``: self-supervised training of :class:`FuseNet` on synthetic regional edits.

Data (offline, seeded; nothing from the benchmark videos bikes, carphone or bigbuckbunny):

- *Clips*: the ``refcolor`` training stills (scikit-image and scikit-learn colour images;
  scikit-image ``coffee`` held out for validation), cut into ``frames``-frame clips of ``size``
  along smooth random camera paths (:func:`reel.models.train_harmonize.camera_clip`); with
  ``video_clips`` / ``val_video_clips`` > 0 also clips of real colour videos
  (:func:`reel.models.refcolor_train.video_clip_cutter`; held-out videos for validation,
  metrics ``video_*``). The shipped checkpoint uses none (docs/models.md).
- *Edits*: reel's own synthetic-edit generator
  (:func:`reel.tasks.edit.synthetic_regional_edit`, the one ``reel benchmark fusion`` uses,
  injected by the flow as ``options.extra["edit_fn"]``): a k-means colour region, a random
  hue/saturation/warmth/brightness edit applied to every pixel, the exact region (target) and a
  coarse, blocky, per-frame jittering mask (what a fuser is given).
- *Prior*: the classical ``guided`` fuser's blend weight on each clip (``options.extra
  ["prior_fn"]``, injected by the flow); FuseNet (``prior="input"``) refines it — an untrained
  FuseNet returns exactly ``guided``'s weight inside the band.
- *Band*: the band weight of the coarse mask (:func:`reel.tasks.fusers.band_weight`, injected
  as ``options.extra["band_fn"]``) with ``band_px``; FuseNet only predicts inside it.
- *Augmentation*: the same random ab rotation of original and edited chroma, horizontal flips.

Loss (band pixels, weighted by the band weight): L1(fused ab, ideal ab) / ab_scale
+ ``bce_weight`` · BCE(network blend weight, exact mask).
Validation (held-out still): mean |ab − ab_ideal| in the evaluation band (pixels within
``band_px`` of the exact border) for FuseNet, for its prior (``guided``'s weight, i.e. an
untrained FuseNet) and for the hard coarse mask.

Example
-------
>>> from reel.models.train_fuse import FuseTrainDefaults
>>> FuseTrainDefaults().band_px
10.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reel.models.fuse_net import FuseConfig, FuseNet
from reel.models.refcolor_train import (TRAIN_IMAGES, TRAIN_VIDEOS, VAL_IMAGES, load_still,
                                        video_clip_cutter, video_options, video_shapes_key,
                                        with_video_metrics)
from reel.models.train_harmonize import camera_clip, lab_to_rgb_u8
from reel.models.training import (ProgressCb, Stopwatch, TrainOptions, TrainResult,
                                  cached_npz, clip_run_options, cosine_adam, fit_and_validate,
                                  register_trainer, seed_everything, start_run)

DATA_VERSION = "2"

#: edit_fn(rgb uint8 (T, H, W, 3), seed=int) -> SyntheticEdit (reel.tasks.edit)
EditFn = Callable[..., Any]
#: band_fn(hard uint8/bool (H, W), band_px) -> float32 (H, W) band weight
BandFn = Callable[[np.ndarray, float], np.ndarray]
#: prior_fn(L float32 (T, H, W), mask float32 (T, H, W)) -> blend weight float32 (T, H, W):
#: the classical fuser FuseNet refines (``guided``, injected by the flow)
PriorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass
class FuseTrainDefaults:
    """Defaults of the shipped checkpoint (``reel train fuse``)."""

    steps: int = 600
    batch_size: int = 2
    lr: float = 5e-4
    clips: int = 40
    val_clips: int = 4
    frames: int = 4
    size: tuple[int, int] = (64, 96)
    band_px: float = 10.0
    bce_weight: float = 0.05
    prior: str = "input"
    val_every: int = 300
    threads: int | None = 1
    #: clips cut from real colour videos (reel.models.refcolor_train.video_clip_cutter) added
    #: to the still clips for training, and held-out video clips for validation (metrics
    #: ``video_*``); 0 for the shipped checkpoint
    video_clips: int = 0
    val_video_clips: int = 0
    video_max_stride: int = 2
    train_videos: tuple[str, ...] = TRAIN_VIDEOS


def _edited_clips(cut: Callable[[int], np.ndarray], n_clips: int, edit_fn: EditFn,
                  band_fn: BandFn, *, frames: int, size: tuple[int, int], seed: int,
                  band_px: float, prior_fn: PriorFn | None) -> dict[str, np.ndarray]:
    """Regional edits of the Lab clips ``cut(0..n_clips-1)`` (arrays of :func:`build_dataset`)."""
    shape = (n_clips, frames, *size)
    data = {"L": np.empty(shape, np.float16), "ab": np.empty(shape + (2,), np.float16),
            "ab_edited": np.empty(shape + (2,), np.float16),
            "ab_ideal": np.empty(shape + (2,), np.float16),
            "coarse": np.empty(shape, np.uint8), "true": np.empty(shape, np.uint8),
            "eval_band": np.empty(shape, np.uint8), "band": np.empty(shape, np.float16)}
    if prior_fn is not None:
        data["prior"] = np.empty(shape, np.float16)
    for i in range(n_clips):
        s = edit_fn(lab_to_rgb_u8(cut(i)), seed=seed * 100003 + i, band_px=band_px)
        data["L"][i] = s.L
        data["ab"][i] = s.ab
        data["ab_edited"][i] = s.ab_edited
        data["ab_ideal"][i] = s.ab_ideal
        data["coarse"][i] = s.coarse_mask > 0.5
        data["true"][i] = s.true_mask > 0.5
        data["eval_band"][i] = s.band
        data["band"][i] = np.stack([band_fn((m > 0.5).astype(np.uint8), band_px)
                                    for m in s.coarse_mask])
        if prior_fn is not None:
            data["prior"][i] = prior_fn(s.L, s.coarse_mask)
    return data


def build_dataset(images: Sequence[str], n_clips: int, edit_fn: EditFn, band_fn: BandFn, *,
                  frames: int, size: tuple[int, int], seed: int, band_px: float,
                  prior_fn: PriorFn | None = None,
                  cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Synthesize ``n_clips`` edited clips (cached as .npz under ``cache_dir``).

    Returns float16 ``L`` (N, T, H, W), ``ab``, ``ab_edited``, ``ab_ideal`` (N, T, H, W, 2),
    uint8 ``coarse``, ``true`` masks and ``eval_band`` (N, T, H, W), float16 ``band`` weight
    and, with ``prior_fn``, float16 ``prior`` (its blend weight on each clip).
    """
    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        stills = [load_still(s) for s in images]
        return _edited_clips(
            lambda i: camera_clip(stills[i % len(stills)], None, rng, frames=frames,
                                  size=size)[0],
            n_clips, edit_fn, band_fn, frames=frames, size=size, seed=seed, band_px=band_px,
            prior_fn=prior_fn)

    return cached_npz(cache_dir, "fuse",
                      [DATA_VERSION, list(images), n_clips, frames, list(size), seed, band_px,
                       prior_fn is not None], build)


def build_video_dataset(shots: dict[str, list[np.ndarray]], n_clips: int, edit_fn: EditFn,
                        band_fn: BandFn, *, frames: int, size: tuple[int, int], seed: int,
                        band_px: float, max_stride: int = 2, prior_fn: PriorFn | None = None,
                        cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """:func:`build_dataset` on clips cut from real colour video shots
    (:func:`reel.models.refcolor_train.video_clip_cutter`) instead of stills."""
    cutter = video_clip_cutter(shots, frames=frames, size=size, max_stride=max_stride)

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return _edited_clips(lambda i: cutter(i, rng), n_clips, edit_fn, band_fn,
                             frames=frames, size=size, seed=seed, band_px=band_px,
                             prior_fn=prior_fn)

    return cached_npz(cache_dir, "fuse-video",
                      [DATA_VERSION, video_shapes_key(shots), n_clips, frames, list(size), seed,
                       band_px, max_stride, prior_fn is not None], build)


def make_batch(data: dict[str, np.ndarray], idx: np.ndarray, *, rng: np.random.Generator | None,
               device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors (B, T, C, H, W) of clips ``idx``; with ``rng``: one random ab rotation per sample
    (original, edited and ideal chroma alike) and random horizontal flips."""
    keys = tuple(k for k in ("L", "ab", "ab_edited", "ab_ideal", "coarse", "true", "band",
                             "prior") if k in data)
    out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in idx:
        x = {k: data[k][i].astype(np.float32) for k in keys}
        if rng is not None:
            th = rng.uniform(0, 2 * math.pi)
            R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]],
                         np.float32)
            for k in ("ab", "ab_edited", "ab_ideal"):
                x[k] = x[k] @ R.T
            if rng.random() < 0.5:
                x = {k: (v[:, :, ::-1] if v.ndim == 4 else v[..., ::-1]) for k, v in x.items()}
        for k in keys:
            out[k].append(x[k])
    b = {}
    for k, v in out.items():
        t = torch.from_numpy(np.ascontiguousarray(np.stack(v)))
        b[k] = (t.permute(0, 1, 4, 2, 3) if t.ndim == 5 else t.unsqueeze(2)).to(device)
    return b


def fuse_loss(model: FuseNet, batch: dict[str, torch.Tensor], bce_weight: float = 0.2
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Band-weighted L1 of the fused chroma (/ ab_scale) + bce_weight · BCE of the blend weight."""
    out = model(batch["L"], batch["ab"], batch["ab_edited"], batch["coarse"], batch["band"],
                batch.get("prior"))
    w = batch["band"]
    n = w.sum() + 1.0
    l1 = ((out["ab"].float() - batch["ab_ideal"]).abs() * w).sum() / (2 * n) / model.config.ab_scale
    a = out["alpha_band"].float().clamp(1e-4, 1 - 1e-4)
    bce = (F.binary_cross_entropy(a, batch["true"], reduction="none") * w).sum() / n
    return l1 + bce_weight * bce, {"l1_band": float(l1.detach()), "bce_band": float(bce.detach())}


@torch.no_grad()
def evaluate(model: FuseNet, data: dict[str, np.ndarray], device: torch.device,
             batch_size: int = 2) -> dict[str, float]:
    """Mean |ab − ab_ideal| (ab units) in the evaluation band: FuseNet, its prior (the classical
    weight or the feathered mask: an untrained FuseNet), the hard mask."""
    model.eval()
    prior = FuseNet(model.config).to(device).eval()  # zero head: returns its prior
    N = data["L"].shape[0]
    err = {"net": [], "prior": [], "hard": []}
    for k in range(0, N, batch_size):
        idx = np.arange(k, min(N, k + batch_size))
        b = make_batch(data, idx, rng=None, device=device)
        args = (b["L"], b["ab"], b["ab_edited"], b["coarse"], b["band"], b.get("prior"))
        res = {"net": model(*args)["ab"], "prior": prior(*args)["ab"]}
        hard = b["coarse"] >= 0.5
        res["hard"] = torch.where(hard, b["ab_edited"], b["ab"])
        ideal = b["ab_ideal"]
        band = torch.from_numpy(data["eval_band"][idx].astype(bool)).to(device).unsqueeze(2)
        for name, ab in res.items():
            e = (ab.float() - ideal).abs().mean(2, keepdim=True)
            err[name].append(e[band].cpu().numpy())
    m = {k: float(np.mean(np.concatenate(v))) for k, v in err.items()}
    return {"l1_band_ab": m["net"], "l1_band_ab_prior": m["prior"],
            "l1_band_ab_hard": m["hard"], "gain_vs_prior": m["prior"] - m["net"]}


@register_trainer("fuse", description="FuseNet: edge-band fusion of regional edits",
                  model_cls=FuseNet, config_cls=FuseConfig,
                  defaults_cls=FuseTrainDefaults)
def train_fuse(options: TrainOptions, progress_cb: ProgressCb | None = None) -> TrainResult:
    """Train FuseNet (see the module docstring). ``options.extra``: ``edit_fn`` and ``band_fn``
    (required, supplied by ``reel.flows.train``), optionally ``clips``, ``val_clips``,
    ``frames``, ``size`` (H, W), ``band_px``, ``bce_weight``, ``prior``, ``config`` (FuseConfig
    fields), and the real-video options ``video_clips``, ``val_video_clips``,
    ``video_max_stride``, ``train_videos`` with ``video_fn`` (supplied by the flow)."""
    d = FuseTrainDefaults()
    ex = dict(options.extra)
    edit_fn, band_fn = ex.pop("edit_fn", None), ex.pop("band_fn", None)
    prior_fn = ex.pop("prior_fn", None)
    if edit_fn is None or band_fn is None:
        raise ValueError("the fuse trainer needs options.extra['edit_fn'] and ['band_fn'] (run "
                         "it through reel.flows.train.train_model / `reel train fuse`)")
    run = clip_run_options(options, ex, d)
    steps, bs, lr = run.steps, run.batch_size, run.lr
    n_clips, n_val, frames, size = run.clips, run.val_clips, run.frames, run.size
    band_px = float(ex.get("band_px", d.band_px))
    bce_w = float(ex.get("bce_weight", d.bce_weight))
    config = FuseConfig(**{"prior": ex.get("prior", d.prior), **ex.get("config", {})})
    if config.prior == "input" and prior_fn is None:
        raise ValueError("FuseNet with prior='input' needs options.extra['prior_fn'] (the "
                         "classical fuser; supplied by `reel train fuse`)")
    if config.prior != "input":
        prior_fn = None
    vid = video_options(ex, d, "fuse")
    device = start_run(options, d.threads)
    with Stopwatch() as sw_data:
        train = build_dataset(TRAIN_IMAGES, n_clips, edit_fn, band_fn, frames=frames, size=size,
                              seed=options.seed, band_px=band_px, prior_fn=prior_fn,
                              cache_dir=options.work_dir)
        val = build_dataset(VAL_IMAGES, n_val, edit_fn, band_fn, frames=frames, size=size,
                            seed=options.seed + 1000, band_px=band_px, prior_fn=prior_fn,
                            cache_dir=options.work_dir)
        train, val_video = vid.add_datasets(
            train, build_video_dataset, seed=options.seed, edit_fn=edit_fn, band_fn=band_fn,
            frames=frames, size=size, band_px=band_px, prior_fn=prior_fn,
            cache_dir=options.work_dir)
    n_train = len(train["L"])
    seed_everything(options.seed)
    model = FuseNet(config).to(device)
    opt, sched = cosine_adam(model, lr, steps)
    rng = np.random.default_rng(options.seed)

    def batch_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return make_batch(train, rng.integers(0, n_train, size=bs), rng=rng, device=device)

    def validate(m: torch.nn.Module) -> dict[str, float]:
        return with_video_metrics(evaluate, m, val, val_video, device)

    history, metrics, val_history, train_s = fit_and_validate(
        model, opt, batch_fn, lambda m, b: fuse_loss(m, b, bce_w),
        validate, steps=steps, seed=options.seed, device=device,
        scheduler=sched, progress_cb=progress_cb, val_every=run.val_every)
    data_desc = (
        f"Synthetic regional edits of clips ({frames} frames, {size[0]}x{size[1]}) cut from "
        f"stills along random camera paths: train {n_clips} clips from "
        f"{', '.join(TRAIN_IMAGES)}; validation {n_val} clips from {', '.join(VAL_IMAGES)} "
        "(held out). Edits, exact and coarse masks from reel's generator "
        "(reel.tasks.edit.synthetic_regional_edit, as in `reel benchmark fusion`); band weight "
        f"of the coarse mask with band_px = {band_px:g} (reel.tasks.fusers.band_weight); prior "
        f"blend weight: {'the classical guided fuser (reel.tasks.fusers guided, defaults) run on each clip' if config.prior == 'input' else 'the feathered coarse mask'}. Same "
        "random ab rotation of original, edited and ideal chroma; flips. None of the benchmark "
        f"videos used.{vid.description()} Data synthesis: {sw_data.seconds:.0f} s (or cache "
        "hit).")
    return TrainResult(
        name="fuse", model=model, config=config, steps=steps,
        wall_s=train_s + sw_data.seconds, history=history, val_metrics=metrics,
        val_history=val_history, data_description=data_desc,
        description=("FuseNet: blend weight of a regional edit predicted only inside the coarse "
                     "mask's edge band, from spectral (FFC, rfft2) blocks and per-position "
                     "temporal attention across the window's frames; outside the band the "
                     "result is exactly the original, inside the core exactly the edit."),
        params={"batch_size": bs, "lr": lr, "clips": n_clips, "val_clips": n_val,
                "frames": frames, "size": f"{size[0]}x{size[1]}", "band_px": band_px,
                "bce_weight": bce_w, **vid.params(),
                "threads": torch.get_num_threads(), "seed": options.seed,
                "train_s": round(train_s, 1), "data_s": round(sw_data.seconds, 1)},
        device=device.type)


__all__ = ["FuseTrainDefaults", "build_dataset", "build_video_dataset", "evaluate", "fuse_loss", "make_batch",
           "train_fuse"]
