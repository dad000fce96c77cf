"""Fixtures for the dashboard tests: a seeded catalog (made once per session, copied per test),
and the same seeded into a fresh PostgreSQL database (server fixtures of tests/db/conftest.py)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_seed import Seeded, seed_catalog  # noqa: E402

from reel.config import reset_settings  # noqa: E402
from reel.db.session import dispose_engines  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "reel_db_test_fixtures", Path(__file__).resolve().parents[1] / "db" / "conftest.py")
_db_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _db_fixtures  # dataclasses look their module up there
_spec.loader.exec_module(_db_fixtures)
postgres_server = _db_fixtures.postgres_server
postgres_empty_url = _db_fixtures.postgres_empty_url


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory) -> Seeded:
    home = tmp_path_factory.mktemp("dash-home")
    seeded = seed_catalog(home)
    dispose_engines()  # close pooled connections so the WAL is checkpointed into reel.db
    return seeded


@pytest.fixture
def seeded(seeded_template: Seeded, tmp_path, monkeypatch) -> Seeded:
    """A private copy of the seeded catalog (same files), set as reel's catalog for the app."""
    src = Path(seeded_template.url.removeprefix("sqlite:///"))
    dst = tmp_path / "reel.db"
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    url = f"sqlite:///{dst}"
    monkeypatch.setenv("REEL_HOME", str(seeded_template.home))
    monkeypatch.setenv("REEL_DATABASE_URL", url)
    reset_settings()
    yield Seeded(url, seeded_template.home, seeded_template.item_id, seeded_template.failed_item_id,
                 seeded_template.collection_id, list(seeded_template.shot_ids),
                 seeded_template.run_id, list(seeded_template.refs))
    dispose_engines()
    reset_settings()


@pytest.fixture
def seeded_pg(postgres_empty_url, tmp_path, monkeypatch) -> Seeded:
    """The seeded catalog in a fresh PostgreSQL database, set as reel's catalog for the app."""
    home = tmp_path / "home"
    seeded = seed_catalog(home, postgres_empty_url)
    monkeypatch.setenv("REEL_HOME", str(home))
    monkeypatch.setenv("REEL_DATABASE_URL", postgres_empty_url)
    reset_settings()
    yield seeded
    dispose_engines()
    reset_settings()
