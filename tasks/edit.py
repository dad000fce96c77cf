"""Regional colour edits: a colour transform applied inside one region of a shot and fused
across the region's border by a fuser (:mod:`reel.tasks.fusers`) so no seam, halo or flicker
appears.

The colour transform (:func:`apply_edit`, CIE Lab, L in [0, 100], a/b in Lab units)
-----------------------------------------------------------------------------------
Applied in this order, with :class:`EditParams`:

``hue_deg`` (degrees, [-180, 180])
    rotation of (a, b) about the neutral axis; chroma ``sqrt(a^2 + b^2)`` is unchanged.
``saturation`` (factor, [0, 4]; 1 = unchanged, 0 = gray)
    (a, b) scaled by the factor.
``warmth`` ([-1, 1]; 0 = unchanged)
    a shift of ``warmth * WARMTH_AB * sin(pi L / 100)`` Lab units along the warm axis (hue
    angle ``WARM_AXIS_DEG`` = 70 degrees, orange-yellow; negative = towards blue). Full strength
    in the mid-tones, none at black and white, so shadows and highlights stay neutral.
``brightness`` (L units, [-50, 50]; 0 = unchanged)
    mid-gray (L = 50) moves by exactly ``brightness``; the offset tapers linearly to 0 at white
    (when brightening) or black (when darkening): ``L + 2 b (1 - L/100)`` for ``b > 0``,
    ``L + 2 b L/100`` for ``b < 0``. Monotonic and always within [0, 100], so no detail clips.

The edit task (:func:`edit_shot`)
---------------------------------
Streams a restored shot in windows of ``Fuser.window_frames`` frames: Lab of the window, then
for each edit in order: region mask (segmentation labels upsampled with nearest neighbour, or a
box), the transform applied to *every* pixel, and the fuser blending original and edited inside
the region's edge band. Pixels the edits leave untouched are copied bit for bit.

An edit is a dict ``{"region": {"labels": [ids]} | {"box": [x0, y0, x1, y1]}, "params":
{hue_deg, saturation, warmth, brightness}, "id": <region_edits row id, optional>}`` or, the
older re-run form, ``{"region": ..., "target_rgb": "#rrggbb", "strength": 0..1}`` (a constant
chroma shift moving the region's mean chroma over the shot towards the target; needs a first
pass over the shot).

Synthetic edits (:func:`synthetic_regional_edit`)
-------------------------------------------------
Ground-truth regional edits on colour clips for ``reel benchmark fusion`` and for training a
learned fuser: a colour region of the clip (k-means in Lab), a known transform, the ideal
result (transform composited through the exact region mask) and a coarse, flickering mask like
the one the pipeline has (downsampled, jittered per frame).

Example
-------
>>> import numpy as np
>>> L = np.full((1, 2, 2), 60, np.float32); ab = np.zeros((1, 2, 2, 2), np.float32); ab[..., 0] = 20
>>> L2, ab2 = apply_edit(L, ab, EditParams(hue_deg=90))
>>> [round(float(v), 3) for v in ab2[0, 0, 0]], bool((L2 == L).all())
([0.0, 20.0], True)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from reel.registry import params_hash
from reel.tasks.fusers import FUSERS, Fuser

#: Hue angle (degrees, in the a/b plane) of the warm direction of ``warmth``.
WARM_AXIS_DEG = 70.0
#: Lab units of chroma shift at ``warmth = 1`` (mid-tones).
WARMTH_AB = 20.0
#: Allowed ranges of :class:`EditParams` fields (inclusive).
RANGES = {"hue_deg": (-180.0, 180.0), "saturation": (0.0, 4.0), "warmth": (-1.0, 1.0),
          "brightness": (-50.0, 50.0)}


class EditError(ValueError):
    """An edit that cannot be applied (bad parameters, empty region, missing labels)."""


@dataclass(frozen=True)
class EditParams:
    """Parameters of a regional colour edit (units and ranges: module docstring, :data:`RANGES`).

    >>> EditParams.from_dict({"hue_deg": 30, "saturation": 1.2}).to_dict()
    {'hue_deg': 30.0, 'saturation': 1.2, 'warmth': 0.0, 'brightness': 0.0}
    >>> EditParams().is_identity
    True
    """

    hue_deg: float = 0.0
    saturation: float = 1.0
    warmth: float = 0.0
    brightness: float = 0.0

    def __post_init__(self) -> None:
        for name, (lo, hi) in RANGES.items():
            v = float(getattr(self, name))
            if not math.isfinite(v) or not lo <= v <= hi:
                raise EditError(f"{name} must be in [{lo:g}, {hi:g}], got {v:g}")
            object.__setattr__(self, name, v)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EditParams":
        unknown = set(d) - set(RANGES)
        if unknown:
            raise EditError(f"unknown edit parameter(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(RANGES)}")
        return cls(**{k: float(v) for k, v in d.items()})

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def is_identity(self) -> bool:
        return self == EditParams()


def apply_brightness(L: np.ndarray, brightness: float) -> np.ndarray:
    """L after a ``brightness`` edit (L units at mid-gray), float32, always within [0, 100].

    >>> apply_brightness(np.float32([0, 50, 100]), 20).tolist()
    [40.0, 70.0, 100.0]
    """
    L = np.asarray(L, np.float32)
    b = float(brightness)
    if b == 0:
        return L.copy()
    Lc = np.clip(L, 0.0, 100.0)
    out = Lc + 2.0 * b * ((1.0 - Lc / 100.0) if b > 0 else Lc / 100.0)
    return np.clip(out, 0.0, 100.0).astype(np.float32)


def apply_edit(L: np.ndarray, ab: np.ndarray, params: EditParams | dict[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Apply the colour transform to every pixel: returns ``(L', ab')`` (float32).

    Parameters
    ----------
    L : float32 (..., ) luminance in [0, 100] (any shape, e.g. (T, H, W) or (H, W)).
    ab : float32 (..., 2) chroma, same leading shape as ``L``.
    params : :class:`EditParams` or its dict.

    Returns
    -------
    (L', ab') : ``L'`` is ``L`` itself (a copy) unless ``brightness`` is set; ``ab'`` is a new
        array. Zero parameters give ``L`` and ``ab`` unchanged (bit for bit).

    Example
    -------
    >>> L = np.float32([[50.0]]); ab = np.float32([[[10.0, 0.0]]])
    >>> _, out = apply_edit(L, ab, {"saturation": 2.0, "warmth": 0.5})
    >>> [round(float(v), 2) for v in out[0, 0]]
    [23.42, 9.4]
    """
    p = params if isinstance(params, EditParams) else EditParams.from_dict(params)
    L = np.asarray(L, np.float32)
    ab = np.asarray(ab, np.float32)
    if ab.shape != L.shape + (2,):
        raise EditError(f"ab must have shape {L.shape + (2,)}, got {ab.shape}")
    out = ab.copy()
    if p.hue_deg != 0.0:
        th = math.radians(p.hue_deg)
        c, s = np.float32(math.cos(th)), np.float32(math.sin(th))
        a, b = out[..., 0].copy(), out[..., 1].copy()
        out[..., 0] = c * a - s * b
        out[..., 1] = s * a + c * b
    if p.saturation != 1.0:
        out *= np.float32(p.saturation)
    if p.warmth != 0.0:
        ax = math.radians(WARM_AXIS_DEG)
        amount = (p.warmth * WARMTH_AB) * np.sin(np.pi * np.clip(L, 0.0, 100.0) / 100.0)
        out[..., 0] += (amount * math.cos(ax)).astype(np.float32)
        out[..., 1] += (amount * math.sin(ax)).astype(np.float32)
    return apply_brightness(L, p.brightness), out


