"""Trainer ``refcolor``: self-supervised training of :class:`RefColorNet` on synthetic clips
and clips of real colour video.

Data (offline, seeded; nothing from the benchmark videos bikes, carphone or bigbuckbunny):

- *Stills*: scikit-image's colour images (astronaut, chelsea, rocket, hubble_deep_field,
  immunohistochemistry, retina) and scikit-learn's sample images (china, flower) for training;
  scikit-image's ``coffee`` is held out for validation.
- *Clips*: each is ``frames`` frames of ``size`` (H, W) cut from one still along a smooth random
  camera path (pan 1–5 % of the crop per frame, zoom ±1.5 %/frame, roll ±0.6°/frame), with, in
  most clips, a soft-edged sprite cut from another still moving on its own path (occlusion and
  disocclusion, which flow propagation handles worst); optionally (``late_sprite_prob``, 0 for
  the shipped checkpoint) the sprite appears only after the reference frame. Luminance is
  quantised to 8 bits as in reel's gray inputs.
- *Real video* (``video_clips``, ``val_video_clips``): clips cut from the shots of real colour
  videos shipped in Debian packages (``reel.tasks.samples.TRAINING_VIDEOS``; the flow fetches
  and decodes them and passes ``options.extra["video_fn"]``): :data:`TRAIN_VIDEOS` for training,
  :data:`VAL_VIDEOS` held out for validation (metrics ``video_*``) and for the engine's
  post-processing selection. A clip takes every k-th frame (k in 1..``video_max_stride``) of
  one detected shot, in one random crop and scale (:func:`cut_video_clip`): real object
  motion, lighting and content entering the frame that the reference does not show.
- *Reference*: the clip's first frame in colour — the protocol of ``reel benchmark colorize``.
- *Classical input*: the real ``exemplar-propagate`` engine run on each gray clip with that
  reference, at the clip's resolution (its temporally smoothed analysis-grid chroma and
  per-pixel confidence, exactly what ``learned-refcolor`` feeds the network). It is injected by
  the flow as ``options.extra["classical_fn"]`` (models never import tasks) and cached under
  ``options.work_dir``.
- *Augmentation* (seed 004 §8.3, what made the attention learn): the ab plane of the target,
  the reference *and* the classical chroma is rotated by one random angle and scaled by one
  random saturation factor per sample, so colours cannot be guessed from L alone; random
  horizontal flips.

Loss: L1(refined ab, truth) + 0.5·L1(attention-warped reference ab, truth), on the window's
centre frame, in Lab units / 110. Adam, cosine-decayed learning rate.

Validation (held-out stills and held-out videos, no augmentation): PSNR (RGB, MAX 255) of the
centre frames of windows, with the refined chroma and with the classical chroma, and their
difference.

Example
-------
>>> clip = synthesize_clip(np.zeros((200, 300, 3), np.float32) + 50, None,
...                        np.random.default_rng(0), frames=4, size=(24, 32))
>>> clip.shape
(4, 24, 32, 3)
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

from reel.models.refcolor_net import RefColorConfig, RefColorNet
from reel.models.training import (ProgressCb, Stopwatch, TrainOptions, TrainResult,
                                  cached_npz, clip_run_options, cosine_adam, fit_and_validate,
                                  register_trainer, seed_everything, start_run)

TRAIN_IMAGES = ("skimage:astronaut", "skimage:chelsea", "skimage:rocket",
                "skimage:hubble_deep_field", "skimage:immunohistochemistry", "skimage:retina",
                "sklearn:china.jpg", "sklearn:flower.jpg")
VAL_IMAGES = ("skimage:coffee",)
#: refcolor's validation stills. ``build_dataset`` cuts a clip's sprite from *another* still of
#: its list, so ``coffee`` alone gives clips without sprites (occlusions); the left view of
#: ``stereo_motorcycle`` (held out too) supplies them. The harmonize and fuse trainers keep
#: :data:`VAL_IMAGES`.
REFCOLOR_VAL_IMAGES = ("skimage:coffee", "skimage:stereo_motorcycle")
#: Real colour videos (names of ``reel.tasks.samples.TRAINING_VIDEOS``, fetched from Debian
#: packages by the flow; none is a benchmark video): clips for training, and held-out videos
#: for validation and for the engine's post-processing selection.
TRAIN_VIDEOS = ("cockatoo", "vtest", "tree", "motion", "megamind", "blupi-history2",
                "blupi-win005", "blupi-play103")
VAL_VIDEOS = ("city", "diver")
#: the videos of the held-out rule that chose the shipped checkpoint (``reel benchmark colorize
#: --held-out``): the validation videos plus a held-out animated film; never trained on
HELD_OUT_VIDEOS = VAL_VIDEOS + ("fillets",)
DATA_VERSION = "2"
VIDEO_DATA_VERSION = "1"
#: seed offsets (from the run's seed) of the training and the held-out video clips
VIDEO_TRAIN_SEED_OFFSET, VIDEO_VAL_SEED_OFFSET = 2000, 3000

#: classical_fn(frames_L: list of float32 (H, W) in [0, 100], reference_lab float32 (H, W, 3))
#: -> (ab float32 (T, H, W, 2), confidence float32 (T, H, W))
ClassicalFn = Callable[[list[np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray]]
#: video_fn(names) -> {name: [shot uint8 RGB (T, H, W, 3), ...]} (reel.tasks.samples.training_video_shots)
VideoFn = Callable[[Sequence[str]], dict[str, list[np.ndarray]]]


@dataclasses.dataclass
class RefColorTrainDefaults:
    """Defaults of the shipped checkpoint (``reel train refcolor``)."""

    steps: int = 400
    batch_size: int = 8
    lr: float = 1e-3
    clips: int = 128
    val_clips: int = 6
    frames: int = 12
    size: tuple[int, int] = (96, 128)
    warp_loss_weight: float = 0.5
    #: weight of the temporal term of :func:`refcolor_loss` (0: the shipped checkpoint)
    temporal_loss_weight: float = 0.0
    val_every: int = 200
    threads: int = 1
    #: share of clips whose sprite appears after the reference frame (content the reference
    #: does not show). 0 for the shipped checkpoint: 0.5 (with the in-network gate, 600 steps)
    #: gained on the synthetic validation (+1.67 dB) but lost 2.7 dB on bigbuckbunny
    late_sprite_prob: float = 0.0
    #: training clips cut from the real videos :data:`TRAIN_VIDEOS` (added to ``clips``
    #: synthetic ones), and validation clips from the held-out :data:`VAL_VIDEOS`
    video_clips: int = 256
    val_video_clips: int = 12
    #: names of the training videos (``--param 'train_videos=[...]'``); must not include one of
    #: the held-out :data:`HELD_OUT_VIDEOS`
    train_videos: tuple[str, ...] = TRAIN_VIDEOS
    #: a video clip takes every k-th frame of its shot, k drawn from 1..video_max_stride
    video_max_stride: int = 2
    #: RefColorConfig fields of the shipped network (none: the defaults)
    config: dict = dataclasses.field(default_factory=dict)


# --- data ------------------------------------------------------------------------------------
def load_still(spec: str, max_side_px: int = 640) -> np.ndarray:
    """A colour still as float32 Lab (OpenCV convention: L [0, 100]), longest side <= max."""
    src, name = spec.split(":", 1)
    if src == "skimage":
        import skimage.data

        rgb = getattr(skimage.data, name)()
        if isinstance(rgb, tuple):  # stereo_motorcycle: (left, right, disparity)
            rgb = rgb[0]
    elif src == "sklearn":
        from sklearn.datasets import load_sample_image

        rgb = load_sample_image(name)
    else:
        raise ValueError(f"unknown image source {src!r}")
    rgb = np.ascontiguousarray(rgb[..., :3])
    h, w = rgb.shape[:2]
    f = min(1.0, max_side_px / max(h, w))
    if f < 1.0:
        rgb = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _affine(cx: float, cy: float, scale: float, angle_rad: float, out_hw: tuple[int, int]
            ) -> np.ndarray:
    """2x3 matrix mapping output pixels to source pixels (crop centred at cx, cy)."""
    H, W = out_hw
    c, s = math.cos(angle_rad) * scale, math.sin(angle_rad) * scale
    ox, oy = (W - 1) / 2.0, (H - 1) / 2.0
    return np.array([[c, -s, cx - c * ox + s * oy], [s, c, cy - s * ox - c * oy]], np.float64)


def synthesize_clip(image_lab: np.ndarray, sprite_lab: np.ndarray | None,
                    rng: np.random.Generator, *, frames: int, size: tuple[int, int],
                    late_sprite_prob: float = 0.0) -> np.ndarray:
    """A synthetic clip float32 (T, H, W, 3) Lab: camera path over ``image_lab`` and, when
    given, a sprite cut from ``sprite_lab`` moving on its own path (see module docstring).

    With probability ``late_sprite_prob`` the sprite is absent from the first frames and
    appears at a random frame in ``[2, T/2]`` (content the reference, frame 0, does not show).
    """
    H, W = size
    ih, iw = image_lab.shape[:2]
    crop_w = rng.uniform(0.35, 0.8) * min(iw, ih * W / H)
    scale = crop_w / W
    cx, cy = rng.uniform(0.3, 0.7) * iw, rng.uniform(0.3, 0.7) * ih
    speed = rng.uniform(0.01, 0.05) * crop_w
    heading = rng.uniform(0, 2 * math.pi)
    zoom = rng.uniform(-0.015, 0.015)
    roll = math.radians(rng.uniform(-0.6, 0.6))
    angle = 0.0
    sprite = None
    appear = 0
    if sprite_lab is not None:
        sh, sw = int(H * rng.uniform(0.3, 0.5)), int(W * rng.uniform(0.25, 0.45))
        y0 = int(rng.integers(0, sprite_lab.shape[0] - 2 * sh))
        x0 = int(rng.integers(0, sprite_lab.shape[1] - 2 * sw))
        patch = cv2.resize(sprite_lab[y0:y0 + 2 * sh, x0:x0 + 2 * sw], (sw, sh),
                           interpolation=cv2.INTER_AREA)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        r = np.hypot((yy - (sh - 1) / 2) / (sh / 2), (xx - (sw - 1) / 2) / (sw / 2))
        alpha = np.clip((1.0 - r) * 4.0, 0.0, 1.0)
        pos = np.array([rng.uniform(0, W - sw), rng.uniform(0, H - sh)])
        vel = rng.uniform(-0.06, 0.06, size=2) * np.array([W, H])
        sprite = (patch, alpha, pos, vel)
        if late_sprite_prob > 0 and frames > 3 and rng.random() < late_sprite_prob:
            appear = int(rng.integers(2, max(3, frames // 2 + 1)))
    out = np.empty((frames, H, W, 3), np.float32)
    for t in range(frames):
        M = _affine(cx, cy, scale, angle, (H, W))
        frame = cv2.warpAffine(image_lab, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        if sprite is not None and t >= appear:
            patch, alpha, pos, vel = sprite
            T2 = np.array([[1.0, 0.0, pos[0] + vel[0] * t], [0.0, 1.0, pos[1] + vel[1] * t]])
            sp = cv2.warpAffine(patch, T2, (W, H), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
            a = cv2.warpAffine(alpha, T2, (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT)[..., None]
            frame = frame * (1.0 - a) + sp * a
        out[t] = frame
        cx += speed * math.cos(heading)
        cy += speed * math.sin(heading)
        cx, cy = float(np.clip(cx, 0, iw - 1)), float(np.clip(cy, 0, ih - 1))
        scale *= 1.0 + zoom
        angle += roll
    # gray inputs are 8-bit: quantise L as reel's gray_to_L round trip does
    out[..., 0] = np.round(np.clip(out[..., 0], 0, 100) * 2.55) / 2.55
    return out


def _with_classical(cut: Callable[[int], np.ndarray], n_clips: int, classical_fn: ClassicalFn,
                    *, frames: int, size: tuple[int, int],
                    progress: Callable[[int, int], None] | None) -> dict[str, np.ndarray]:
    """Clips ``cut(0..n_clips-1)`` (float32 Lab (T, H, W, 3)) with the classical engine run on
    each (reference = the clip's first frame), as the float16 arrays of :func:`build_dataset`."""
    labs = np.empty((n_clips, frames, *size, 3), np.float16)
    abs_ = np.empty((n_clips, frames, *size, 2), np.float16)
    confs = np.empty((n_clips, frames, *size), np.float16)
    for i in range(n_clips):
        clip = cut(i)
        ab, conf = classical_fn([f[..., 0].copy() for f in clip], clip[0].copy())
        labs[i], abs_[i], confs[i] = clip, ab, conf
        if progress:
            progress(i + 1, n_clips)
    return {"lab": labs, "ab_cls": abs_, "conf": confs}


def build_dataset(images: Sequence[str], n_clips: int, classical_fn: ClassicalFn, *,
                  frames: int, size: tuple[int, int], seed: int,
                  late_sprite_prob: float = 0.0, cache_dir: Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Synthesize ``n_clips`` clips and run the classical engine on each (cached as .npz).

    Returns float16 arrays: ``lab`` (N, T, H, W, 3) truth, ``ab_cls`` (N, T, H, W, 2),
    ``conf`` (N, T, H, W).
    """
    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        stills = [load_still(s) for s in images]

        def cut(i: int) -> np.ndarray:
            j = i % len(stills)
            other = stills[(j + 1 + int(rng.integers(0, max(len(stills) - 1, 1)))) % len(stills)]
            sprite = other if (rng.random() < 0.7 and len(stills) > 1) else None
            return synthesize_clip(stills[j], sprite, rng, frames=frames, size=size,
                                   late_sprite_prob=late_sprite_prob)

        return _with_classical(cut, n_clips, classical_fn, frames=frames, size=size,
                               progress=progress)

    return cached_npz(cache_dir, "refcolor",
                      [DATA_VERSION, list(images), n_clips, frames, list(size), seed,
                       late_sprite_prob], build)


def cut_video_clip(shot_rgb: np.ndarray, rng: np.random.Generator, *, frames: int,
                   size: tuple[int, int], max_stride: int = 2) -> np.ndarray:
    """A clip float32 (T, H, W, 3) Lab cut from one shot of a real colour video.

    Every k-th frame (k drawn from ``1..max_stride``, lowered when the shot is short) from a
    random start; one random crop of the shot's aspect ``size`` scaled by z in [1, largest
    fitting], area-resized to ``size``. L is quantised to 8 bits as in reel's gray inputs.

    Parameters
    ----------
    shot_rgb : uint8 (N, h, w, 3), N >= frames, h >= size[0], w >= size[1]

    Example
    -------
    >>> shot = np.zeros((20, 60, 80, 3), np.uint8)
    >>> cut_video_clip(shot, np.random.default_rng(0), frames=4, size=(24, 32)).shape
    (4, 24, 32, 3)
    """
    n, h, w = shot_rgb.shape[:3]
    H, W = size
    if n < frames or h < H or w < W:
        raise ValueError(f"shot {shot_rgb.shape[:3]} too small for {frames} frames of {size}")
    k = int(rng.integers(1, max(1, int(max_stride)) + 1))
    k = max(1, min(k, (n - 1) // max(frames - 1, 1)))
    t0 = int(rng.integers(0, n - (frames - 1) * k))
    z = rng.uniform(1.0, min(h / H, w / W))
    ch, cw = min(h, round(H * z)), min(w, round(W * z))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = np.empty((frames, H, W, 3), np.float32)
    for i in range(frames):
        crop = shot_rgb[t0 + i * k, y0:y0 + ch, x0:x0 + cw]
        crop = cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA)
        out[i] = cv2.cvtColor(crop.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    out[..., 0] = np.round(np.clip(out[..., 0], 0, 100) * 2.55) / 2.55
    return out


def video_clip_cutter(shots: dict[str, list[np.ndarray]], *, frames: int,
                      size: tuple[int, int], max_stride: int = 2
                      ) -> Callable[[int, np.random.Generator], np.ndarray]:
    """``cut(i, rng)``: clip ``i`` (:func:`cut_video_clip`) of real video shots, the videos
    taken in turn (sorted by name) and a shot drawn in proportion to its usable length.

    Raises ValueError when a video has no shot of ``frames`` frames of ``size`` (also used by
    the harmonize and fuse trainers).
    """
    names = sorted(shots)
    usable = {n: [s for s in shots[n] if len(s) >= frames and s.shape[1] >= size[0]
                  and s.shape[2] >= size[1]] for n in names}
    empty = [n for n in names if not usable[n]]
    if not names or empty:
        raise ValueError(f"no shot of at least {frames} frames of {size} in video(s) "
                         f"{', '.join(empty) or '(none given)'}")

    def cut(i: int, rng: np.random.Generator) -> np.ndarray:
        cand = usable[names[i % len(names)]]
        lengths = np.array([len(s) - frames + 1 for s in cand], np.float64)
        shot = cand[int(rng.choice(len(cand), p=lengths / lengths.sum()))]
        return cut_video_clip(shot, rng, frames=frames, size=size, max_stride=max_stride)

    return cut


def video_shapes_key(shots: dict[str, list[np.ndarray]]) -> dict[str, list[list[int]]]:
    """Cache-key part naming real video shots: ``{video: [shot shape, ...]}``."""
    return {n: [list(s.shape) for s in shots[n]] for n in sorted(shots)}


def build_video_dataset(shots: dict[str, list[np.ndarray]], n_clips: int,
                        classical_fn: ClassicalFn, *, frames: int, size: tuple[int, int],
                        seed: int, max_stride: int = 2, cache_dir: Path | None = None,
                        progress: Callable[[int, int], None] | None = None
                        ) -> dict[str, np.ndarray]:
    """``n_clips`` clips cut from real video shots (:func:`video_clip_cutter`); reference = the
    clip's first frame; the classical engine run on each (cached as .npz keyed by the videos'
    names and shot shapes). Same arrays as :func:`build_dataset`.
    """
    cutter = (video_clip_cutter(shots, frames=frames, size=size, max_stride=max_stride)
              if n_clips > 0 else None)

    def build() -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return _with_classical(lambda i: cutter(i, rng), n_clips, classical_fn, frames=frames,
                               size=size, progress=progress)

    key = [VIDEO_DATA_VERSION, video_shapes_key(shots), n_clips, frames, list(size), seed,
           max_stride]
    return cached_npz(cache_dir, "refcolor-video", key, build)


def concat_datasets(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clip datasets joined along the clip axis (empty parts skipped)."""
    parts = tuple(p for p in parts if len(next(iter(p.values()))))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@dataclasses.dataclass(frozen=True)
