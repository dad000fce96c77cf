"""The reel catalog (SQLAlchemy 2 ORM + Alembic).

- :mod:`reel.db.models` -- tables, status enums, ``Base``.
- :mod:`reel.db.session` -- ``make_engine``, ``session_factory``, ``session_scope``.
- :mod:`reel.db.api` -- ``alembic_config``, ``upgrade``, ``current_revision``, ``ensure_schema``.
- :mod:`reel.db.reviews` -- ``record_review`` with optimistic locking.

Only flows and dashboards import this package; tasks never do.
"""