# ------------------------------------------------------------------------------------------
# regions
# ------------------------------------------------------------------------------------------


def target_ab(hex_rgb: str) -> np.ndarray:
    """Lab chroma ``(a, b)`` (float32) of a ``#rrggbb`` colour.

    >>> [round(float(v)) for v in target_ab("#808080")]
    [0, 0]
    """
    from reel.tasks.colorspace import rgb_to_lab

    h = hex_rgb.lstrip("#")
    rgb = np.array([[[int(h[i:i + 2], 16) for i in (0, 2, 4)]]], np.uint8)
    return rgb_to_lab(rgb)[0, 0, 1:].astype(np.float32)


def region_mask(shape_hw: tuple[int, int], region: dict[str, Any],
                labels_hw: np.ndarray | None = None, *, feather_px: float = 0.0) -> np.ndarray:
    """Mask (float32 in [0, 1], shape ``shape_hw``) of an edit region.

    Parameters
    ----------
    shape_hw : (H, W) of the frames.
    region : ``{"labels": [ids]}`` (needs ``labels_hw``, the frame's uint16 label map at any
        resolution; resized with nearest neighbour) or ``{"box": [x0, y0, x1, y1]}`` in
        fractions of the width and height.
    feather_px : Gaussian sigma (pixels) softening the border (0: a hard 0/1 mask, what the
        fusers expect).

    Example
    -------
    >>> mk = region_mask((4, 8), {"box": [0.0, 0.0, 0.5, 1.0]})
    >>> mk.dtype, float(mk[:, :4].min()), float(mk[:, 4:].max())
    (dtype('float32'), 1.0, 0.0)
    """
    H, W = int(shape_hw[0]), int(shape_hw[1])
    if "labels" in region:
        if labels_hw is None:
            raise EditError("a labels region needs the segmentation label map")
        hit = np.isin(labels_hw, np.asarray(region["labels"], dtype=labels_hw.dtype))
        mask = cv2.resize(hit.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
        mask = mask.astype(np.float32)
    else:
        x0, y0, x1, y1 = region["box"]
        mask = np.zeros((H, W), np.float32)
        c0, c1 = int(round(x0 * W)), int(round(x1 * W))
        r0, r1 = int(round(y0 * H)), int(round(y1 * H))
        mask[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)] = 1.0
    if feather_px > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=float(feather_px), sigmaY=float(feather_px))
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def shift_region_ab(rgb_u8: np.ndarray, mask_f32: np.ndarray, delta_ab: np.ndarray) -> np.ndarray:
    """Add ``mask * delta_ab`` to the chroma of an RGB frame, keeping its luminance L.

    >>> f = np.full((2, 2, 3), 128, np.uint8)
    >>> out = shift_region_ab(f, np.array([[1, 0], [0, 0]], np.float32), np.array([30, 0], np.float32))
    >>> bool(out[0, 0, 0] > out[0, 0, 1]), out[1, 1].tolist()
    (True, [128, 128, 128])
    """
    from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

    lab = rgb_to_lab(rgb_u8)
    ab = lab[..., 1:] + mask_f32[..., None] * np.asarray(delta_ab, np.float32)[None, None, :]
    return lab_to_rgb(lab[..., 0], ab)