class VideoOptions:
    """Real-video clip options of a trainer (``video_clips``, ``val_video_clips``,
    ``video_max_stride``, ``train_videos`` and the injected ``video_fn``)."""

    train_clips: int
    val_clips: int
    max_stride: int
    train_videos: tuple[str, ...]
    video_fn: VideoFn | None

    def train_shots(self) -> dict[str, list[np.ndarray]]:
        return self.video_fn(self.train_videos) if self.train_clips > 0 else {}

    def val_shots(self) -> dict[str, list[np.ndarray]]:
        return self.video_fn(VAL_VIDEOS) if self.val_clips > 0 else {}

    def description(self) -> str:
        if self.train_clips <= 0 and self.val_clips <= 0:
            return ""
        return (f" Real colour video (Debian packages, reel.tasks.samples.TRAINING_VIDEOS): "
                f"train {self.train_clips} clips from {', '.join(self.train_videos)}; "
                f"validation {self.val_clips} clips from {', '.join(VAL_VIDEOS)} (held out, "
                f"metrics prefixed video_); every k-th frame (k = 1..{self.max_stride}) of a "
                "detected shot, random crop and scale.")

    def params(self) -> dict[str, Any]:
        return {"video_clips": self.train_clips, "val_video_clips": self.val_clips,
                "video_max_stride": self.max_stride, "train_videos": ",".join(self.train_videos)}

    def add_datasets(self, train: dict[str, np.ndarray], build_video: Callable[..., dict],
                     *, seed: int, train_kw: dict[str, Any] | None = None,
                     val_kw: dict[str, Any] | None = None, **kw: Any
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """``(train`` + the training video clips, the held-out video clips or None``)``, built by
        a trainer's ``build_video(shots, n_clips, seed=..., max_stride=..., **kw)`` with seeds
        ``seed +`` :data:`VIDEO_TRAIN_SEED_OFFSET` / :data:`VIDEO_VAL_SEED_OFFSET`
        (``train_kw`` / ``val_kw``: keywords for one of the two only)."""
        kw["max_stride"] = self.max_stride
        if self.train_clips > 0:
            train = concat_datasets(train, build_video(
                self.train_shots(), self.train_clips, seed=seed + VIDEO_TRAIN_SEED_OFFSET,
                **kw, **(train_kw or {})))
        val = (build_video(self.val_shots(), self.val_clips, seed=seed + VIDEO_VAL_SEED_OFFSET,
                           **kw, **(val_kw or {}))
               if self.val_clips > 0 else None)
        return train, val


def video_options(extra: dict[str, Any], defaults: Any, trainer: str) -> VideoOptions:
    """Resolve a trainer's real-video options from ``extra`` (``video_fn`` is popped) over its
    ``defaults`` dataclass (fields ``video_clips``, ``val_video_clips``, ``video_max_stride``,
    ``train_videos``). Raises ValueError when a held-out video is asked for training or when
    clips are asked without a ``video_fn``.

    >>> @dataclasses.dataclass
    ... class D:
    ...     video_clips: int = 0; val_video_clips: int = 0; video_max_stride: int = 2
    ...     train_videos: tuple = TRAIN_VIDEOS
    >>> video_options({"train_videos": ["tree", "city"]}, D(), "x")
    Traceback (most recent call last):
    ...
    ValueError: train_videos must not include the held-out video(s) city (HELD_OUT_VIDEOS)
    """
    d = defaults
    opts = VideoOptions(
        train_clips=int(extra.get("video_clips", d.video_clips)),
        val_clips=int(extra.get("val_video_clips", d.val_video_clips)),
        max_stride=int(extra.get("video_max_stride", d.video_max_stride)),
        train_videos=tuple(extra.get("train_videos", d.train_videos)),
        video_fn=extra.pop("video_fn", None))
    leaked = sorted(set(opts.train_videos) & set(HELD_OUT_VIDEOS))
    if leaked:
        raise ValueError(f"train_videos must not include the held-out video(s) "
                         f"{', '.join(leaked)} (HELD_OUT_VIDEOS)")
    if (opts.train_clips > 0 or opts.val_clips > 0) and opts.video_fn is None:
        raise ValueError("video clips need options.extra['video_fn'] (run it through "
                         f"reel.flows.train.train_model / `reel train {trainer}`), or set "
                         "video_clips=0 and val_video_clips=0")
    return opts


def make_batch(data: dict[str, np.ndarray], idx: np.ndarray, centres: np.ndarray, *,
               window: int, rng: np.random.Generator | None, device: torch.device,
               next_frame: bool = False) -> dict[str, torch.Tensor]:
    """Tensors for windows centred at ``centres`` of clips ``idx``; reference = frame 0.

    With ``rng``: the same random ab rotation and saturation scale for truth, reference and
    classical chroma of each sample, and random horizontal flips. With ``next_frame``, also
    the windows centred one frame later (clamped to the clip's last frame), with the same
    augmentation, under the keys ``L_next``, ``ab_cls_next``, ``conf_next``, ``gt_next`` (for
    the temporal loss); the random draws are the same with or without it.
    """
    h = window // 2
    T = data["lab"].shape[1]
    keys = ("L", "ab_cls", "conf", "gt")
    cols: dict[str, list] = {k: [] for k in keys + tuple(f"{k}_next" for k in keys) + ("ref",)}
    for i, c in zip(idx, centres):
        lab = data["lab"][i].astype(np.float32)
        r = lab[0].copy()
        R, flip = None, False
        if rng is not None:
            th = rng.uniform(0, 2 * math.pi)
            sat = rng.uniform(0.7, 1.3)
            R = (sat * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
                 ).astype(np.float32)
            r[..., 1:] = r[..., 1:] @ R.T
            flip = rng.random() < 0.5
        if flip:
            r = r[..., ::-1, :]
        cols["ref"].append(r)
        for suffix, centre in (("", c), ("_next", min(c + 1, T - 1)))[:1 + bool(next_frame)]:
            ts = np.clip(np.arange(centre - h, centre + h + 1), 0, T - 1)
            win = lab[ts]
            cls = data["ab_cls"][i][ts].astype(np.float32)
            cf = data["conf"][i][ts].astype(np.float32)
            g = lab[centre, ..., 1:].copy()
            if R is not None:
                cls, g = cls @ R.T, g @ R.T
            if flip:
                # flip the width axis: -2 for (…, W, C) arrays, -1 for conf (T, H, W)
                win, cls, g = (x[..., ::-1, :] for x in (win, cls, g))
                cf = cf[..., ::-1]
            for k, v in zip(keys, (win[..., 0], cls, cf, g)):
                cols[k + suffix].append(v)

    def t(x, perm):
        return torch.from_numpy(np.ascontiguousarray(np.stack(x))).permute(*perm).to(device)

    out = {"ref": t(cols["ref"], (0, 3, 1, 2)).unsqueeze(1)}
    for suffix in ("", "_next")[:1 + bool(next_frame)]:
        out.update({f"L{suffix}": t(cols[f"L{suffix}"], (0, 1, 2, 3)).unsqueeze(2),
                    f"ab_cls{suffix}": t(cols[f"ab_cls{suffix}"], (0, 1, 4, 2, 3)),
                    f"conf{suffix}": t(cols[f"conf{suffix}"], (0, 1, 2, 3)).unsqueeze(2),
                    f"gt{suffix}": t(cols[f"gt{suffix}"], (0, 3, 1, 2))})
    return out


def refcolor_loss(model: RefColorNet, batch: dict[str, torch.Tensor], warp_weight: float = 0.5,
                  temporal_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """L1(refined, truth) + warp_weight · L1(attention-warped reference ab, truth)
    [+ temporal_weight · L1 of the refined chroma's change to the next frame minus the truth's
    (needs a batch made with ``next_frame=True``)], all / ab_scale.

    The temporal term penalises frame-to-frame chroma changes the truth does not have (flicker)
    without a flow: both frames see the same camera motion, so the differences are comparable.
    """
    out = model(batch["L"], batch["ab_cls"], batch["conf"], batch["ref"])
    s = 1.0 / model.config.ab_scale
    l_ab = (out["ab"].float() - batch["gt"]).abs().mean() * s
    l_warp = (out["warped_ab"].float() - batch["gt"]).abs().mean() * s
    loss = l_ab + warp_weight * l_warp
    logs = {"l1_ab": float(l_ab.detach()), "l1_warp": float(l_warp.detach())}
    if temporal_weight > 0:
        if "L_next" not in batch:
            raise ValueError("temporal_weight > 0 needs a batch made with next_frame=True")
        nxt = model(batch["L_next"], batch["ab_cls_next"], batch["conf_next"], batch["ref"])
        d_pred = nxt["ab"].float() - out["ab"].float()
        d_true = batch["gt_next"] - batch["gt"]
        l_t = (d_pred - d_true).abs().mean() * s
        loss = loss + temporal_weight * l_t
        logs["l1_temporal"] = float(l_t.detach())
    return loss, logs


def _rgb_psnr(lab_true: np.ndarray, ab_pred: np.ndarray) -> float:
    a = cv2.cvtColor(lab_true.astype(np.float32), cv2.COLOR_Lab2RGB)
    pred = np.concatenate([lab_true[..., :1], ab_pred], axis=-1).astype(np.float32)
    b = cv2.cvtColor(pred, cv2.COLOR_Lab2RGB)
    a, b = np.clip(a, 0, 1) * 255.0, np.clip(b, 0, 1) * 255.0
    mse = float(np.mean((a - b) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))


@torch.no_grad()
def evaluate(model: RefColorNet, data: dict[str, np.ndarray], device: torch.device,
             batch_size: int = 16) -> dict[str, float]:
    """PSNR of refined and classical chroma on every inner window centre of ``data``."""
    model.eval()
    N, T = data["lab"].shape[:2]
    pairs = [(i, c) for i in range(N) for c in range(1, T)]
    ps_ref, ps_cls, l1 = [], [], []
    for k in range(0, len(pairs), batch_size):
        chunk = pairs[k:k + batch_size]
        b = make_batch(data, np.array([p[0] for p in chunk]), np.array([p[1] for p in chunk]),
                       window=model.config.window, rng=None, device=device)
        out = model(b["L"], b["ab_cls"], b["conf"], b["ref"])["ab"].float().cpu().numpy()
        for j, (i, c) in enumerate(chunk):
            lab = data["lab"][i, c].astype(np.float32)
            pred = out[j].transpose(1, 2, 0)
            ps_ref.append(_rgb_psnr(lab, pred))
            ps_cls.append(_rgb_psnr(lab, data["ab_cls"][i, c].astype(np.float32)))
            l1.append(float(np.abs(pred - lab[..., 1:]).mean()))
    r, c = float(np.mean(ps_ref)), float(np.mean(ps_cls))
    return {"psnr_refined": r, "psnr_classical": c, "psnr_gain_db": r - c,
            "l1_ab_refined": float(np.mean(l1))}


def validate(model: RefColorNet, val: dict[str, np.ndarray],
             val_video: dict[str, np.ndarray] | None, device: torch.device) -> dict[str, float]:
    """:func:`evaluate` on the synthetic validation clips, plus on the held-out video clips
    (keys prefixed ``video_``) when there are some."""
    return with_video_metrics(evaluate, model, val, val_video, device)


def with_video_metrics(evaluate_fn: Callable[..., dict[str, float]], model: torch.nn.Module,
                       val: dict[str, np.ndarray], val_video: dict[str, np.ndarray] | None,
                       device: torch.device) -> dict[str, float]:
    """A trainer's ``evaluate_fn(model, data, device)`` on its still validation clips, plus on
    its held-out video clips with the keys prefixed ``video_`` (when there are some)."""
    out = evaluate_fn(model, val, device)
    if val_video is not None:
        out.update({f"video_{k}": v for k, v in evaluate_fn(model, val_video, device).items()})
    return out


# --- the trainer -----------------------------------------------------------------------------
@register_trainer("refcolor", description="RefColorNet: residual refinement of exemplar-propagate",
                  model_cls=RefColorNet, config_cls=RefColorConfig,
                  defaults_cls=RefColorTrainDefaults)
def train_refcolor(options: TrainOptions, progress_cb: ProgressCb | None = None) -> TrainResult:
    """Train RefColorNet (see the module docstring). ``options.extra``: ``classical_fn``
    (required, supplied by ``reel.flows.train``), and optionally ``clips``, ``val_clips``,
    ``frames``, ``size`` (H, W), ``warp_loss_weight``, ``temporal_loss_weight``,
    ``late_sprite_prob``, ``config``
    (RefColorConfig fields, over the defaults' ``config``), and the real-video options
    ``video_clips``, ``val_video_clips``, ``video_max_stride``, ``train_videos`` with
    ``video_fn`` (supplied by the flow)."""
    d = RefColorTrainDefaults()
    ex = dict(options.extra)
    classical_fn = ex.pop("classical_fn", None)
    if classical_fn is None:
        raise ValueError("the refcolor trainer needs options.extra['classical_fn'] (run it "
                         "through reel.flows.train.train_model / `reel train refcolor`)")
    run = clip_run_options(options, ex, d)
    steps, bs, lr = run.steps, run.batch_size, run.lr
    n_clips, n_val, frames, size = run.clips, run.val_clips, run.frames, run.size
    warp_w = float(ex.get("warp_loss_weight", d.warp_loss_weight))
    temporal_w = float(ex.get("temporal_loss_weight", d.temporal_loss_weight))
    late = float(ex.get("late_sprite_prob", d.late_sprite_prob))
    vid = video_options(ex, d, "refcolor")
    device = start_run(options, d.threads)
    with Stopwatch() as sw_data:
        train = build_dataset(TRAIN_IMAGES, n_clips, classical_fn, frames=frames, size=size,
                              seed=options.seed, late_sprite_prob=late,
                              cache_dir=options.work_dir)
        val = build_dataset(REFCOLOR_VAL_IMAGES, n_val, classical_fn, frames=frames, size=size,
                            seed=options.seed + 1000, late_sprite_prob=late,
                            cache_dir=options.work_dir)
        train, val_video = vid.add_datasets(
            train, build_video_dataset, seed=options.seed, classical_fn=classical_fn,
            frames=frames, size=size, cache_dir=options.work_dir)
    n_train = len(train["lab"])
    config = RefColorConfig(**{**d.config, **ex.get("config", {})})
    seed_everything(options.seed)
    model = RefColorNet(config).to(device)
    opt, sched = cosine_adam(model, lr, steps)
    rng = np.random.default_rng(options.seed)
    h = config.window // 2

    def batch_fn(step: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, n_train, size=bs)
        centres = rng.integers(1, frames, size=bs)  # frame 0 is the reference
        return make_batch(train, idx, centres, window=2 * h + 1, rng=rng, device=device,
                          next_frame=temporal_w > 0)

    history, metrics, val_history, train_s = fit_and_validate(
        model, opt, batch_fn, lambda m, b: refcolor_loss(m, b, warp_w, temporal_w),
        lambda m: validate(m, val, val_video, device), steps=steps, seed=options.seed,
        device=device,
        scheduler=sched, progress_cb=progress_cb, val_every=run.val_every)
    video_desc = vid.description()
    data_desc = (
        f"Synthetic clips ({frames} frames, {size[0]}x{size[1]}) from stills: train "
        f"{n_clips} clips from {', '.join(TRAIN_IMAGES)}; validation {n_val} clips from "
        f"{', '.join(REFCOLOR_VAL_IMAGES)} (held out). Camera paths + moving sprites (in {late:.0%} of "
        "the clips with a sprite it appears after the reference frame: content the reference "
        "does not show)." + video_desc + " Reference = the "
        "clip's first colour frame; classical input = exemplar-propagate run on each clip "
        "(real engine, cached). Same random ab rotation + saturation for truth, reference and "
        "classical chroma. None of the benchmark videos (bikes, carphone, bigbuckbunny) used. "
        f"Data synthesis + classical runs: {sw_data.seconds:.0f} s (or cache hit).")
    return TrainResult(
        name="refcolor", model=model, config=config, steps=steps, wall_s=train_s + sw_data.seconds,
        history=history, val_metrics=metrics, val_history=val_history,
        data_description=data_desc,
        description=("RefColorNet refines exemplar-propagate: reference attention (with a "
                     "direct warp of reference colours), learned alignment of neighbouring "
                     "frames with grid_sample, temporal aggregation over a 3-frame window, "
                     "zero-initialised residual on the classical chroma"
                     + (f", gated by (1 - {config.confidence_gate:g} x classical confidence)"
                        if config.confidence_gate > 0 else "") + "."),
        params={"batch_size": bs, "lr": lr, "clips": n_clips, "val_clips": n_val,
                "frames": frames, "size": f"{size[0]}x{size[1]}", "warp_loss_weight": warp_w,
                "temporal_loss_weight": temporal_w, "late_sprite_prob": late,
                **vid.params(),
                "threads": torch.get_num_threads(), "seed": options.seed,
                "train_s": round(train_s, 1), "data_s": round(sw_data.seconds, 1)},
        device=device.type)


__all__ = ["RefColorTrainDefaults", "TRAIN_IMAGES", "VAL_IMAGES", "REFCOLOR_VAL_IMAGES",
           "TRAIN_VIDEOS", "VAL_VIDEOS", "HELD_OUT_VIDEOS", "VIDEO_VAL_SEED_OFFSET", "build_dataset", "build_video_dataset",
           "concat_datasets", "cut_video_clip", "video_clip_cutter", "video_options",
           "video_shapes_key", "VideoOptions", "evaluate", "load_still", "make_batch",
           "refcolor_loss", "synthesize_clip", "train_refcolor", "validate", "with_video_metrics"]
