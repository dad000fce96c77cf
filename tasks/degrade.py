"""Old-film degradations for test material: make clean footage look like a worn print.

Pure numpy, deterministic from a seed. Every function takes ``uint8`` frames, gray ``(H, W)``
(most also RGB ``(H, W, 3)``), returns a new ``uint8`` frame and never modifies its input.
Sizes given in pixels are for a 640 px wide frame unless a parameter says otherwise; the
stateful :class:`OldFilm` scales them to the actual width.

What each one imitates
----------------------
:func:`flicker_gains` / :func:`apply_gain`
    Random exposure flicker of early film: a per-frame luminance gain, i.i.d. uniform in
    ``[1 - amplitude, 1 + amplitude]`` (``amplitude=0.2``: the ±20 % of the benchmark).
:func:`add_grain`
    Film grain: zero-mean Gaussian noise, strongest in the mid-tones.
:func:`add_dust`
    Dust and dirt specks: small irregular dark (dirt on the print) or bright (dirt on the
    negative) blobs, different on every frame.
:class:`ScratchProcess` / :func:`add_scratches`
    Vertical scratches: thin bright or dark lines running down the frame that persist for
    many frames and drift slowly sideways.
:class:`WeaveProcess` / :func:`translate`
    Gate weave: the whole picture jitters by a pixel or two, smoothly (an AR(1) process).
:func:`misframe`
    Frame-line jump at a splice: the picture is shifted vertically, so the dark frame line
    (the gap between two frames on the strip) and a slice of the neighbouring frame show at
    the top (positive offset) or bottom (negative offset).
:func:`flash`
    A single over-exposed (washed-out) frame.
:func:`dissolve` / :func:`fade_through_black`
    Gradual transitions between two shots.

:class:`OldFilm` chains the per-frame effects (misframe, scratches, dust, weave, flicker,
flashes, grain) over a stream of frames.

Example
-------
>>> import numpy as np
>>> frame = np.full((90, 160), 128, np.uint8)
>>> out = add_grain(frame, 4.0, rng=0)
>>> out.dtype, out.shape, bool(3.0 < out.std() < 5.0)
(dtype('uint8'), (90, 160), True)
>>> film = OldFilm(seed=1)
>>> [f.shape for f in film.apply([frame] * 3)]
[(90, 160), (90, 160), (90, 160)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "OldFilm",
    "ScratchProcess",
    "WeaveProcess",
    "add_dust",
    "add_grain",
    "add_scratches",
    "apply_gain",
    "dissolve",
    "fade_through_black",
    "flash",
    "flicker_gains",
    "misframe",
    "translate",
]

RngLike = np.random.Generator | int | None


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) frame, got {frame.dtype} {frame.shape}")
    return frame


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- exposure
def flicker_gains(n_frames: int, amplitude: float = 0.2, *, rng: RngLike = 0) -> np.ndarray:
    """Per-frame luminance gains, i.i.d. uniform in ``[1 - amplitude, 1 + amplitude]``.

    >>> g = flicker_gains(1000, 0.2, rng=0)
    >>> bool(g.min() >= 0.8 and g.max() <= 1.2 and abs(g.mean() - 1) < 0.01)
    True
    """
    if not 0.0 <= amplitude < 1.0:
        raise ValueError("amplitude must be in [0, 1)")
    return _rng(rng).uniform(1.0 - amplitude, 1.0 + amplitude, int(n_frames))


def apply_gain(frame: np.ndarray, gain: float, offset_levels: float = 0.0) -> np.ndarray:
    """``frame * gain + offset_levels``, rounded and clipped to uint8.

    >>> int(apply_gain(np.full((2, 2), 100, np.uint8), 1.2)[0, 0])
    120
    """
    return _to_u8(_check(frame).astype(np.float32) * np.float32(gain) + np.float32(offset_levels))


def flash(frame: np.ndarray, gain: float = 1.8, offset_levels: float = 70.0) -> np.ndarray:
    """An over-exposed frame: ``frame * gain + offset_levels`` (highlights clip to white).

    >>> int(flash(np.full((2, 2), 100, np.uint8))[0, 0])
    250
    """
    return apply_gain(frame, gain, offset_levels)


def add_grain(frame: np.ndarray, sigma_levels: float = 5.0, *, rng: RngLike = None) -> np.ndarray:
    """Film grain: Gaussian noise of std ``sigma_levels`` (gray levels) in the mid-tones.

    The std is scaled by ``0.4 + 0.6 * 4 v (1 - v)`` with ``v`` the pixel value in [0, 1], so
    it is ``sigma_levels`` at mid-gray and 40 % of it in deep shadows and highlights.
    """
    f = _check(frame).astype(np.float32)
    v = f / 255.0
    scale = np.float32(sigma_levels) * (0.4 + 0.6 * 4.0 * v * (1.0 - v))
    noise = _rng(rng).standard_normal(f.shape, dtype=np.float32)
    return _to_u8(f + noise * scale)


# --------------------------------------------------------------------------- dust
def add_dust(frame: np.ndarray, *, rng: RngLike = None, n_specks: tuple[int, int] = (1, 6),
             radius_px: tuple[float, float] = (1.0, 3.5)) -> np.ndarray:
    """Dust/dirt: ``n_specks`` (uniform in the inclusive range) irregular blobs.

    Each blob is a randomly rotated ellipse with radii in ``radius_px``, soft-edged and
    slightly lumpy, dark (value 5-40, dirt on the print) with probability 0.7, else bright
    (215-250, dirt on the negative).
    """
    out = _check(frame).astype(np.float32)
    g = _rng(rng)
    h, w = out.shape[:2]
    n = int(g.integers(n_specks[0], n_specks[1] + 1))
    for _ in range(n):
        cy, cx = g.uniform(0, h), g.uniform(0, w)
        ra, rb = g.uniform(*radius_px), g.uniform(*radius_px)
        ang = g.uniform(0, np.pi)
        value = g.uniform(5, 40) if g.random() < 0.7 else g.uniform(215, 250)
        r = int(np.ceil(max(ra, rb))) + 2
        y0, y1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(ang) + dy * np.sin(ang)
        v = -dx * np.sin(ang) + dy * np.cos(ang)
        lump = 1.0 + 0.25 * g.standard_normal((y1 - y0, x1 - x0)).astype(np.float32)
        d = np.sqrt((u / ra) ** 2 + (v / rb) ** 2) * lump
        alpha = np.clip(1.5 - d, 0.0, 1.0)  # solid core, one-pixel soft edge
        if out.ndim == 3:
            alpha = alpha[..., None]
        patch = out[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = patch * (1 - alpha) + np.float32(value) * alpha
    return _to_u8(out)


# --------------------------------------------------------------------------- scratches
@dataclass
class ScratchProcess:
    """Persistent vertical scratches: each appears, drifts slowly sideways and disappears.

    Call :meth:`step` once per frame; it returns the scratches visible on that frame as
    ``(x_px, polarity)`` with polarity +1 (bright, emulsion scratched off) or -1 (dark).

    Parameters
    ----------
    width_px : frame width.
    max_scratches : most scratches at once.
    birth_probability : chance per frame and free slot that a scratch starts.
    life_frames : range of a scratch's lifetime in frames.
    drift_px : std of the per-frame sideways random walk.
    """

    width_px: int
    max_scratches: int = 2
    birth_probability: float = 0.05
    life_frames: tuple[int, int] = (15, 80)
    drift_px: float = 0.4
    rng: RngLike = 0
    _g: np.random.Generator = field(init=False, repr=False)
    _live: list[list[float]] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self._g = _rng(self.rng)

    def step(self) -> list[tuple[float, int]]:
        g = self._g
        for s in self._live:
            s[0] = float(np.clip(s[0] + g.normal(0, self.drift_px), 0, self.width_px - 1))
            s[2] -= 1
        self._live = [s for s in self._live if s[2] > 0]
        for _ in range(self.max_scratches - len(self._live)):
            if g.random() < self.birth_probability:
                x = g.uniform(0.05, 0.95) * self.width_px
                self._live.append([x, 1 if g.random() < 0.6 else -1,
                                   int(g.integers(self.life_frames[0], self.life_frames[1] + 1))])
        return [(s[0], int(s[1])) for s in self._live]


def add_scratches(frame: np.ndarray, scratches: Sequence[tuple[float, int]], *,
                  width_px: float = 1.5, strength: float = 0.6,
                  rng: RngLike = None) -> np.ndarray:
    """Draw vertical scratches at ``(x_px, polarity)`` over the full frame height.

    A scratch blends the picture toward white (polarity +1) or black (-1) by ``strength``
    times a Gaussian profile of std ``width_px / 2`` across x, with a slight intensity jitter
    along y (the scratch is not perfectly uniform).
    """
    out = _check(frame).astype(np.float32)
    if not scratches:
        return _to_u8(out)
    g = _rng(rng)
    h, w = out.shape[:2]
    xs = np.arange(w, dtype=np.float32)
    for x, polarity in scratches:
        prof = np.exp(-0.5 * ((xs - np.float32(x)) / np.float32(max(0.3, width_px / 2))) ** 2)
        along = np.clip(1.0 + 0.3 * g.standard_normal(h).astype(np.float32), 0.3, 1.5)
        alpha = np.clip(np.float32(strength) * along[:, None] * prof[None, :], 0.0, 1.0)
        if out.ndim == 3:
            alpha = alpha[..., None]
        target = np.float32(245.0 if polarity > 0 else 12.0)
        out = out * (1 - alpha) + target * alpha
    return _to_u8(out)


# --------------------------------------------------------------------------- geometry
@dataclass
class WeaveProcess:
    """Gate weave: a smooth random (dx, dy) jitter, an AR(1) process per axis.

    ``offset = a * offset + sqrt(1 - a^2) * N(0, amplitude_px)`` with ``a = correlation``, so
    the stationary std of each axis is ``amplitude_px``; dy is half as strong as dx (weave is
    mostly lateral, vertical unsteadiness is smaller).
    """

    amplitude_px: float = 1.0
    correlation: float = 0.7
    rng: RngLike = 0
    _g: np.random.Generator = field(init=False, repr=False)
    _state: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._g = _rng(self.rng)
        self._state = self._g.normal(0, self.amplitude_px, 2) * np.array([1.0, 0.5])

    def step(self) -> tuple[float, float]:
        a = self.correlation
        innov = self._g.normal(0, self.amplitude_px, 2) * np.array([1.0, 0.5])
        self._state = a * self._state + np.sqrt(1 - a * a) * innov
        return float(self._state[0]), float(self._state[1])


def translate(frame: np.ndarray, dx_px: float, dy_px: float) -> np.ndarray:
    """Shift the picture by (dx, dy) pixels (bilinear, edges replicated).

    >>> f = np.arange(16, dtype=np.uint8).reshape(4, 4)
    >>> translate(f, 1, 0)[0].tolist()
    [0, 0, 1, 2]
    """
    f = _check(frame).astype(np.float32)
    h, w = f.shape[:2]
    ys = np.arange(h, dtype=np.float32) - np.float32(dy_px)
    xs = np.arange(w, dtype=np.float32) - np.float32(dx_px)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    fy = (ys - y0).astype(np.float32)
    fx = (xs - x0).astype(np.float32)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    if f.ndim == 3:
        fy, fx = fy[:, None, None], fx[None, :, None]
    else:
        fy, fx = fy[:, None], fx[None, :]
    top = f[y0c][:, x0c] * (1 - fx) + f[y0c][:, x1c] * fx
    bot = f[y1c][:, x0c] * (1 - fx) + f[y1c][:, x1c] * fx
    return _to_u8(top * (1 - fy) + bot * fy)


def misframe(frame: np.ndarray, offset_rows: int, *, line_rows: int | None = None,
             line_level: float = 10.0) -> np.ndarray:
    """Frame-line jump: the picture shifted vertically by ``offset_rows`` (down if positive).

    The rows uncovered at the top (or bottom) show the frame line, a band of ``line_rows``
    (default ``max(2, height // 25)``) dark rows at level ``line_level`` next to the picture,
    and beyond it the far edge of the same picture standing in for the neighbouring frame on
    the strip (in a shot, consecutive frames look alike).

    >>> f = np.full((50, 8), 200, np.uint8)
    >>> m = misframe(f, 10, line_rows=3)
    >>> m[:, 0].tolist()[5:12]
    [200, 200, 10, 10, 10, 200, 200]
    """
    f = _check(frame)
    h = f.shape[0]
    o = int(offset_rows)
    if o == 0:
        return f.copy()
    if abs(o) >= h:
        raise ValueError(f"offset {o} must be smaller than the height {h}")
    band = max(2, h // 25) if line_rows is None else int(line_rows)
    out = np.empty_like(f)
    if o > 0:
        out[o:] = f[: h - o]
        # above the picture: the bottom of the neighbouring frame, then the frame line
        out[:o] = f[h - o:]
        out[max(0, o - band): o] = np.uint8(np.clip(line_level, 0, 255))
    else:
        o = -o
        out[: h - o] = f[o:]
        out[h - o:] = f[:o]
        out[h - o: min(h, h - o + band)] = np.uint8(np.clip(line_level, 0, 255))
    return out


# --------------------------------------------------------------------------- transitions
def dissolve(a_frames: Sequence[np.ndarray], b_frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cross-dissolve: frame ``i`` of ``n`` is ``(1 - t) a_i + t b_i`` with ``t = (i + 1) / (n + 1)``.

    Both sequences have the same length ``n`` (the dissolve's length) and frame size; the
    middle of the dissolve (first frame with ``t > 0.5``) is frame ``n // 2``.

    >>> a, b = [np.zeros((2, 2), np.uint8)] * 3, [np.full((2, 2), 200, np.uint8)] * 3
    >>> [int(f[0, 0]) for f in dissolve(a, b)]
    [50, 100, 150]
    """
    if len(a_frames) != len(b_frames) or not len(a_frames):
        raise ValueError("dissolve needs two non-empty sequences of the same length")
    n = len(a_frames)
    out = []
    for i, (a, b) in enumerate(zip(a_frames, b_frames)):
        t = np.float32((i + 1) / (n + 1))
        out.append(_to_u8(_check(a).astype(np.float32) * (1 - t) + _check(b).astype(np.float32) * t))
    return out


def fade_through_black(a_frames: Sequence[np.ndarray], b_frames: Sequence[np.ndarray],
                       n_black: int = 1, *, black_level: float = 0.0) -> list[np.ndarray]:
    """Fade out of ``a_frames``, ``n_black`` black frames, fade in of ``b_frames``.

    Fade-out frame ``i`` of ``n`` is ``black + (a_i - black) * (1 - (i + 1) / (n + 1))``; the
    fade-in mirrors it. Returns ``len(a) + n_black + len(b)`` frames; its middle is frame
    ``(len(a) + n_black + len(b)) // 2``.

    >>> a, b = [np.full((1, 1), 90, np.uint8)] * 2, [np.full((1, 1), 180, np.uint8)] * 2
    >>> [int(f[0, 0]) for f in fade_through_black(a, b, 1)]
    [60, 30, 0, 60, 120]
    """
    if not len(a_frames) or not len(b_frames):
        raise ValueError("fade_through_black needs frames on both sides")
    shape = _check(a_frames[0]).shape
    k = np.float32(black_level)
    out = []
    n = len(a_frames)
    for i, a in enumerate(a_frames):
        t = np.float32(1 - (i + 1) / (n + 1))
        out.append(_to_u8(k + (_check(a).astype(np.float32) - k) * t))
    out += [np.full(shape, np.uint8(np.clip(black_level, 0, 255)))] * int(n_black)
    n = len(b_frames)
    for i, b in enumerate(b_frames):
        t = np.float32((i + 1) / (n + 1))
        out.append(_to_u8(k + (_check(b).astype(np.float32) - k) * t))
    return out


# --------------------------------------------------------------------------- the chain
@dataclass
class OldFilm:
    """Per-frame old-film damage applied to a stream of frames (deterministic from ``seed``).

    Order per frame: frame-line offset (:func:`misframe`) → scratches → dust → gate weave →
    exposure (flicker gain, fog, flash) → grain. ``misframe_rows`` and ``flash_frames`` are
    keyed by the frame's position in the stream: ``misframe_rows[t]`` is the offset from frame
    ``t`` on (until the next key), so a splice is a key at the first frame after it.

    Parameters (sizes for a 640 px wide frame; scaled by ``width / 640``)
    ----------
    flicker_amplitude : gain range ±, e.g. 0.2 = ±20 %.
    grain_sigma_levels : grain std at mid-gray.
    dust_probability : chance a frame carries dust; ``dust_specks`` how many specks then.
    dust_radius_px : speck radii.
    max_scratches, scratch_birth_probability : see :class:`ScratchProcess`.
    weave_px : gate-weave std.
    contrast, fog_levels : print tone: ``v * contrast + fog`` before flicker (blacks are never
        fully black on a worn print).
    seed : everything random derives from it.
    """

    flicker_amplitude: float = 0.2
    grain_sigma_levels: float = 5.0
    dust_probability: float = 0.5
    dust_specks: tuple[int, int] = (1, 6)
    dust_radius_px: tuple[float, float] = (1.0, 3.5)
    max_scratches: int = 2
    scratch_birth_probability: float = 0.05
    weave_px: float = 1.0
    contrast: float = 0.85
    fog_levels: float = 14.0
    flash_gain: float = 1.8
    flash_offset_levels: float = 70.0
    misframe_rows: dict[int, int] = field(default_factory=dict)
    flash_frames: frozenset[int] = frozenset()
    seed: int = 0

    def apply(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Degrade ``frames`` (uint8 gray or RGB), yielding one output per input frame."""
        root = np.random.SeedSequence(self.seed)
        s_flicker, s_scratch, s_weave, s_frame = (np.random.default_rng(s) for s in root.spawn(4))
        scratches = weave = None
        offset = 0
        for t, frame in enumerate(frames):
            frame = _check(frame)
            scale = frame.shape[1] / 640.0
            if scratches is None:
                scratches = ScratchProcess(frame.shape[1], self.max_scratches,
                                           self.scratch_birth_probability, rng=s_scratch)
                weave = WeaveProcess(self.weave_px * scale, rng=s_weave)
            offset = self.misframe_rows.get(t, offset)
            f = misframe(frame, offset) if offset else frame
            f = add_scratches(f, scratches.step(), width_px=max(1.0, 1.5 * scale), rng=s_frame)
            if s_frame.random() < self.dust_probability:
                r = (self.dust_radius_px[0] * scale, self.dust_radius_px[1] * scale)
                f = add_dust(f, rng=s_frame, n_specks=self.dust_specks,
                             radius_px=(max(0.6, r[0]), max(0.8, r[1])))
            dx, dy = weave.step()
            f = translate(f, dx, dy)
            gain = float(s_flicker.uniform(1 - self.flicker_amplitude, 1 + self.flicker_amplitude))
            f = apply_gain(f, gain * self.contrast, gain * self.fog_levels)
            if t in self.flash_frames:
                f = flash(f, self.flash_gain, self.flash_offset_levels)
            yield add_grain(f, self.grain_sigma_levels, rng=s_frame)