def normalize_edit(edit: dict[str, Any]) -> dict[str, Any]:
    """Check one edit dict (module docstring) and return it in canonical form.

    >>> normalize_edit({"region": {"labels": [3, 1]}, "params": {"hue_deg": 20}})
    {'region': {'labels': [1, 3]}, 'params': {'hue_deg': 20.0, 'saturation': 1.0, 'warmth': 0.0, 'brightness': 0.0}}
    """
    if not isinstance(edit, dict):
        raise EditError("an edit must be a dict with 'region' and 'params' (or 'target_rgb')")
    region = edit.get("region")
    if not isinstance(region, dict) or not ({"labels", "box"} & set(region)):
        raise EditError("edit region must be {'labels': [ids]} or {'box': [x0, y0, x1, y1]}")
    if "labels" in region:
        labels = sorted({int(v) for v in region["labels"]})
        if not labels or labels[0] < 0:
            raise EditError("edit region labels must be non-negative region ids")
        reg: dict[str, Any] = {"labels": labels}
    else:
        box = [float(v) for v in region["box"]]
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            raise EditError("edit region box must be [x0, y0, x1, y1] fractions, x0 < x1, y0 < y1")
        reg = {"box": box}
    out: dict[str, Any] = {"region": reg}
    if "target_rgb" in edit:
        target = str(edit["target_rgb"])
        if len(target) != 7 or target[0] != "#" or any(c not in "0123456789abcdefABCDEF" for c in target[1:]):
            raise EditError(f"target_rgb must be '#rrggbb', got {target!r}")
        strength = float(edit.get("strength", 1.0))
        if not 0.0 < strength <= 1.0:
            raise EditError(f"strength must be in (0, 1], got {strength}")
        out.update(target_rgb=target.lower(), strength=strength)
    else:
        out["params"] = EditParams.from_dict(dict(edit.get("params") or {})).to_dict()
    if edit.get("id") is not None:
        out["id"] = int(edit["id"])
    return out


