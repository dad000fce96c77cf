"""Alembic environment of the reel catalog.

The database URL comes, in order, from the Config attribute ``url`` (set by
:func:`reel.db.api.alembic_config`), ``-x url=...`` on the alembic command line, the
``REEL_DATABASE_URL`` environment variable, and finally reel's settings. A caller may also pass
an open SQLAlchemy connection as the Config attribute ``connection``.

Migrations render in batch mode (SQLite can only ALTER by copying tables) and compare column
types. On SQLite, foreign keys are switched off while migrating (a batch copy drops and
recreates tables, which would otherwise cascade-delete child rows) and checked afterwards.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection

from reel.db.models import Base, UTCDateTime
from reel.db.session import make_engine, normalize_url

config = context.config

# Only the alembic command line configures logging; programmatic upgrades (CLI, flows) keep the
# application's logging untouched.
if config.cmd_opts is not None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("url")
    if url:
        return str(url)
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    url = os.environ.get("REEL_DATABASE_URL")
    if url:
        return url
    from reel.config import get_settings

    return str(get_settings().database_url)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render reel's custom column types as plain SQLAlchemy types in revisions."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure_kwargs() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": True,
        "compare_type": True,
        "render_item": _render_item,
    }


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = normalize_url(_database_url())
    context.configure(
        url=url.render_as_string(hide_password=False),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_configure_kwargs(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **_configure_kwargs())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(_database_url(), cached=False, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Not changeable inside a transaction: commit the implicit one around it.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            _run_on(connection)
            if sqlite:
                bad = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.commit()
                if bad:
                    raise RuntimeError(f"foreign key violations after migrating: {bad[:10]}")
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
