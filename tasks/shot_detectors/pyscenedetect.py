"""``pyscenedetect-content`` and ``pyscenedetect-adaptive``: PySceneDetect's detectors.

PySceneDetect (``scenedetect-headless==0.7.2``, BSD-3-Clause) is used as a library of
detectors only: reel decodes the frames itself (:func:`reel.tasks.media.iter_frames`, RGB at
256 px wide, PySceneDetect's own default analysis width) and feeds them, as BGR, to the
detector's ``process_frame`` / ``post_process`` in order, exactly as PySceneDetect's
``SceneManager`` does. PySceneDetect's video backends are never used, so every engine sees
the same decoded frames.

Parameters are PySceneDetect's defaults except two:

- ``min_scene_len`` is the engine's ``min_shot_frames`` (8 by default instead of 15), so all
  engines work with the same minimum shot length;
- ``luma_only=None`` (the default) means *automatic*: luminance-only scoring when the frames
  are monochrome (R = G = B on the first frame). With PySceneDetect's default weights a gray
  film has no hue/saturation change, so its score would be a third of the luminance change
  and most cuts in black-and-white film would stay under the threshold; ``--luma-only`` is
  what PySceneDetect's documentation suggests for such material. Pass ``luma_only=False`` to
  get the plain default.

Install: ``pip install --no-deps scenedetect-headless==0.7.2`` (``make install`` does it). The
``--no-deps`` keeps pip from installing ``opencv-python-headless``, which would overwrite the
``cv2`` of reel's ``opencv-contrib-python-headless``; PySceneDetect's other dependencies
(click, platformdirs, tqdm, numpy) are reel dependencies.

Example
-------
>>> from reel.tasks.shot_detectors import SHOT_DETECTORS
>>> SHOT_DETECTORS.create("pyscenedetect-content").params["threshold"]  # doctest: +SKIP
27.0
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable

import numpy as np

from reel.tasks.shot_detectors import SHOT_DETECTORS
from reel.tasks.shot_detectors.base import Boundary, EngineUnavailable, ShotDetector

INSTALL_HINT = ("install PySceneDetect without its opencv-python-headless dependency: "
                "pip install --no-deps scenedetect-headless==0.7.2 (make install does it)")


def _scenedetect():
    try:
        import scenedetect  # noqa: F401
        from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EngineUnavailable(f"PySceneDetect is not installed ({exc}); {INSTALL_HINT}") from exc
    return scenedetect, ContentDetector, AdaptiveDetector, FrameTimecode


def _is_monochrome(frame: np.ndarray) -> bool:
    return frame.ndim == 2 or (np.array_equal(frame[..., 0], frame[..., 1])
                               and np.array_equal(frame[..., 1], frame[..., 2]))


class _PySceneDetectEngine(ShotDetector):
    """Feeds reel's frames to one PySceneDetect detector (see the module docstring)."""

    pix_fmt = "rgb24"
    #: PySceneDetect's SceneManager downscales to (at least) 256 px wide by default.
    default_analysis_width_px = 256
    #: Only used to build FrameTimecode objects; every length here is in frames.
    TIMECODE_FPS = Fraction(25)

    def __init__(self, min_shot_frames: int = 8, luma_only: bool | None = None, **params: Any) -> None:
        sd, *_ = _scenedetect()
        super().__init__(min_shot_frames=min_shot_frames, luma_only=luma_only,
                         scenedetect_version=sd.__version__, **params)
        self.luma_only = luma_only
        self.detector_params = dict(params)

    def _make(self, luma_only: bool):
        raise NotImplementedError

    def _boundary(self, index: int, scores: dict[int, float]) -> Boundary:
        raise NotImplementedError

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        _, _, _, FrameTimecode = _scenedetect()
        det = None
        scores: dict[int, float] = {}
        cut_frames: list[int] = []
        n = 0
        for frame in frames:
            frame = np.asarray(frame)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=2)
            if det is None:
                luma = _is_monochrome(frame) if self.luma_only is None else bool(self.luma_only)
                det = self._make(luma)
            bgr = np.ascontiguousarray(frame[..., ::-1])
            out = det.process_frame(FrameTimecode(n, self.TIMECODE_FPS), bgr)
            score = getattr(det, "_frame_score", None)  # the content score of this frame
            if score is not None:
                scores[n] = float(score)
            cut_frames += [tc.frame_num for tc in out]
            n += 1
        if det is not None and n:
            cut_frames += [tc.frame_num for tc in det.post_process(FrameTimecode(n - 1, self.TIMECODE_FPS))]
        cuts = [self._boundary(int(i), scores) for i in sorted(set(cut_frames)) if 0 < int(i) < n]
        return cuts, n