# ------------------------------------------------------------------------------------------
# the edit task
# ------------------------------------------------------------------------------------------


@dataclass
class EditResult:
    """What :func:`edit_shot` returns to the flow (QC reads ``out_path``)."""

    out_path: Path
    n_frames: int
    #: Mean over every pixel of every frame of ``|ab_out - ab_in|`` (Lab units).
    mean_shift_ab: float
    #: Stage description for the catalog: engine ``regional-edit``, its params hold the edits,
    #: ``region_edit_ids`` (catalog rows applied) and the fuser's own description.
    engine: dict
    seconds: float
    n_edits: int = 0
    fuser: str = ""


def _load_labels(labels_path: str | os.PathLike | None, edits: Sequence[dict]) -> np.ndarray | None:
    if not any("labels" in e["region"] for e in edits):
        return None
    if labels_path is None or not Path(labels_path).is_file():
        raise EditError("a labels region needs the shot's segmentation (labels.npz); "
                        "run the shot first")
    with np.load(labels_path) as npz:
        return np.asarray(npz["labels"])


def _windows(path: Path, n: int) -> Iterator[np.ndarray]:
    from reel.tasks import media

    buf: list[np.ndarray] = []
    for frame in media.iter_frames(path, pix_fmt="rgb24"):
        buf.append(frame)
        if len(buf) == n:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def edit_shot(in_path: str | os.PathLike, out_path: str | os.PathLike, edits: Sequence[dict], *,
              labels_path: str | os.PathLike | None = None, fuser: str = "guided",
              fuser_params: dict[str, Any] | None = None) -> EditResult:
    """Apply regional colour edits to a restored shot and fuse them across the region borders.

    Parameters
    ----------
    in_path : the shot's restored (harmonized) video; never modified.
    out_path : output, lossless ``media.WORK_CODEC`` (UT Video) Matroska
        (``media.FrameWriter``, atomic).
    edits : edit dicts (module docstring), applied in order, each with its own fuser state.
    labels_path : the shot's segmentation (``labels.npz``, uint16 (T, h, w); frame t uses map
        ``min(t, T - 1)``), needed by ``labels`` regions.
    fuser, fuser_params : a name in :data:`reel.tasks.fusers.FUSERS` and its parameters.

    Example
    -------
    >>> edit_shot("v2/harmonized.mkv", "v2/restored.mkv",  # doctest: +SKIP
    ...           [{"region": {"labels": [3]}, "params": {"hue_deg": 25, "saturation": 1.2}}],
    ...           labels_path="v2/labels.npz")
    """
    from reel.tasks import media
    from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

    t0 = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    edits = [normalize_edit(e) for e in edits]
    if not edits:
        raise EditError("no edits to apply")
    labels = _load_labels(labels_path, edits)
    fusers: list[Fuser] = [FUSERS.create(fuser, **(fuser_params or {})) for _ in edits]
    for f in fusers:
        f.reset()
    info = media.video_format(in_path)
    W, H = (int(v) for v in info.display_size)

    def masks(t0_: int, n: int, region: dict) -> np.ndarray:
        out = np.empty((n, H, W), np.float32)
        for i in range(n):
            lab_t = None if labels is None else labels[min(t0_ + i, labels.shape[0] - 1)]
            out[i] = region_mask((H, W), region, lab_t)
        return out

    # first pass, only for target-colour edits: the region's mean chroma over the shot
    deltas: dict[int, np.ndarray] = {}
    targets = [i for i, e in enumerate(edits) if "target_rgb" in e]
    if targets:
        acc = {i: np.zeros(2, np.float64) for i in targets}
        weight = {i: 0.0 for i in targets}
        t = 0
        for win in _windows(in_path, 16):
            for f in range(win.shape[0]):
                ab = rgb_to_lab(win[f])[..., 1:]
                for i in targets:
                    mk = masks(t + f, 1, edits[i]["region"])[0]
                    acc[i] += (ab * mk[..., None]).reshape(-1, 2).sum(0, dtype=np.float64)
                    weight[i] += float(mk.sum(dtype=np.float64))
            t += win.shape[0]
        for i in targets:
            if weight[i] <= 0:
                raise EditError(f"the edit region {edits[i]['region']} is empty in every frame")
            deltas[i] = ((target_ab(edits[i]["target_rgb"]) - (acc[i] / weight[i]).astype(np.float32))
                         * np.float32(edits[i]["strength"]))

    window = max(1, min(f.window_frames for f in fusers))
    desc_edits = [{**e, **({"delta_ab": [round(float(v), 4) for v in deltas[i]]} if i in deltas else {})}
                  for i, e in enumerate(edits)]
    params = {"edits": desc_edits,
              "region_edit_ids": sorted(e["id"] for e in edits if "id" in e),
              "fuser": fusers[0].describe()}
    desc = {"engine": "regional-edit", "engine_version": "2", "params": params,
            "params_hash": params_hash(params), "weights_sha256": fusers[0].weights_sha256}
    n = 0
    shift_sum = 0.0
    with media.FrameWriter(out_path, W, H, info.fps, pix_fmt_in="rgb24", codec=media.WORK_CODEC,
                           metadata={"reel_stage": "regional-edit",
                                     "reel_params_hash": desc["params_hash"]}) as writer:
        for win in _windows(in_path, window):
            T = win.shape[0]
            lab = np.stack([rgb_to_lab(f) for f in win])
            L0, ab0 = lab[..., 0], lab[..., 1:]
            L, ab = L0, ab0
            for i, e in enumerate(edits):
                mask = masks(n, T, e["region"])
                if not mask.any():
                    continue
                if i in deltas:
                    L_e, ab_e = L, ab + deltas[i][None, None, None, :]
                else:
                    L_e, ab_e = apply_edit(L, ab, e["params"])
                L, ab = fusers[i].fuse_lab(L, L_e, ab, ab_e, mask)
            for f in range(T):
                same = (L[f] == L0[f]) & (ab[f] == ab0[f]).all(-1)
                if same.all():
                    writer.write(win[f])
                    continue
                rgb = lab_to_rgb(L[f], ab[f])
                rgb[same] = win[f][same]
                writer.write(rgb)
            shift_sum += float(np.linalg.norm(ab - ab0, axis=-1).sum(dtype=np.float64))
            n += T
    return EditResult(out_path=out_path, n_frames=n,
                      mean_shift_ab=shift_sum / max(1, n * H * W), engine=desc,
                      seconds=time.perf_counter() - t0, n_edits=len(edits), fuser=fuser)


