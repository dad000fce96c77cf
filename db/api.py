"""Schema management of the catalog: Alembic driven from Python.

These are what ``reel db upgrade`` and the flows call. They locate ``alembic.ini`` and the
migrations inside the installed ``reel.db`` package, so they work from a wheel as well as from a
checkout.

Example
-------
>>> import tempfile, os
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "catalog.db")
>>> current_revision(url) is None
True
>>> ensure_schema(url) == head_revision()
True
>>> current_revision(url) == head_revision()
True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, pool

from .session import make_engine, normalize_url

__all__ = [
    "package_dir",
    "alembic_config",
    "head_revision",
    "upgrade",
    "downgrade",
    "current_revision",
    "ensure_schema",
]


def package_dir() -> Path:
    """Folder of the installed ``reel.db`` package (holds alembic.ini and migrations/)."""
    try:
        root = files("reel.db")
        path = Path(str(root))
        if (path / "alembic.ini").is_file():
            return path
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - imported outside the package
        pass
    return Path(__file__).resolve().parent


def _url_string(url: str | URL) -> str:
    return normalize_url(url).render_as_string(hide_password=False)


def alembic_config(url: str | URL) -> Config:
    """An Alembic :class:`~alembic.config.Config` for the catalog at ``url``.

    The URL is passed to ``env.py`` as ``config.attributes["url"]`` (not through the ini file,
    whose interpolation would break on ``%`` in passwords).

    Example
    -------
    >>> cfg = alembic_config("sqlite:////tmp/reel-doc.db")
    >>> cfg.attributes["url"]
    'sqlite:////tmp/reel-doc.db'
    >>> Path(cfg.get_main_option("script_location")).name
    'migrations'
    """
    pkg = package_dir()
    cfg = Config(str(pkg / "alembic.ini"))
    cfg.set_main_option("script_location", str(pkg / "migrations"))
    cfg.attributes["url"] = _url_string(url)
    return cfg


def head_revision() -> str:
    """The newest revision id shipped with this version of reel."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no Alembic revisions found in reel.db.migrations")
    return head


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the catalog at ``url`` up to ``revision`` (creating it if needed)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the catalog at ``url`` down to ``revision`` (``"base"`` drops every table)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str | URL) -> str | None:
    """The revision the catalog at ``url`` is at, or None for an empty (unversioned) database."""
    engine = make_engine(url, cached=False, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def ensure_schema(url: str | URL) -> str:
    """Upgrade the catalog at ``url`` to head unless it is there already.

    Safe to call at every start. If another process migrates the same database at the same
    moment and this upgrade fails, the error is only raised when the database did not end up
    at head.

    Returns
    -------
    str
        The head revision id.
    """
    head = head_revision()
    if current_revision(url) == head:
        return head
    try:
        upgrade(url, "head")
    except Exception:
        if current_revision(url) != head:
            raise
    return head
