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