def regional_edit(in_path: str | os.PathLike, out_path: str | os.PathLike, edit: dict[str, Any], *,
                  labels_path: str | os.PathLike | None = None,
                  feather_px: float = 2.0) -> EditResult:
    """One edit with the ``feather`` fuser (``sigma_px = feather_px``; 0 = hard border).

    Kept for callers of the first regional-edit API (re-run requests with ``target_rgb``); the
    restore flow calls :func:`edit_shot` with the configured fuser. The returned description's
    params also carry the edit's own keys (``region``, ``target_rgb`` ...).
    """
    edit = normalize_edit(edit)
    res = edit_shot(in_path, out_path, [edit], labels_path=labels_path, fuser="feather",
                    fuser_params={"sigma_px": float(feather_px)})
    params = {**edit, **res.engine["params"]}
    res.engine = {**res.engine, "params": params, "params_hash": params_hash(params)}
    return res


# ------------------------------------------------------------------------------------------
# regions of a shot (reel regions)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionStat:
    """One segmentation region of a shot: id, share of the frame, mean colour (Lab and hex)."""

    region_id: int
    area_fraction: float
    frames: int
    mean_L: float
    mean_a: float
    mean_b: float
    hex_rgb: str


def region_stats(video_path: str | os.PathLike, labels_path: str | os.PathLike, *,
                 max_frames: int = 48) -> list[RegionStat]:
    """Area and mean colour of every region of a shot, sorted by area (largest first).

    Samples at most ``max_frames`` frames evenly over the shot (streamed at label resolution).
    ``area_fraction`` is the mean share of the frame; ``frames`` how many sampled frames the
    region appears in.
    """
    from reel.tasks import media
    from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

    with np.load(labels_path) as npz:
        labels = np.asarray(npz["labels"])
    T, h, w = labels.shape
    n_video = media.count_frames(video_path)
    step = max(1, math.ceil(min(T, n_video) / max_frames))
    k = int(labels.max()) + 1
    count = np.zeros(k, np.float64)
    seen = np.zeros(k, np.int64)
    sums = np.zeros((k, 3), np.float64)
    n = 0
    for t, frame in enumerate(media.iter_frames(video_path, pix_fmt="rgb24", width=w, height=h)):
        if t % step or t >= T:
            continue
        lab = rgb_to_lab(frame).reshape(-1, 3).astype(np.float64)
        lt = labels[t].ravel().astype(np.int64)
        count += np.bincount(lt, minlength=k)
        seen += np.bincount(np.unique(lt), minlength=k) > 0
        for c in range(3):
            sums[:, c] += np.bincount(lt, weights=lab[:, c], minlength=k)
        n += 1
    out = []
    for r in np.nonzero(count)[0]:
        mean = (sums[r] / count[r]).astype(np.float32)
        rgb = lab_to_rgb(np.float32([[mean[0]]]), mean[None, None, 1:])[0, 0]
        out.append(RegionStat(int(r), float(count[r] / (max(n, 1) * h * w)), int(seen[r]),
                              float(mean[0]), float(mean[1]), float(mean[2]),
                              "#" + "".join(f"{int(v):02x}" for v in rgb)))
    return sorted(out, key=lambda s: (-s.area_fraction, s.region_id))


