"""Trainer ``harmonize``: self-supervised training of :class:`HarmonizeNet` on synthetic composites.

Data (offline, seeded; nothing from the benchmark videos bikes, carphone or bigbuckbunny):

- *Stills*: the same colour stills as ``refcolor`` (scikit-image astronaut, chelsea, rocket,
  hubble_deep_field, immunohistochemistry, retina; scikit-learn china, flower) for training,
  scikit-image ``coffee`` held out for validation.
- *Regions*: SLIC superpixels of each still (``skimage.segmentation.slic``, ~``n_segments``
  segments, in Lab) — object-like regions, as reel's ``slic-flow`` segmenter gives in production.
- *Clips*: :func:`camera_clip` cuts ``frames`` frames of ``size`` from the still (and its label
  map, nearest neighbour) along a smooth random camera path (pan, zoom, roll). With
  ``video_clips`` / ``val_video_clips`` > 0 also clips of real colour videos
  (:func:`reel.models.refcolor_train.video_clip_cutter`), regions from :func:`video_labels`
  (held-out videos for validation, metrics ``video_*``). The shipped checkpoint uses none.
- *Composites*: reel's own composite generator (:func:`reel.tasks.composites.make_composite`,
  injected by the flow as ``options.extra["composite_fn"]``: models never import tasks) perturbs
  one region of each clip (kinds shift, scale, hue, mixed, drift; per-frame jitter in a third
  of the clips). In ``identity_fraction`` of the samples the foreground is left unperturbed, so
  the network learns to leave harmonious regions alone.
- *Augmentation*: the same random ab rotation for composite and truth, horizontal flips.

Loss: L1(harmonized ab, truth ab) over the foreground (mask-normalised), in ab / ab_scale.
Validation (held-out still, no augmentation): fPSNR (RGB, R = 255, foreground pixels) of the
composite and of the harmonized clip, and the gain.

Example
-------
>>> import numpy as np
>>> lab = np.zeros((60, 80, 3), np.float32); lab[..., 0] = 50
>>> lab_clip, lab_ids = camera_clip(lab, np.zeros((60, 80), np.int32), np.random.default_rng(0),
...                                 frames=3, size=(24, 32))
>>> lab_clip.shape, lab_ids.shape
((3, 24, 32, 3), (3, 24, 32))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from reel.models.harmonize_net import HarmonizeConfig, HarmonizeNet
from reel.models.refcolor_train import (TRAIN_IMAGES, TRAIN_VIDEOS, VAL_IMAGES, _affine,
                                        load_still, video_clip_cutter, video_options,
                                        video_shapes_key, with_video_metrics)
from reel.models.training import (ProgressCb, Stopwatch, TrainOptions, TrainResult,
                                  cached_npz, clip_run_options, cosine_adam, fit_and_validate,
                                  register_trainer, seed_everything, start_run)

DATA_VERSION = "1"
KINDS = ("shift", "scale", "hue", "mixed", "drift")

#: composite_fn(frames_rgb list of uint8 (H, W, 3), labels uint16 (T, H, W), seed=int,
#: kind=str, jitter=float) -> object with ``frames`` (list of uint8 RGB) and ``masks`` bool (T, H, W)
CompositeFn = Callable[..., Any]


@dataclasses.dataclass
class HarmonizeTrainDefaults:
    """Defaults of the shipped checkpoint (``reel train harmonize``)."""

    steps: int = 1500
    batch_size: int = 4
    lr: float = 2e-3
    clips: int = 96
    val_clips: int = 8
    frames: int = 3
    size: tuple[int, int] = (64, 96)
    n_segments: int = 14
    identity_fraction: float = 0.15
    val_every: int = 500
    threads: int | None = 1
    #: clips cut from real colour videos (reel.models.refcolor_train.video_clip_cutter; regions
    #: = :func:`video_labels`) added to the still clips for training, and held-out video clips
    #: for validation (metrics ``video_*``); 0 for the shipped checkpoint
    video_clips: int = 0
    val_video_clips: int = 0
    video_max_stride: int = 2
    train_videos: tuple[str, ...] = TRAIN_VIDEOS


def camera_clip(image_lab: np.ndarray, labels: np.ndarray | None, rng: np.random.Generator, *,
                frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray | None]:
    """A clip float32 (T, H, W, 3) Lab cut from ``image_lab`` along a smooth random camera path
    (pan 1–4 % of the crop per frame, zoom ±1.5 %/frame, roll ±0.5°/frame), and the same crops
    of ``labels`` (int, (h, w) of the image; nearest neighbour) as int32 (T, H, W), or None."""
    H, W = size
    ih, iw = image_lab.shape[:2]
    crop_w = rng.uniform(0.4, 0.85) * min(iw, ih * W / H)
    scale = crop_w / W
    cx, cy = rng.uniform(0.35, 0.65) * iw, rng.uniform(0.35, 0.65) * ih
    speed = rng.uniform(0.01, 0.04) * crop_w
    heading = rng.uniform(0, 2 * math.pi)
    zoom = rng.uniform(-0.015, 0.015)
    roll = math.radians(rng.uniform(-0.5, 0.5))
    angle = 0.0
    out = np.empty((frames, H, W, 3), np.float32)
    lab_out = None if labels is None else np.empty((frames, H, W), np.int32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for t in range(frames):
        M = _affine(cx, cy, scale, angle, (H, W))
        out[t] = cv2.warpAffine(image_lab, M, (W, H), flags=flags, borderMode=cv2.BORDER_REFLECT)
        if labels is not None:
            lab_out[t] = cv2.warpAffine(labels.astype(np.float32), M, (W, H),
                                        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                        borderMode=cv2.BORDER_REFLECT).astype(np.int32)
        cx += speed * math.cos(heading)
        cy += speed * math.sin(heading)
        scale *= 1.0 + zoom
        angle += roll
    return out, lab_out


def lab_to_rgb_u8(lab: np.ndarray) -> np.ndarray:
    """float32 Lab (…, H, W, 3) -> uint8 RGB (OpenCV float conversion, rounded)."""
    lab = np.asarray(lab, np.float32)
    flat = lab.reshape(-1, *lab.shape[-3:])
    rgb = np.stack([cv2.cvtColor(f, cv2.COLOR_Lab2RGB) for f in flat])
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8).reshape(lab.shape)


def rgb_u8_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (…, H, W, 3) -> float32 Lab (L in [0, 100])."""
    rgb = np.asarray(rgb)
    flat = rgb.reshape(-1, *rgb.shape[-3:])
    lab = np.stack([cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) for f in flat])
    return lab.reshape(rgb.shape).astype(np.float32)


