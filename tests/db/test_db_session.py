"""Engine/session helpers, packaging of the migrations, and scripts/postgres.sh."""

from __future__ import annotations

import doctest
import importlib
import multiprocessing
import os
import sqlite3
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from reel.db import api
from reel.db.models import Item, Shot
from reel.db.session import (
    SQLITE_BUSY_TIMEOUT_MS,
    dispose_engines,
    make_engine,
    normalize_url,
    session_factory,
    session_scope,
)

POSTGRES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


def test_sqlite_pragmas_on_every_connection(sqlite_empty_url):
    engine = make_engine(sqlite_empty_url)
    with engine.connect() as conn:
        pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                   for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")}
    assert pragmas == {"journal_mode": "wal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                       "foreign_keys": 1, "synchronous": 1}  # synchronous 1 = NORMAL
    # WAL is a property of the database file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(engine.url.database)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_wal_mode_after_migration(sqlite_empty_url):
    api.upgrade(sqlite_empty_url)
    path = normalize_url(sqlite_empty_url).database
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()
    assert Path(path + "-wal").exists() or Path(path).stat().st_size > 0


def test_relative_sqlite_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///nested/dir/catalog.db"
    engine = make_engine(url, cached=False)
    try:
        assert engine.url.database == str(tmp_path / "nested" / "dir" / "catalog.db")
        assert (tmp_path / "nested" / "dir").is_dir()  # parent created
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert (tmp_path / "nested" / "dir" / "catalog.db").is_file()
    finally:
        engine.dispose()


@pytest.mark.parametrize("url, driver", [
    ("postgresql://u:p%40ss@db.example:5433/reel", "postgresql+psycopg"),
    ("postgresql+psycopg://u@db.example/reel", "postgresql+psycopg"),
    ("postgres://u@db.example/reel", "postgresql+psycopg"),
])
def test_postgresql_urls_use_psycopg3(url, driver):
    u = normalize_url(url)
    assert u.drivername == driver and u.database == "reel"
    engine = make_engine(url, cached=False)  # no connection is made here
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.url.password == normalize_url(url).password
    finally:
        engine.dispose()


def test_engines_are_cached_per_url(tmp_path):
    a = f"sqlite:///{tmp_path}/a.db"
    assert make_engine(a) is make_engine(f"sqlite:///{tmp_path}/./a.db")
    assert make_engine(a) is not make_engine(f"sqlite:///{tmp_path}/b.db")
    assert make_engine(a, cached=False) is not make_engine(a)
    with pytest.raises(TypeError):
        make_engine(a, echo=True)
    dispose_engines()


def test_session_scope_commits_and_rolls_back(sqlite_empty_url):
    api.upgrade(sqlite_empty_url)
    with session_scope(sqlite_empty_url) as s:
        s.execute(text("INSERT INTO collections (name, created_at) VALUES ('kept', '2024-01-01')"))
    with pytest.raises(RuntimeError):
        with session_scope(sqlite_empty_url) as s:
            s.execute(text("INSERT INTO collections (name, created_at) VALUES ('lost', '2024-01-01')"))
            raise RuntimeError("boom")
    with session_factory(make_engine(sqlite_empty_url))() as s:
        assert s.scalars(text("SELECT name FROM collections")).all() == ["kept"]


def _writer(url: str, item_id: int, worker: int, n: int, queue) -> None:
    """Child process: n short write transactions through the module's cached engine."""
    try:
        engine = make_engine(url)
        for i in range(n):
            with session_scope(url) as s:
                shot = Shot(item_id=item_id, index=worker * 1000 + i, start_frame=i,
                            stop_frame=i + 1)
                s.add(shot)
        queue.put((worker, os.getpid(), id(engine), None))
    except BaseException as exc:  # report to the parent instead of dying silently
        queue.put((worker, os.getpid(), None, repr(exc)))


def test_forked_processes_get_their_own_engines_and_can_write(sqlite_empty_url):
    api.upgrade(sqlite_empty_url)
    parent_engine = make_engine(sqlite_empty_url)
    with session_scope(sqlite_empty_url) as s:
        s.execute(text("INSERT INTO collections (id, name, created_at) VALUES (1, 'c', '2024-01-01')"))
        item = Item(collection_id=1, name="f", source_path="/f.mkv")
        s.add(item)
        s.flush()
        item_id = item.id
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    n = 20
    procs = [ctx.Process(target=_writer, args=(sqlite_empty_url, item_id, w, n, queue))
             for w in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(err is None for *_, err in results), results
    assert all(pid != os.getpid() for _, pid, _, _ in results)
    assert make_engine(sqlite_empty_url) is parent_engine  # the parent's cache is intact
    with session_scope(sqlite_empty_url) as s:
        assert s.scalar(select(func.count()).select_from(Shot)) == 2 * n


def test_alembic_config_uses_package_files():
    cfg = api.alembic_config("postgresql://u:p%25x@h/db")
    pkg = Path(str(files("reel.db")))
    assert Path(cfg.config_file_name) == pkg / "alembic.ini"
    script_location = Path(cfg.get_main_option("script_location"))
    assert script_location == pkg / "migrations"
    for rel in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (script_location / rel).is_file(), rel
    # the URL travels as an attribute, untouched by ini interpolation
    assert cfg.attributes["url"] == "postgresql+psycopg://u:p%25x@h/db"


def test_current_revision_of_missing_sqlite_file_is_none(tmp_path):
    assert api.current_revision(f"sqlite:///{tmp_path}/nope/reel.db") is None


@pytest.mark.parametrize("module", ["reel.db.models", "reel.db.session", "reel.db.api",
                                    "reel.db.reviews"])
def test_docstring_examples(module, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    dispose_engines()
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.postgres
def test_postgres_script_start_is_idempotent(postgres_server):
    if postgres_server.dir is None:
        pytest.skip("external server from REEL_TEST_POSTGRES_URL")
    again = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start", str(postgres_server.dir), "1"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    # already running: prints the URL with the port it really listens on, not the one asked
    assert again.stdout.strip() == postgres_server.url
    assert "already running" in again.stderr
    assert postgres_server.url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_server.url.endswith("/reel_test")
    engine = make_engine(postgres_server.url, cached=False)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == "reel_test"
            assert conn.execute(text("SHOW listen_addresses")).scalar_one() == "127.0.0.1"
    finally:
        engine.dispose()