@SHOT_DETECTORS.register
class PySceneDetectContent(_PySceneDetectEngine):
    """PySceneDetect ``ContentDetector`` (HSV + edge differences, fixed threshold, flash filter).

    Parameters
    ----------
    min_shot_frames : int
        ``min_scene_len`` in frames.
    threshold : float
        PySceneDetect's default 27.
    luma_only : bool or None
        ``None``: automatic (luminance only for monochrome frames).
    """

    name = "pyscenedetect-content"
    version = "0.7.2"

    def __init__(self, min_shot_frames: int = 8, threshold: float = 27.0,
                 luma_only: bool | None = None) -> None:
        super().__init__(min_shot_frames=min_shot_frames, luma_only=luma_only,
                         threshold=float(threshold))
        self.threshold = float(threshold)

    def _make(self, luma_only: bool):
        _, ContentDetector, _, _ = _scenedetect()
        return ContentDetector(threshold=self.threshold, min_scene_len=self.min_shot_frames,
                               luma_only=luma_only)

    def _boundary(self, index: int, scores: dict[int, float]) -> Boundary:
        return Boundary(index, scores.get(index, self.threshold), self.threshold, "cut")


@SHOT_DETECTORS.register
class PySceneDetectAdaptive(_PySceneDetectEngine):
    """PySceneDetect ``AdaptiveDetector`` (content score over its rolling average).

    Parameters
    ----------
    min_shot_frames : int
        ``min_scene_len`` in frames.
    adaptive_threshold, window_width, min_content_val : PySceneDetect's defaults 3.0, 2, 15.
    luma_only : bool or None
        ``None``: automatic (luminance only for monochrome frames).
    """

    name = "pyscenedetect-adaptive"
    version = "0.7.2"

    def __init__(self, min_shot_frames: int = 8, adaptive_threshold: float = 3.0,
                 window_width: int = 2, min_content_val: float = 15.0,
                 luma_only: bool | None = None) -> None:
        super().__init__(min_shot_frames=min_shot_frames, luma_only=luma_only,
                         adaptive_threshold=float(adaptive_threshold),
                         window_width=int(window_width), min_content_val=float(min_content_val))
        self.adaptive_threshold = float(adaptive_threshold)
        self.window_width = int(window_width)
        self.min_content_val = float(min_content_val)

    def _make(self, luma_only: bool):
        _, _, AdaptiveDetector, _ = _scenedetect()
        return AdaptiveDetector(adaptive_threshold=self.adaptive_threshold,
                                min_scene_len=self.min_shot_frames,
                                window_width=self.window_width,
                                min_content_val=self.min_content_val, luma_only=luma_only)

    def _boundary(self, index: int, scores: dict[int, float]) -> Boundary:
        w = self.window_width
        around = [scores[i] for i in range(index - w, index + w + 1) if i != index and i in scores]
        mean = float(np.mean(around)) if around else 0.0
        ratio = min(255.0, scores.get(index, 0.0) / mean) if mean > 1e-5 else 255.0
        return Boundary(index, ratio, self.adaptive_threshold, "cut")


__all__ = ["EngineUnavailable", "PySceneDetectAdaptive", "PySceneDetectContent"]