# ------------------------------------------------------------------------------------------
# synthetic regional edits (benchmark, training data for learned fusers)
# ------------------------------------------------------------------------------------------


@dataclass
class SyntheticEdit:
    """A clip with a ground-truth regional edit (all arrays float32, ``(T, H, W[, 2])``).

    ``L``, ``ab``: the original clip. ``true_mask``: the exact region (0/1). ``coarse_mask``:
    what a fuser is given (0/1, blocky and jittering from frame to frame). ``L_edited``,
    ``ab_edited``: the transform applied to every pixel (a fuser's ``*_edited`` input).
    ``L_ideal``, ``ab_ideal``: the transform composited through ``true_mask`` (the target).
    ``band``: bool, pixels closer than ``band_px`` to the border of ``true_mask``.
    """

    L: np.ndarray
    ab: np.ndarray
    true_mask: np.ndarray
    coarse_mask: np.ndarray
    L_edited: np.ndarray
    ab_edited: np.ndarray
    L_ideal: np.ndarray
    ab_ideal: np.ndarray
    band: np.ndarray
    params: EditParams
    band_px: float
    info: dict[str, Any] = field(default_factory=dict)


def random_edit_params(rng: np.random.Generator) -> EditParams:
    """A visible random edit: hue +-(20..90) deg, saturation 0.6..1.6, warmth +-0.6,
    brightness +-12 (each drawn independently).

    >>> random_edit_params(np.random.default_rng(0)) == random_edit_params(np.random.default_rng(0))
    True
    """
    return EditParams(hue_deg=float(rng.choice([-1, 1]) * rng.uniform(20, 90)),
                      saturation=float(rng.uniform(0.6, 1.6)),
                      warmth=float(rng.uniform(-0.6, 0.6)),
                      brightness=float(rng.uniform(-12, 12)))