def slic_labels(image_lab: np.ndarray, n_segments: int) -> np.ndarray:
    """SLIC superpixels (int32 (h, w)) of a Lab still, computed at most 320 px wide."""
    from skimage.segmentation import slic

    h, w = image_lab.shape[:2]
    f = min(1.0, 320.0 / max(h, w))
    small = cv2.resize(image_lab, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    lab = slic(lab_to_rgb_u8(small), n_segments=n_segments, compactness=12.0, start_label=0,
               channel_axis=-1)
    return cv2.resize(lab.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST
                      ).astype(np.int32)


def video_labels(clip_lab: np.ndarray, n_segments: int) -> np.ndarray:
    """Region labels int32 (T, H, W) of a real video clip float32 (T, H, W, 3) Lab: SLIC
    superpixels of frame 0 (:func:`slic_labels`), carried to every later frame along DIS
    optical flow from that frame to frame 0 (nearest neighbour), so a region follows the
    content as the camera and objects move.

    Example
    -------
    >>> clip = np.zeros((2, 24, 32, 3), np.float32); clip[..., 0] = 50; clip[:, :, 16:, 1] = 40
    >>> video_labels(clip, 2).shape
    (2, 24, 32)
    """
    T, H, W = clip_lab.shape[:3]
    out = np.empty((T, H, W), np.int32)
    out[0] = slic_labels(clip_lab[0], n_segments)
    gray = [np.round(np.clip(f[..., 0], 0, 100) * 2.55).astype(np.uint8) for f in clip_lab]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    src = out[0].astype(np.float32)
    for t in range(1, T):
        flow = dis.calc(gray[t], gray[0], None)  # frame t -> frame 0
        out[t] = cv2.remap(src, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.int32)
    return out


def _composite_clips(cut: Callable[[int], tuple[np.ndarray, np.ndarray]], n_clips: int,
                     composite_fn: CompositeFn, rng: np.random.Generator, *, frames: int,
                     size: tuple[int, int], seed: int, identity_fraction: float
                     ) -> dict[str, np.ndarray]:
    """Composites of the clips ``cut(0..n_clips-1)`` = (Lab clip, labels) (arrays of
    :func:`build_dataset`)."""
    gt = np.empty((n_clips, frames, *size, 3), np.float16)
    comp = np.empty_like(gt)
    masks = np.empty((n_clips, frames, *size), np.uint8)
    for i in range(n_clips):
        clip, lab_ids = cut(i)
        rgb = lab_to_rgb_u8(clip)
        gt_lab = rgb_u8_to_lab(rgb)  # the truth is what an 8-bit frame holds
        kind = KINDS[int(rng.integers(0, len(KINDS)))]
        jitter = float(rng.uniform(1.0, 4.0)) if rng.random() < 0.33 else 0.0
        c = composite_fn(list(rgb), lab_ids.astype(np.uint16), seed=seed * 100003 + i,
                         kind=kind, jitter=jitter)
        m = np.asarray(c.masks, bool)
        gt[i] = gt_lab
        masks[i] = m
        comp[i] = (gt_lab if rng.random() < identity_fraction
                   else rgb_u8_to_lab(np.stack(c.frames)))
    return {"gt": gt, "comp": comp, "mask": masks}


def build_dataset(images: Sequence[str], n_clips: int, composite_fn: CompositeFn, *,
                  frames: int, size: tuple[int, int], seed: int, n_segments: int,
                  identity_fraction: float, cache_dir: Path | None = None
                  ) -> dict[str, np.ndarray]:
    """Synthesize ``n_clips`` composites (cached as .npz under ``cache_dir``).

    Returns ``gt`` float16 (N, T, H, W, 3) Lab truth, ``comp`` float16 (N, T, H, W, 3) Lab
    composite, ``mask`` uint8 (N, T, H, W) foreground.
    """
    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        stills = [load_still(s) for s in images]
        labels = [slic_labels(s, n_segments) for s in stills]
        return _composite_clips(
            lambda i: camera_clip(stills[i % len(stills)], labels[i % len(stills)], rng,
                                  frames=frames, size=size),
            n_clips, composite_fn, rng, frames=frames, size=size, seed=seed,
            identity_fraction=identity_fraction)

    return cached_npz(cache_dir, "harmonize",
                      [DATA_VERSION, list(images), n_clips, frames, list(size), seed, n_segments,
                       identity_fraction], build)


def build_video_dataset(shots: dict[str, list[np.ndarray]], n_clips: int,
                        composite_fn: CompositeFn, *, frames: int, size: tuple[int, int],
                        seed: int, n_segments: int, identity_fraction: float,
                        max_stride: int = 2, cache_dir: Path | None = None
                        ) -> dict[str, np.ndarray]:
    """:func:`build_dataset` on clips cut from real colour video shots
    (:func:`reel.models.refcolor_train.video_clip_cutter`), regions from :func:`video_labels`."""
    cutter = video_clip_cutter(shots, frames=frames, size=size, max_stride=max_stride)

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)

        def cut(i: int) -> tuple[np.ndarray, np.ndarray]:
            clip = cutter(i, rng)
            return clip, video_labels(clip, n_segments)

        return _composite_clips(cut, n_clips, composite_fn, rng, frames=frames, size=size,
                                seed=seed, identity_fraction=identity_fraction)

    return cached_npz(cache_dir, "harmonize-video",
                      [DATA_VERSION, video_shapes_key(shots), n_clips, frames, list(size), seed,
                       n_segments, identity_fraction, max_stride], build)


