"""Engines and sessions for the catalog (SQLite by default, PostgreSQL through psycopg 3).

- SQLite URLs are made absolute (relative paths resolve against the working directory), the
  parent folder is created, and every new DBAPI connection runs ``PRAGMA journal_mode=WAL``,
  ``busy_timeout=30000``, ``foreign_keys=ON`` and ``synchronous=NORMAL``. WAL needs all
  processes on one host (no NFS/SMB); use PostgreSQL for multi-node clusters.
- ``postgresql://`` and ``postgres://`` URLs are mapped to the psycopg 3 driver
  (``postgresql+psycopg://``).
- Engines are cached per (process id, URL): a forked or spawned worker gets its own engine and
  connection pool; never pass engines or sessions to tasks, pass ids and URLs.
- Keep write transactions short; never hold a session open across GPU work.

Example
-------
>>> import tempfile, os
>>> from sqlalchemy import text
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "doc", "catalog.db")
>>> with session_scope(url) as s:
...     s.execute(text("PRAGMA journal_mode")).scalar_one()
'wal'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "normalize_url",
    "make_engine",
    "dispose_engines",
    "session_factory",
    "session_scope",
]

#: How long a SQLite writer waits for the lock before "database is locked" (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

_ENGINES: dict[tuple[int, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def normalize_url(url: str | URL) -> URL:
    """Canonical form of a catalog URL.

    SQLite file paths become absolute; PostgreSQL URLs use the psycopg 3 driver.

    Parameters
    ----------
    url : str or sqlalchemy.URL
        ``sqlite:///relative/or/absolute.db``, ``sqlite://`` (memory), ``postgresql://...``,
        ``postgresql+psycopg://...``.

    Returns
    -------
    sqlalchemy.URL

    Example
    -------
    >>> normalize_url("postgresql://u@localhost/reel").drivername
    'postgresql+psycopg'
    >>> normalize_url("sqlite:////tmp/x/../reel.db").database
    '/tmp/reel.db'
    """
    u = make_url(url) if isinstance(url, str) else url
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:"):
            u = u.set(database=str(Path(db).expanduser().resolve()))
    elif u.drivername in ("postgresql", "postgres"):
        # A bare scheme means psycopg 3 (an explicit driver such as +psycopg2 is kept).
        u = u.set(drivername="postgresql+psycopg")
    return u


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def _create(u: URL, **kwargs: Any) -> Engine:
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        # Python-side wait on top of PRAGMA busy_timeout (seconds).
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000.0)
        engine = create_engine(u, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(u, **kwargs)


def make_engine(url: str | URL, *, cached: bool = True, **kwargs: Any) -> Engine:
    """Create (or reuse) the engine for a catalog URL.

    Parameters
    ----------
    url : str or sqlalchemy.URL
        Catalog URL, see :func:`normalize_url`.
    cached : bool
        Reuse one engine per (process, URL). ``False`` always builds a new engine (the caller
        disposes it), and is required when passing engine ``kwargs``.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine` (only with ``cached=False``).

    Returns
    -------
    sqlalchemy.Engine

    Example
    -------
    >>> import tempfile, os
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "c.db")
    >>> make_engine(url) is make_engine(url)
    True
    """
    u = normalize_url(url)
    if not cached:
        return _create(u, **kwargs)
    if kwargs:
        raise TypeError("engine kwargs need cached=False (a cached engine is shared)")
    key = (os.getpid(), u.render_as_string(hide_password=False))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            # Entries of a parent process (after fork) are dropped without closing their
            # connections, which belong to the parent.
            for stale in [k for k in _ENGINES if k[0] != key[0]]:
                _ENGINES.pop(stale).dispose(close=False)
            engine = _ENGINES[key] = _create(u)
        return engine


def dispose_engines() -> None:
    """Dispose and forget every engine cached by this process."""
    with _ENGINES_LOCK:
        pid = os.getpid()
        for key in list(_ENGINES):
            engine = _ENGINES.pop(key)
            engine.dispose(close=key[0] == pid)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to ``engine``.

    Objects stay usable after commit (``expire_on_commit=False``), so ids and values can be
    returned from a :func:`session_scope` block.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(url_or_engine: str | URL | Engine) -> Iterator[Session]:
    """A session that commits on success, rolls back on error and is always closed.

    Parameters
    ----------
    url_or_engine : str, sqlalchemy.URL or sqlalchemy.Engine
        A URL uses the cached engine of :func:`make_engine`.

    Example
    -------
    >>> import tempfile, os
    >>> from sqlalchemy import text
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "c.db")
    >>> with session_scope(url) as s:
    ...     _ = s.execute(text("CREATE TABLE t (x INTEGER)"))
    ...     _ = s.execute(text("INSERT INTO t VALUES (1)"))
    >>> with session_scope(url) as s:
    ...     s.execute(text("SELECT count(*) FROM t")).scalar_one()
    1
    """
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
