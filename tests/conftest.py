"""Shared fixtures: an isolated reel home per test (catalog, MLflow, work files)."""

from __future__ import annotations

import pytest

from reel.config import get_settings, reset_settings


@pytest.fixture
def reel_home(tmp_path, monkeypatch):
    """Point reel's settings at a fresh folder; returns the Settings object."""
    home = tmp_path / "reel-home"
    monkeypatch.setenv("REEL_HOME", str(home))
    monkeypatch.delenv("REEL_DATABASE_URL", raising=False)
    monkeypatch.delenv("REEL_MLFLOW_TRACKING_URI", raising=False)
    reset_settings()
    s = get_settings()
    s.ensure_dirs()
    yield s
    reset_settings()


@pytest.fixture
def two_region_shot(tmp_path):
    """Factory: a T-frame FFV1 shot ``tmp_path/harmonized.mkv`` of a ``background`` RGB frame
    with a green left half (region 1; every 4th row + ``texture``) and its label maps
    ``tmp_path/labels.npz`` (uint16 (T, H/2, W/2)); returns ``(path, frames, labels path)``."""
    import numpy as np

    from reel.tasks.media import FrameWriter

    def make(T=8, H=32, W=48, background=(150, 120, 90), texture=6):
        frames = []
        for _ in range(T):
            f = np.zeros((H, W, 3), np.uint8)
            f[:] = background
            f[:, : W // 2] = (60, 140, 60)  # region 1: a green left half
            f[::4, :, :] += texture  # a little texture
            frames.append(f)
        src = tmp_path / "harmonized.mkv"
        with FrameWriter(src, W, H, "25/1") as w:
            for f in frames:
                w.write(f)
        labels = np.zeros((T, H // 2, W // 2), np.uint16)
        labels[:, :, : W // 4] = 1
        np.savez_compressed(tmp_path / "labels.npz", labels=labels)
        return src, frames, tmp_path / "labels.npz"

    return make
