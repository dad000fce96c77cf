"""Fixtures for catalog tests: empty SQLite and PostgreSQL databases.

PostgreSQL: the server URL comes from ``REEL_TEST_POSTGRES_URL`` (any database on the server;
the role needs CREATEDB). Without it, one throwaway server is started for the test session with
``scripts/postgres.sh`` in a temporary folder on a free port, and stopped at the end. Every test
gets its own fresh database ``reel_test_<session token>_<n>``, dropped afterwards, so reruns and
parallel sessions never collide.
"""

from __future__ import annotations

import glob
import itertools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, pool

from reel.db.api import upgrade
from reel.db.session import dispose_engines

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"


@dataclass(frozen=True)
class PostgresServer:
    url: str  # SQLAlchemy URL of a database on the server (used to run CREATE/DROP DATABASE)
    dir: Path | None  # cluster folder when started by this session, None for an external server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_unavailable_reason() -> str | None:
    if not POSTGRES_SCRIPT.is_file():
        return f"{POSTGRES_SCRIPT} is missing"
    have_initdb = shutil.which("initdb") is not None or bool(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if have_initdb:
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root but there is no 'postgres' user to own the cluster"
        return None
    if os.geteuid() != 0:
        return "PostgreSQL is not installed and installing it with apt-get needs root"
    if shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and apt-get is unavailable"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session (external or started here)."""
    external = os.environ.get("REEL_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(url=external, dir=None)
        return
    reason = _postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no PostgreSQL server: set REEL_TEST_POSTGRES_URL or fix this: {reason}")
    # Not under pytest's tmp_path: that lives in a root-only folder the postgres user cannot
    # traverse. mkdtemp makes a private folder directly in /tmp; the script hands it over.
    cluster_dir = Path(tempfile.mkdtemp(prefix="reel-pg-"))
    port = _free_port()
    proc = subprocess.run(
        ["bash", str(POSTGRES_SCRIPT), "start", str(cluster_dir), str(port)],
        capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        pytest.fail(f"scripts/postgres.sh start failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    url = proc.stdout.strip().splitlines()[-1]
    try:
        yield PostgresServer(url=url, dir=cluster_dir)
    finally:
        dispose_engines()
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", str(cluster_dir)],
                       capture_output=True, text=True, timeout=120)
        shutil.rmtree(cluster_dir, ignore_errors=True)


_SESSION_TOKEN = secrets.token_hex(4)
_DB_COUNTER = itertools.count()


@pytest.fixture
def postgres_empty_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database (dropped after the test)."""
    name = f"reel_test_{_SESSION_TOKEN}_{next(_DB_COUNTER)}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT",
                          poolclass=pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_server.url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engines()  # cached engines hold pooled connections to the database
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def sqlite_empty_url(tmp_path: Path) -> Iterator[str]:
    """URL of a not-yet-existing SQLite catalog in a temporary folder."""
    yield f"sqlite:///{tmp_path / 'catalog' / 'reel.db'}"
    dispose_engines()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty catalog database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_empty_url")


@pytest.fixture
def catalog_url(empty_url: str) -> str:
    """A catalog migrated to head, on each backend."""
    upgrade(empty_url)
    return empty_url
