"""Colorization stage: one shot of a grayscale film in, a lossless colour shot out.

:func:`colorize_shot` streams the shot's gray frames through a colorization engine (registry
:data:`~reel.tasks.colorizers.COLORIZERS`, engines in ``tasks/colorizers/``) and writes the
result through :class:`reel.tasks.media.FrameWriter`. The source luminance is kept: each output
frame is ``lab_to_rgb(L, ab)`` with ``L`` the source frame's L and ``ab`` the engine's chroma,
so the output's L equals the source's up to 8-bit rounding. Only one frame at full resolution
(plus the engine's analysis-resolution state) is in memory at a time: engines that need the whole
shot (``exemplar-propagate``, ``flow-propagate``) get it twice, decoded afresh, once to analyse
and once to render.

Example
-------
>>> from reel.tasks.colorize import colorize_shot
>>> res = colorize_shot("film.mkv", 120, 180, ["ref.png"], "shot-0003/colorized.mkv",
...                     engine="exemplar-propagate")  # doctest: +SKIP
>>> res.n_frames, round(res.mean_confidence, 2)  # doctest: +SKIP
(60, 0.81)
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reel.tasks import media
from reel.tasks.colorizers import COLORIZERS, Colorizer
from reel.tasks.colorspace import gray_to_L, lab_to_rgb, rgb_to_lab

__all__ = [
    "ColorizeResult",
    "colorize_shot",
    "colorize_L_frames",
    "load_reference_lab",
    "load_palette_lab",
    "load_palette_weights",
    "COLORIZERS",
]


@dataclass
class ColorizeResult:
    """What :func:`colorize_shot` returns to the flow (no frame data).

    Attributes
    ----------
    out_path : the colorized shot (lossless UT Video in Matroska, RGB: ``media.WORK_CODEC``).
    n_frames : frames written (``stop - start``).
    mean_confidence : mean of ``per_frame_confidence`` (0 when the engine had no evidence).
    per_frame_confidence : engine confidence of each frame, in [0, 1].
    engine : ``Engine.describe()`` of the engine used (name, version, params, params hash).
    seconds : wall-clock time of the whole call.
    edge_stats : :class:`reel.tasks.harmonize.ShotEdgeStats` of the frames written, gathered
        while writing them, for the harmonization pass across shots (None for results made
        before reel gathered them: the flow then decodes the shot file instead).
    """

    out_path: Path
    n_frames: int
    mean_confidence: float
    per_frame_confidence: list[float] = field(default_factory=list)
    engine: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    edge_stats: Any = None


def load_reference_lab(path: str | os.PathLike) -> np.ndarray:
    """Read a colour reference image (any format OpenCV reads) as float32 Lab (h, w, 3).

    OpenCV's ``IMREAD_COLOR`` gives 8-bit BGR for gray, 16-bit and RGBA files alike (alpha is
    dropped), which is then converted to RGB and Lab.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        OpenCV cannot decode it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference image {path} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode reference image {path}; use PNG, JPEG or TIFF")
    return rgb_to_lab(np.ascontiguousarray(img[..., ::-1]))


def load_palette_lab(path: str | os.PathLike) -> np.ndarray:
    """``colors_lab`` of a palette JSON (as written by ``Palette.save``), float32 (k, 3).

    Read with :mod:`json` directly so this stage does not depend on the palette module.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    colors = np.asarray(data["colors_lab"], dtype=np.float32).reshape(-1, 3)
    return colors


def load_palette_weights(path: str | os.PathLike) -> np.ndarray | None:
    """``weights`` of a palette JSON (``Palette.save``), float32 (k,), or None if absent."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    w = data.get("weights")
    return None if w is None else np.asarray(w, dtype=np.float32).reshape(-1)