def make_batch(data: dict[str, np.ndarray], idx: np.ndarray, *, rng: np.random.Generator | None,
               device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors (B, T, C, H, W) of clips ``idx``; with ``rng``: one random ab rotation per
    sample (same for composite and truth) and random horizontal flips."""
    comp, gt, mask = [], [], []
    for i in idx:
        c = data["comp"][i].astype(np.float32)
        g = data["gt"][i].astype(np.float32)
        m = data["mask"][i].astype(np.float32)
        if rng is not None:
            th = rng.uniform(0, 2 * math.pi)
            R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]],
                         np.float32)
            c[..., 1:] = c[..., 1:] @ R.T
            g[..., 1:] = g[..., 1:] @ R.T
            if rng.random() < 0.5:
                c, g, m = c[:, :, ::-1], g[:, :, ::-1], m[:, :, ::-1]
        comp.append(c)
        gt.append(g)
        mask.append(m)

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(np.stack(x)))

    c, g = t(comp).permute(0, 1, 4, 2, 3), t(gt).permute(0, 1, 4, 2, 3)
    return {"L": c[:, :, :1].to(device), "ab": c[:, :, 1:].to(device),
            "mask": t(mask).unsqueeze(2).to(device), "gt": g[:, :, 1:].to(device)}


def harmonize_loss(model: HarmonizeNet, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Mask-normalised L1 of the foreground chroma, in ab / ab_scale."""
    out = model(batch["L"], batch["ab"], batch["mask"])["ab"].float()
    m = batch["mask"]
    n = m.sum() * 2 + 1.0
    l1 = ((out - batch["gt"]).abs() * m).sum() / n / model.config.ab_scale
    l1_in = ((batch["ab"] - batch["gt"]).abs() * m).sum() / n / model.config.ab_scale
    return l1, {"l1_fg": float(l1.detach()), "l1_fg_composite": float(l1_in)}


def _fpsnr(lab_pred: np.ndarray, lab_true: np.ndarray, mask: np.ndarray) -> float:
    a = lab_to_rgb_u8(lab_pred).astype(np.float64)
    b = lab_to_rgb_u8(lab_true).astype(np.float64)
    m = mask.astype(bool)
    if not m.any():
        return float("nan")
    e = float(((a - b) ** 2)[m].mean())
    return 100.0 if e <= 0 else min(100.0, 10.0 * math.log10(255.0**2 / e))


@torch.no_grad()
def evaluate(model: HarmonizeNet, data: dict[str, np.ndarray], device: torch.device,
             batch_size: int = 4) -> dict[str, float]:
    """fPSNR of composite and harmonized frames over the validation clips (and the gain)."""
    model.eval()
    N = data["gt"].shape[0]
    ps_h, ps_c, l1 = [], [], []
    for k in range(0, N, batch_size):
        idx = np.arange(k, min(N, k + batch_size))
        b = make_batch(data, idx, rng=None, device=device)
        out = model(b["L"], b["ab"], b["mask"])["ab"].float().cpu().numpy()
        for j, i in enumerate(idx):
            gt = data["gt"][i].astype(np.float32)
            comp = data["comp"][i].astype(np.float32)
            m = data["mask"][i]
            pred = np.concatenate([comp[..., :1], out[j].transpose(0, 2, 3, 1)], -1)
            for t in range(gt.shape[0]):
                ps_h.append(_fpsnr(pred[t], gt[t], m[t]))
                ps_c.append(_fpsnr(comp[t], gt[t], m[t]))
            l1.append(float(np.abs(pred[..., 1:] - gt[..., 1:])[m.astype(bool)].mean()))
    h, c = float(np.nanmean(ps_h)), float(np.nanmean(ps_c))
    return {"fpsnr_harmonized": h, "fpsnr_composite": c, "fpsnr_gain_db": h - c,
            "l1_fg_ab": float(np.mean(l1))}


@register_trainer("harmonize", description="HarmonizeNet: fg/bg attention harmonization",
                  model_cls=HarmonizeNet, config_cls=HarmonizeConfig,
                  defaults_cls=HarmonizeTrainDefaults)
def train_harmonize(options: TrainOptions, progress_cb: ProgressCb | None = None) -> TrainResult:
    """Train HarmonizeNet (see the module docstring). ``options.extra``: ``composite_fn``
    (required, supplied by ``reel.flows.train``), optionally ``clips``, ``val_clips``,
    ``frames``, ``size`` (H, W), ``n_segments``, ``identity_fraction``, ``config``
    (HarmonizeConfig fields), and the real-video options ``video_clips``, ``val_video_clips``,
    ``video_max_stride``, ``train_videos`` with ``video_fn`` (supplied by the flow)."""
    d = HarmonizeTrainDefaults()
    ex = dict(options.extra)
    composite_fn = ex.pop("composite_fn", None)
    if composite_fn is None:
        raise ValueError("the harmonize trainer needs options.extra['composite_fn'] (run it "
                         "through reel.flows.train.train_model / `reel train harmonize`)")
    run = clip_run_options(options, ex, d)
    steps, bs, lr = run.steps, run.batch_size, run.lr
    n_clips, n_val, frames, size = run.clips, run.val_clips, run.frames, run.size
    n_seg = int(ex.get("n_segments", d.n_segments))
    idf = float(ex.get("identity_fraction", d.identity_fraction))
    vid = video_options(ex, d, "harmonize")
    device = start_run(options, d.threads)
    with Stopwatch() as sw_data:
        train = build_dataset(TRAIN_IMAGES, n_clips, composite_fn, frames=frames, size=size,
                              seed=options.seed, n_segments=n_seg, identity_fraction=idf,
                              cache_dir=options.work_dir)
        val = build_dataset(VAL_IMAGES, n_val, composite_fn, frames=frames, size=size,
                            seed=options.seed + 1000, n_segments=n_seg, identity_fraction=0.0,
                            cache_dir=options.work_dir)
        train, val_video = vid.add_datasets(
            train, build_video_dataset, seed=options.seed, composite_fn=composite_fn,
            frames=frames, size=size, n_segments=n_seg, cache_dir=options.work_dir,
            train_kw={"identity_fraction": idf}, val_kw={"identity_fraction": 0.0})
    n_train = len(train["gt"])
    config = HarmonizeConfig(**ex.get("config", {}))
    seed_everything(options.seed)
    model = HarmonizeNet(config).to(device)
    opt, sched = cosine_adam(model, lr, steps)
    rng = np.random.default_rng(options.seed)

    def batch_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return make_batch(train, rng.integers(0, n_train, size=bs), rng=rng, device=device)

    def validate(m: torch.nn.Module) -> dict[str, float]:
        return with_video_metrics(evaluate, m, val, val_video, device)

    history, metrics, val_history, train_s = fit_and_validate(
        model, opt, batch_fn, harmonize_loss, validate, steps=steps,
        seed=options.seed, device=device, scheduler=sched, progress_cb=progress_cb,
        val_every=run.val_every)
    data_desc = (
        f"Synthetic composites ({frames} frames, {size[0]}x{size[1]}) from stills: train "
        f"{n_clips} clips from {', '.join(TRAIN_IMAGES)}; validation {n_val} clips from "
        f"{', '.join(VAL_IMAGES)} (held out). Camera paths over the still and its SLIC "
        f"superpixels (~{n_seg}); one region perturbed by reel's composite generator "
        "(reel.tasks.composites.make_composite: shift/scale/hue/mixed/drift, per-frame jitter "
        f"in a third of the clips); {idf:.0%} of the training clips unperturbed (identity). "
        "Same random ab rotation for composite and truth; flips. None of the benchmark videos "
        f"(bikes, carphone, bigbuckbunny) used.{vid.description()}"
        + (" Regions of a video clip: SLIC of its first frame carried along DIS flow."
           if vid.train_clips or vid.val_clips else "")
        + f" Data synthesis: {sw_data.seconds:.0f} s (or cache hit).")
    return TrainResult(
        name="harmonize", model=model, config=config, steps=steps,
        wall_s=train_s + sw_data.seconds, history=history, val_metrics=metrics,
        val_history=val_history, data_description=data_desc,
        description=("HarmonizeNet: per-pixel affine ab correction of a foreground region from "
                     "multiscale non-local foreground→background attention (1/4 and 1/8), "
                     "fg/bg chroma statistics (FiLM) and a ConvGRU over frames; "
                     "zero-initialised output (identity at init)."),
        params={"batch_size": bs, "lr": lr, "clips": n_clips, "val_clips": n_val,
                "frames": frames, "size": f"{size[0]}x{size[1]}", "n_segments": n_seg,
                "identity_fraction": idf, **vid.params(), "threads": torch.get_num_threads(),
                "seed": options.seed, "train_s": round(train_s, 1),
                "data_s": round(sw_data.seconds, 1)},
        device=device.type)


__all__ = ["HarmonizeTrainDefaults", "build_dataset", "camera_clip", "evaluate",
           "harmonize_loss", "lab_to_rgb_u8", "make_batch", "rgb_u8_to_lab", "slic_labels",
           "train_harmonize", "build_video_dataset", "video_labels"]