def _clean_mask(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area_px
    return keep[lab]


def synthetic_regional_edit(rgb: np.ndarray, *, params: EditParams | None = None, seed: int = 0,
                            n_clusters: int = 4, area_range: tuple[float, float] = (0.08, 0.6),
                            coarse_scale: int = 3, jitter_px: int = 1,
                            band_px: float = 8.0) -> SyntheticEdit:
    """Make a ground-truth regional edit of a colour clip.

    Parameters
    ----------
    rgb : uint8 (T, H, W, 3) colour frames of one shot (kept in memory: keep clips short).
    params : the transform; default :func:`random_edit_params` from ``seed``.
    seed : seeds k-means, the region choice, the edit and the mask jitter (deterministic).
    n_clusters : k of the k-means in Lab (on frame 0 blurred with sigma 1.5 px, L weighted
        0.5) that defines colour regions; every (blurred) frame is assigned to the nearest
        centre, then cleaned (open/close 5x5, components under 0.5 % of the frame dropped).
    area_range : the region is a cluster whose area share (frame 0, after cleaning) lies in
        this range (the most chromatic one among them; else the one closest to 0.3).
    coarse_scale : the coarse mask is the true mask at ``1/coarse_scale`` resolution (area
        filter, threshold 0.5), eroded or dilated per frame by a random 0..``jitter_px``
        low-resolution pixels, then upsampled with nearest neighbour (like segmentation labels
        at analysis width).
    band_px : width of the evaluation band around the true border (pixels).

    Example
    -------
    >>> clip = np.zeros((3, 32, 48, 3), np.uint8); clip[..., 0] = 200; clip[:, 8:24, 10:30] = (40, 90, 200)
    >>> s = synthetic_regional_edit(clip, seed=1, n_clusters=2, area_range=(0.1, 0.5))
    >>> s.true_mask.shape, float(s.true_mask[0, 16, 20]), float(s.true_mask[0, 2, 2])
    ((3, 32, 48), 1.0, 0.0)
    """
    from sklearn.cluster import KMeans

    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.fusers import border_distance

    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise EditError(f"rgb must be uint8 (T, H, W, 3), got {rgb.dtype} {rgb.shape}")
    T, H, W, _ = rgb.shape
    rng = np.random.default_rng(seed)
    params = params if params is not None else random_edit_params(rng)
    lab = np.stack([rgb_to_lab(f) for f in rgb])
    L, ab = lab[..., 0].copy(), lab[..., 1:].copy()
    feat_w = np.float32([0.5, 1.0, 1.0])
    # regions from smoothed colour, so fine texture does not fragment them
    smooth = [cv2.GaussianBlur(lab[t], (0, 0), 1.5) for t in range(T)]
    sample = (smooth[0].reshape(-1, 3) * feat_w)
    pick = rng.choice(sample.shape[0], size=min(sample.shape[0], 20000), replace=False)
    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(sample[np.sort(pick)])
    centres = km.cluster_centers_.astype(np.float32)
    min_area = max(4, int(0.005 * H * W))
    assign = np.empty((T, H, W), np.int64)
    for t in range(T):
        f = smooth[t].reshape(-1, 3) * feat_w
        d = ((f[:, None, :] - centres[None]) ** 2).sum(-1)
        assign[t] = d.argmin(1).reshape(H, W)
    # area share of each cluster after cleaning (frame 0), so thin clusters do not qualify
    area = np.array([_clean_mask(assign[0] == c, min_area).mean() for c in range(n_clusters)])
    chroma = np.hypot(centres[:, 1], centres[:, 2])
    ok = [c for c in range(n_clusters) if area_range[0] <= area[c] <= area_range[1]]
    region = (max(ok, key=lambda c: (chroma[c], -c)) if ok
              else int(np.argmin(np.abs(area - 0.3))))
    true_mask = np.stack([_clean_mask(assign[t] == region, min_area)
                          for t in range(T)]).astype(np.float32)
    coarse = np.empty_like(true_mask)
    lw, lh = max(1, W // coarse_scale), max(1, H // coarse_scale)
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for t in range(T):
        low = cv2.resize(true_mask[t], (lw, lh), interpolation=cv2.INTER_AREA) >= 0.5
        low = low.astype(np.uint8)
        j = int(rng.integers(-jitter_px, jitter_px + 1)) if jitter_px > 0 else 0
        if j > 0:
            low = cv2.dilate(low, kern, iterations=j)
        elif j < 0:
            low = cv2.erode(low, kern, iterations=-j)
        coarse[t] = cv2.resize(low, (W, H), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    L_e, ab_e = apply_edit(L, ab, params)
    m = true_mask > 0.5
    L_ideal = np.where(m, L_e, L).astype(np.float32)
    ab_ideal = np.where(m[..., None], ab_e, ab).astype(np.float32)
    band = np.stack([border_distance(true_mask[t]) < band_px for t in range(T)])
    return SyntheticEdit(L=L, ab=ab, true_mask=true_mask, coarse_mask=coarse, L_edited=L_e,
                         ab_edited=ab_e, L_ideal=L_ideal, ab_ideal=ab_ideal, band=band,
                         params=params, band_px=float(band_px),
                         info={"region_cluster": int(region), "area_fraction": float(area[region]),
                               "coarse_scale": coarse_scale, "jitter_px": jitter_px, "seed": seed})


# ------------------------------------------------------------------------------------------
# Prefect task (what the restore flow calls)
# ------------------------------------------------------------------------------------------


def _edit_for_flow(harmonized, out_path, *, edits: Sequence[dict], segmentation=None,
                   fuser: str = "guided", fuser_params: dict[str, Any] | None = None,
                   device: str | None = None) -> EditResult:
    """Flow adapter; ``device`` (chosen by the flow's runner for GPU-capable fusers such as
    ``learned-fuse``) is passed to the fuser."""
    if device is not None:
        fuser_params = {**(fuser_params or {}), "device": device}
    return edit_shot(harmonized.out_path, out_path, edits,
                     labels_path=segmentation.labels_path if segmentation is not None else None,
                     fuser=fuser, fuser_params=fuser_params)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="regional-edit", cache_policy=NO_CACHE)(_edit_for_flow)


_TASK: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``edit_shot_task`` (alias ``regional_edit_task``), created on first use."""
    if name in ("edit_shot_task", "regional_edit_task"):
        if "task" not in _TASK:
            _TASK["task"] = _thin_task()
        return _TASK["task"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EditError", "EditParams", "EditResult", "RANGES", "RegionStat", "SyntheticEdit",
           "WARMTH_AB", "WARM_AXIS_DEG", "apply_brightness", "apply_edit", "edit_shot",
           "normalize_edit", "random_edit_params", "region_mask", "region_stats",
           "regional_edit", "shift_region_ab", "synthetic_regional_edit", "target_ab"]