def colorize_L_frames(
    engine: Colorizer,
    frames_L: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]],
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Run ``engine`` over luminance frames; yields ``(L, ab, confidence)`` in frame order.

    ``frames_L`` is an iterable of float32 (H, W) L frames, or a callable returning a fresh
    iterator over the same frames each time it is called. With a callable, two-pass engines
    (:attr:`Colorizer.two_pass`, e.g. ``exemplar-propagate``) read the shot twice, once to analyse
    it and once to render it, and only analysis-resolution data is held in between; given a plain
    iterable they hold its frames in a list instead. One-pass engines read it once either way.

    Works for engines with look-ahead too: the L frames the engine has pulled but not yet
    answered wait in a queue, so each ``ab`` is paired with its own ``L``.

    Example
    -------
    >>> eng = COLORIZERS.create("gray"); eng.start_shot([], None)
    >>> Ls = [np.full((2, 2), v, np.float32) for v in (10.0, 20.0)]
    >>> [float(L[0, 0]) for L, ab, c in colorize_L_frames(eng, Ls)]
    [10.0, 20.0]
    >>> [float(L[0, 0]) for L, ab, c in colorize_L_frames(eng, lambda: iter(Ls))]
    [10.0, 20.0]
    """
    pending: deque[np.ndarray] = deque()

    def feed(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for L in frames:
            pending.append(L)
            yield L

    if callable(frames_L) and engine.two_pass:
        engine.analyse_shot(frames_L())
        answers = engine.render_shot(feed(frames_L()))
    else:
        answers = engine.colorize_frames(feed(frames_L() if callable(frames_L) else frames_L))
    for ab, conf in answers:
        if not pending:
            raise RuntimeError(f"engine {engine.name!r} yielded more frames than it was given")
        L = pending.popleft()
        if ab.shape != L.shape + (2,):
            raise RuntimeError(f"engine {engine.name!r} returned ab {ab.shape} for L {L.shape}")
        yield L, ab, float(conf)
    if pending:
        raise RuntimeError(f"engine {engine.name!r} dropped {len(pending)} frame(s)")


def colorize_shot(
    src: str | os.PathLike,
    start: int,
    stop: int,
    reference_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    palette_path: str | os.PathLike | None = None,
    engine: str = "exemplar-propagate",
    analysis_width_px: int = 320,
    **params: Any,
) -> ColorizeResult:
    """Colorize source frames ``[start, stop)`` of ``src`` into a lossless RGB shot file.

    Parameters
    ----------
    src : the (grayscale or colour) source film; its frames are read as gray.
    start, stop : half-open source frame range of the shot.
    reference_paths : colour reference images for the shot (may be empty: the engines then
        output gray with confidence 0, which the flow flags).
    out_path : output ``.mkv`` (lossless ``media.WORK_CODEC``, written atomically). The input
        file is never touched.
    palette_path : optional palette JSON (``Palette.save``); passed to the engine as Lab colours
        and weights. ``exemplar-propagate`` uses it for low-confidence pixels and shots without
        references (``palette_strength`` / ``palette_fill``); the other engines ignore it.
    engine : name in :data:`COLORIZERS`.
    analysis_width_px : width at which the engine matches and computes flow.
    **params : engine parameters (e.g. ``seed``, ``reanchor_every_frames``).

    Returns
    -------
    ColorizeResult

    Example
    -------
    >>> res = colorize_shot("film.mkv", 0, 48, ["key.png"], "out.mkv", seed=0)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    start, stop = int(start), int(stop)
    if stop <= start:
        raise ValueError(f"empty frame range [{start}, {stop})")
    refs = [load_reference_lab(p) for p in reference_paths]
    palette = load_palette_lab(palette_path) if palette_path is not None else None
    eng: Colorizer = COLORIZERS.create(engine, analysis_width_px=analysis_width_px, **params)
    eng.start_shot(refs, palette)
    if palette_path is not None:  # weights for the palette constraint (exemplar-propagate)
        eng.set_palette_weights(load_palette_weights(palette_path))

    info = media.video_format(src)
    width, height = info.display_size
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    desc = eng.describe()
    metadata = {
        "reel_stage": "colorize",
        "reel_engine": f"{desc['engine']} {desc['engine_version']}",
        "reel_params_hash": desc["params_hash"],
        "reel_source_range": f"{start}-{stop}",
    }
    def frames_L() -> Iterator[np.ndarray]:  # re-reads the shot: two-pass engines call it twice
        return (gray_to_L(g) for g in media.iter_frames(src, start, stop, pix_fmt="gray"))

    from reel.tasks.harmonize import EdgeStatsAccumulator

    confidences: list[float] = []
    edges = EdgeStatsAccumulator()  # what the pass across shots needs, without a re-read
    with media.FrameWriter(out_path, width, height, info.fps, pix_fmt_in="rgb24",
                           metadata=metadata, codec=media.WORK_CODEC) as writer:
        for L, ab, conf in colorize_L_frames(eng, frames_L):
            rgb = lab_to_rgb(L, ab)
            writer.write(rgb)
            edges.add(rgb)
            confidences.append(conf)
    n = len(confidences)
    return ColorizeResult(
        out_path=out_path,
        n_frames=n,
        mean_confidence=float(np.mean(confidences)) if n else 0.0,
        per_frame_confidence=confidences,
        engine=desc,
        seconds=time.perf_counter() - t0,
        edge_stats=edges.result() if n else None,
    )


def _colorize_for_flow(src: str | os.PathLike, start: int, stop: int, selection, out_path, *,
                       engine: str = "exemplar-propagate", analysis_width_px: int = 320,
                       **params) -> ColorizeResult:
    """Flow adapter: colorize a shot from its reference selection (ranked paths + palette)."""
    return colorize_shot(src, start, stop, selection.paths, out_path,
                         palette_path=selection.palette_path, engine=engine,
                         analysis_width_px=analysis_width_px, **params)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="colorize", cache_policy=NO_CACHE)(_colorize_for_flow)


colorize_shot_task = _thin_task()
