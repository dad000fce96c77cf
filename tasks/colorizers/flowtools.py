"""Optical-flow helpers and per-shot analysis storage shared by the temporal colorizers.

Flow convention: a flow ``f`` from image A to image B is float32 (h, w, 2) in pixels with
``A(x) ≈ B(x + f(x))``; :func:`warp` samples B at ``x + f(x)`` and so brings B's content (colour,
confidence) onto A's grid ("backward warping"). Flows come from OpenCV's DIS (no weights,
deterministic). Gray inputs are uint8 (h, w).

:class:`FrameSpool` and :class:`ShotArrays` keep a shot's analysis-resolution data bounded in
memory: past ``max_in_memory_mb`` they spill to temporary ``.npy`` files (memory-mapped) that are
deleted when the shot is done.

Example
-------
>>> import numpy as np
>>> a = np.zeros((16, 24), np.uint8); a[4:12, 6:14] = 200
>>> b = np.roll(a, 3, axis=1)                    # b is a moved right by 3 px
>>> f = dis_flow(a, b)
>>> bool(abs(float(np.median(f[6:10, 8:12, 0])) - 3.0) < 1.0)
True
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

#: DIS presets by name.
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def make_dis(preset: str = "medium") -> cv2.DISOpticalFlow:
    """A DIS optical-flow object with an OpenCV preset (``ultrafast``, ``fast``, ``medium``)."""
    try:
        return cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    except KeyError:
        raise ValueError(f"unknown DIS preset {preset!r}; choose from {sorted(DIS_PRESETS)}") from None


def dis_flow(
    gray_a: np.ndarray,
    gray_b: np.ndarray,
    init_flow: np.ndarray | None = None,
    *,
    dis: cv2.DISOpticalFlow | None = None,
) -> np.ndarray:
    """Dense flow from ``gray_a`` to ``gray_b`` (uint8, same size): float32 (h, w, 2), pixels.

    ``init_flow`` (same shape as the result) seeds the coarse-to-fine search; DIS then refines it,
    so a flow composed along a chain of frames can be corrected against a far frame directly.
    Images smaller than 12 px on both sides (DIS's minimum) give zero flow (or ``init_flow``).
    """
    if max(gray_a.shape[:2]) < 12:  # DIS needs 12 px on one side: no motion is measurable
        return (np.zeros(gray_a.shape[:2] + (2,), np.float32) if init_flow is None
                else np.array(init_flow, np.float32))
    dis = dis if dis is not None else make_dis()
    init = None if init_flow is None else np.ascontiguousarray(init_flow, dtype=np.float32).copy()
    return dis.calc(np.ascontiguousarray(gray_a), np.ascontiguousarray(gray_b), init)


@lru_cache(maxsize=8)
def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) of an h × w frame, float32, read-only; built once per size (every
    warp and consistency test of a shot needs them)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx.flags.writeable = False
    yy.flags.writeable = False
    return xx, yy


def warp(image: np.ndarray, flow: np.ndarray, *, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample ``image`` (h, w[, c]) at ``x + flow(x)`` (bilinear), float32 with image's shape.

    Example
    -------
    >>> img = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> f = np.zeros((3, 4, 2), np.float32); f[..., 0] = 1.0
    >>> warp(img, f)[0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    h, w = flow.shape[:2]
    xx, yy = pixel_grid(h, w)
    src = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.remap(src, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                    borderMode=border)
    return out.reshape(flow.shape[:2] + src.shape[2:])


def compose(flow_ab: np.ndarray, flow_bc: np.ndarray) -> np.ndarray:
    """Flow A → C from A → B and B → C: ``f_ac(x) = f_ab(x) + f_bc(x + f_ab(x))``."""
    return (flow_ab + warp(flow_bc, flow_ab)).astype(np.float32, copy=False)


def fb_consistent(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """Pixels of A whose flow to B is confirmed by the flow back: bool (h, w).

    Forward–backward test of Ruder et al. (2016): with ``ŵ(x) = flow_ba(x + flow_ab(x))`` a pixel
    fails when ``|flow_ab + ŵ|² > 0.01 (|flow_ab|² + |ŵ|²) + 0.5``; pixels whose target lies
    outside B fail too.
    """
    h, w = flow_ab.shape[:2]
    back = warp(flow_ba, flow_ab)
    fx, fy, bx, by = flow_ab[..., 0], flow_ab[..., 1], back[..., 0], back[..., 1]
    ex, ey = fx + bx, fy + by
    err = ex * ex + ey * ey  # |flow_ab + ŵ|², written out: a sum over a 2-long axis is slow
    scale = (fx * fx + fy * fy) + (bx * bx + by * by)
    ok = err <= 0.01 * scale + 0.5
    xx, yy = pixel_grid(h, w)
    tx, ty = xx + flow_ab[..., 0], yy + flow_ab[..., 1]
    ok &= (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return ok


def L_to_u8(L: np.ndarray) -> np.ndarray:
    """CIE L in [0, 100] (float) → uint8 in [0, 255] for the flow (linear, ``round(2.55 L)``)."""
    return np.clip(np.round(np.asarray(L, np.float32) * np.float32(2.55)), 0, 255).astype(np.uint8)


class FrameSpool:
    """Append same-shaped frames; get them back as one (T, ...) array.

    Frames stay in memory until their total exceeds ``max_in_memory_mb``; then everything is
    written to a temporary raw file in ``tmp_dir`` and :meth:`finish` returns a read-only
    memory map of it. Call :meth:`close` to delete the file.

    Example
    -------
    >>> sp = FrameSpool(max_in_memory_mb=0)            # spill at once
    >>> for v in range(3):
    ...     sp.append(np.full((2, 2), v, np.uint8))
    >>> arr = sp.finish(); arr.shape, int(arr[2, 0, 0]), isinstance(arr, np.memmap)
    ((3, 2, 2), 2, True)
    >>> sp.close()
    """

    def __init__(self, *, max_in_memory_mb: float = 256.0, tmp_dir: str | os.PathLike | None = None):
        self.max_bytes = float(max_in_memory_mb) * 2**20
        self.tmp_dir = tmp_dir
        self._frames: list[np.ndarray] = []
        self._bytes = 0
        self._file = None
        self._path: Path | None = None
        self._shape: tuple[int, ...] | None = None
        self._dtype: np.dtype | None = None
        self._n = 0
        self._result: np.ndarray | None = None

    def __len__(self) -> int:
        return self._n

    def append(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame)
        if self._shape is None:
            self._shape, self._dtype = frame.shape, frame.dtype
        elif frame.shape != self._shape or frame.dtype != self._dtype:
            raise ValueError(f"frame {self._n} is {frame.dtype} {frame.shape}, expected "
                             f"{self._dtype} {self._shape}")
        self._n += 1
        if self._file is not None:
            self._file.write(frame.tobytes())
            return
        self._frames.append(frame)
        self._bytes += frame.nbytes
        if self._bytes > self.max_bytes:
            fd, name = tempfile.mkstemp(prefix="reel-spool-", suffix=".raw", dir=self.tmp_dir)
            self._path = Path(name)
            self._file = os.fdopen(fd, "wb")
            for f in self._frames:
                self._file.write(f.tobytes())
            self._frames = []

    def finish(self) -> np.ndarray:
        """All frames as (T, ...) (in memory, or a read-only memmap after a spill)."""
        if self._result is not None:
            return self._result
        if self._n == 0:
            raise ValueError("no frames were appended")
        if self._file is None:
            self._result = np.stack(self._frames)
            self._frames = []
        else:
            self._file.close()
            self._file = None
            self._result = np.memmap(self._path, dtype=self._dtype, mode="r",
                                     shape=(self._n,) + tuple(self._shape))
        return self._result

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._result = None
        self._frames = []
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None


class ShotArrays:
    """Named (T, ...) arrays of one shot: in memory up to ``max_in_memory_mb`` in total, then as
    memory-mapped temporary ``.npy`` files (deleted by :meth:`close`).

    Example
    -------
    >>> st = ShotArrays(max_in_memory_mb=1)
    >>> a = st.alloc("ab", (10, 4, 4, 2), np.float16)
    >>> big = st.alloc("big", (10, 200, 200), np.float32)  # 1.6 MB > 1 MB: spilled
    >>> isinstance(a, np.memmap), isinstance(big, np.memmap)
    (False, True)
    >>> st.close()
    """

    def __init__(self, *, max_in_memory_mb: float = 256.0, tmp_dir: str | os.PathLike | None = None):
        self.max_bytes = float(max_in_memory_mb) * 2**20
        self.tmp_dir = tmp_dir
        self._bytes = 0
        self._dir: tempfile.TemporaryDirectory | None = None
        self.arrays: dict[str, np.ndarray] = {}

    def alloc(self, name: str, shape: tuple[int, ...], dtype, fill: float | None = 0) -> np.ndarray:
        """A new array ``name`` of ``shape`` and ``dtype`` (zero-filled unless ``fill`` is None)."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if self._bytes + nbytes <= self.max_bytes:
            arr = np.empty(shape, dtype)
            self._bytes += nbytes
        else:
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="reel-shot-", dir=self.tmp_dir)
            arr = np.lib.format.open_memmap(Path(self._dir.name) / f"{name}.npy", mode="w+",
                                            dtype=dtype, shape=shape)
        if fill is not None:
            arr[...] = fill
        self.arrays[name] = arr
        return arr

    def close(self) -> None:
        self.arrays.clear()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._bytes = 0
