"""Migration 0003 (queue, region edits, cache keys, palette source, reference clusters) keeps
existing rows and downgrades cleanly, on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import inspect, text

from reel.db import api
from reel.db.models import Palette, QueueEntry, QueueStatus, RegionEdit
from reel.db.session import make_engine, session_scope


def test_0003_upgrade_keeps_rows_and_downgrades(empty_url):
    api.upgrade(empty_url, "0002")
    with make_engine(empty_url).begin() as c:
        c.execute(text("INSERT INTO collections (id, name, created_at) VALUES (1, 'c', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO items (id, collection_id, name, source_path, has_audio, status, "
                       "created_at, updated_at) VALUES (1, 1, 'f', '/f.mkv', false, 'registered', "
                       "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO palettes (id, item_id, scope, k, seed, colors, created_at) VALUES "
                       "(1, 1, 'film', 5, 0, '[]', '2026-01-01 00:00:00')"))
    api.upgrade(empty_url)
    assert api.current_revision(empty_url) == "0003"
    with session_scope(empty_url) as s:
        pal = s.get(Palette, 1)
        assert pal.source == "reference" and pal.model_version is None
        s.add(QueueEntry(collection_id=1, requested_by="archivist"))
        s.add(QueueEntry(collection_id=1, requested_by="ops", priority=2))
    with session_scope(empty_url) as s:
        entries = s.query(QueueEntry).order_by(QueueEntry.id).all()
        assert [e.status for e in entries] == [QueueStatus.QUEUED, QueueStatus.QUEUED]
        assert entries[1].priority == 2
    insp = inspect(make_engine(empty_url))
    assert {"cache_key", "device"} <= {c["name"] for c in insp.get_columns("stage_results")}
    assert "ix_stage_results_cache_key" in {i["name"] for i in insp.get_indexes("stage_results")}
    fks = {fk["constrained_columns"][0]: fk for fk in insp.get_foreign_keys("region_edits")}
    assert fks["shot_id"]["options"].get("ondelete") == "CASCADE"
    assert RegionEdit.__tablename__ in insp.get_table_names()

    api.downgrade(empty_url, "0002")
    insp = inspect(make_engine(empty_url))
    assert "queue_entries" not in insp.get_table_names()
    assert "region_edits" not in insp.get_table_names()
    assert "source" not in {c["name"] for c in insp.get_columns("palettes")}
    assert "reference_cluster" not in {c["name"] for c in insp.get_columns("shots")}
