"""Catalog schema, migrations and ORM behaviour on SQLite and PostgreSQL (``-m postgres``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm.exc import StaleDataError

from reel.db import api
from reel.db.models import (
    Base,
    Collection,
    Deliverable,
    DeliverableKind,
    Event,
    EventOutcome,
    EventType,
    Item,
    ItemStatus,
    Metric,
    Palette,
    PaletteScope,
    ReferenceImage,
    Review,
    ReviewDecision,
    Run,
    RunStatus,
    Shot,
    ShotOrigin,
    ShotReference,
    ShotStatus,
    StageResult,
    StageStatus,
)
from reel.db.reviews import ReviewConflict, record_review
from reel.db.session import make_engine, session_scope

EXPECTED_TABLES = {
    "collections", "items", "shots", "reference_images", "shot_references", "palettes", "runs",
    "stage_results", "metrics", "reviews", "deliverables", "events", "users", "rerun_requests",
    "queue_entries", "region_edits",
}


def _count(s, model) -> int:
    return s.scalar(select(func.count()).select_from(model))


def _film(s, *, name: str = "reel-1", n_shots: int = 3) -> Item:
    """A collection with one film of `n_shots` 24-frame shots (flushed, ids assigned)."""
    coll = s.scalar(select(Collection).where(Collection.name == "newsreels"))
    if coll is None:
        coll = Collection(name="newsreels", references_dir="/refs/newsreels")
    item = Item(collection=coll, name=name, source_path=f"/films/{name}.mkv",
                source_sha256="ab" * 32, fps="24000/1001", n_frames=24 * n_shots,
                width=720, height=576, has_audio=True,
                probe={"streams": [{"codec_name": "ffv1", "r_frame_rate": "24000/1001"}]})
    for i in range(n_shots):
        item.shots.append(Shot(index=i, start_frame=24 * i, stop_frame=24 * (i + 1),
                               transition="cut", confidence=0.9))
    s.add(item)
    s.flush()
    return item


# ----------------------------------------------------------------------------------------------
# Migrations
# ----------------------------------------------------------------------------------------------


def test_upgrade_from_empty_creates_every_table(empty_url):
    assert api.current_revision(empty_url) is None
    api.upgrade(empty_url)
    head = api.head_revision()
    assert head == "0003"
    assert api.current_revision(empty_url) == head
    tables = set(inspect(make_engine(empty_url)).get_table_names())
    assert tables == EXPECTED_TABLES | {"alembic_version"}
    assert set(Base.metadata.tables) == EXPECTED_TABLES


def test_models_and_migrations_agree(catalog_url):
    """`alembic check`: autogenerate finds nothing to change after upgrading to head."""
    with make_engine(catalog_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_schema_details_survive_migration(catalog_url):
    insp = inspect(make_engine(catalog_url))
    fks = {fk["referred_table"]: fk for fk in insp.get_foreign_keys("shots")}
    assert fks["items"]["options"].get("ondelete") == "CASCADE"
    fks = {fk["constrained_columns"][0]: fk for fk in insp.get_foreign_keys("deliverables")}
    assert fks["run_id"]["options"].get("ondelete") == "SET NULL"
    indexes = {ix["name"]: ix["column_names"] for ix in insp.get_indexes("metrics")}
    assert indexes["ix_metrics_shot_id_name"] == ["shot_id", "name"]
    uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("shots")}
    assert uniques["uq_shots_item_id_index"] == ["item_id", "index"]
    status = {c["name"]: c for c in insp.get_columns("shots")}["status"]
    assert getattr(status["type"], "length", None) == 32  # plain VARCHAR, no native enum


def test_downgrade_to_base_and_back(catalog_url):
    api.downgrade(catalog_url, "base")
    assert api.current_revision(catalog_url) is None
    assert set(inspect(make_engine(catalog_url)).get_table_names()) <= {"alembic_version"}
    assert api.ensure_schema(catalog_url) == api.head_revision()
    assert set(inspect(make_engine(catalog_url)).get_table_names()) >= EXPECTED_TABLES


def test_ensure_schema_is_a_no_op_at_head(empty_url, monkeypatch):
    assert api.ensure_schema(empty_url) == api.head_revision()

    def _fail(*args, **kwargs):
        raise AssertionError("upgrade must not run again")

    monkeypatch.setattr(api, "upgrade", _fail)
    assert api.ensure_schema(empty_url) == api.head_revision()


# ----------------------------------------------------------------------------------------------
# ORM round trip
# ----------------------------------------------------------------------------------------------


def test_round_trip_through_relationships(catalog_url):
    with session_scope(catalog_url) as s:
        item = _film(s)
        coll = item.collection
        refs = [ReferenceImage(collection=coll, path=f"/refs/newsreels/{i}.png",
                               sha256=f"{i:064x}", width=640, height=480) for i in range(2)]
        run = Run(collection=coll, reel_version="0.1.0", settings={"palette_k": 5, "seed": 0},
                  prefect_flow_run_id="flow-1", mlflow_run_id="ml-1")
        s.add_all([*refs, run])  # a backref to a persistent parent does not add them (SA 2)
        shot0, shot1 = item.shots[0], item.shots[1]
        shot0.references.append(ShotReference(reference=refs[1], rank=0, score=0.75, pinned=True))
        shot0.references.append(ShotReference(reference=refs[0], rank=1, score=0.5))
        shot1.flags = ["low_confidence", "flicker"]
        s.add_all([
            Palette(item=item, shot=shot0, scope=PaletteScope.SHOT, k=2, seed=0,
                    colors=[{"lab": [50.0, 10.5, -3.25], "weight": 0.6},
                            {"lab": [80.0, 0.0, 0.0], "weight": 0.4}]),
            Palette(item=item, shot=None, scope=PaletteScope.FILM, k=1, seed=0,
                    colors=[{"lab": [60.0, 1.0, 2.0], "weight": 1.0}], path="/p/film.json"),
            StageResult(run=run, item=item, shot=shot0, stage="colorize",
                        engine="exemplar-propagate", engine_version="1", params_hash="f" * 64,
                        params={"analysis_width_px": 320}, output_path="/w/shot-0000.mkv",
                        status=StageStatus.DONE, seconds=1.25),
            StageResult(run=run, item=item, shot=None, stage="probe", engine="ffprobe",
                        engine_version="5.1", params_hash="0" * 64, status="done"),
            Metric(run=run, item=item, shot=shot0, name="colorfulness", value=31.5),
            Metric(run=run, item=item, shot=shot0, name="flicker", value=0.125),
            Deliverable(item=item, run=run, kind=DeliverableKind.MASTER, path="/d/reel-1.mkv",
                        sha256="c" * 64, n_frames=72, fps="24000/1001", codec="ffv1"),
            Event(item=item, shot=shot0, run=run, event_type=EventType.COLORIZATION,
                  outcome=EventOutcome.SUCCESS, agent="reel 0.1.0 / exemplar-propagate 1",
                  detail={"references": [1, 0]}),
            Event(item=item, event_type="fixity check", outcome="success",
                  agent="reel 0.1.0", detail={"sha256": "ab" * 32}),
        ])
        s.flush()
        record_review(s, shot0.id, "ana", ReviewDecision.APPROVE, expected_version=1,
                      note="good skin tones")
        coll_id = coll.id

    with session_scope(catalog_url) as s:
        coll = s.get(Collection, coll_id)
        assert [i.name for i in coll.items] == ["reel-1"]
        item = coll.items[0]
        assert item.status is ItemStatus.REGISTERED
        assert item.probe["streams"][0]["r_frame_rate"] == "24000/1001"
        assert item.fps == "24000/1001" and item.has_audio is True
        assert [(sh.index, sh.start_frame, sh.stop_frame) for sh in item.shots] == [
            (0, 0, 24), (1, 24, 48), (2, 48, 72)]
        shot0, shot1 = item.shots[0], item.shots[1]
        assert shot0.n_frames == 24 and shot0.origin is ShotOrigin.DETECTED
        assert shot1.flags == ["low_confidence", "flicker"] and shot1.status is ShotStatus.PENDING
        # shot.references, ordered by rank, through to the reference images
        assert [(r.rank, r.reference.path, r.score, r.pinned) for r in shot0.references] == [
            (0, "/refs/newsreels/1.png", 0.75, True), (1, "/refs/newsreels/0.png", 0.5, False)]
        assert {r.path for r in coll.references} == {"/refs/newsreels/0.png", "/refs/newsreels/1.png"}
        assert [link.shot.index for link in coll.references[1].shot_links] == [0]
        # palettes: one per shot, one for the film
        assert shot0.palettes[0].colors[0] == {"lab": [50.0, 10.5, -3.25], "weight": 0.6}
        film_palette = [p for p in item.palettes if p.shot_id is None]
        assert len(film_palette) == 1 and film_palette[0].scope is PaletteScope.FILM
        # run, stage results, metrics
        run = coll.runs[0]
        assert run.status is RunStatus.RUNNING and run.settings == {"palette_k": 5, "seed": 0}
        assert {sr.stage: sr.status for sr in run.stage_results} == {
            "colorize": StageStatus.DONE, "probe": StageStatus.DONE}
        assert shot0.stage_results[0].params == {"analysis_width_px": 320}
        assert {m.name: m.value for m in shot0.metrics} == {"colorfulness": 31.5, "flicker": 0.125}
        # review with optimistic-lock version
        assert shot0.status is ShotStatus.APPROVED and shot0.version == 2
        (review,) = shot0.reviews
        assert (review.reviewer, review.decision, review.note, review.version) == (
            "ana", ReviewDecision.APPROVE, "good skin tones", 2)
        # deliverables and provenance
        (master,) = item.deliverables
        assert master.kind is DeliverableKind.MASTER and master.run is run and master.n_frames == 72
        assert [(e.event_type, e.outcome) for e in item.events] == [
            ("colorization", EventOutcome.SUCCESS), ("fixity check", EventOutcome.SUCCESS)]
        assert shot0.events[0].detail == {"references": [1, 0]}
        # timestamps come back timezone-aware in UTC
        for ts in (coll.created_at, item.created_at, item.updated_at, review.created_at,
                   run.started_at):
            assert ts.tzinfo is not None and ts.utcoffset() == timedelta(0)
            assert abs(datetime.now(UTC) - ts) < timedelta(minutes=5)


def test_status_updates_and_updated_at(catalog_url):
    with session_scope(catalog_url) as s:
        item_id = _film(s, n_shots=1).id
    with session_scope(catalog_url) as s:
        item = s.get(Item, item_id)
        created, before = item.created_at, item.updated_at
        item.status = ItemStatus.RESTORED
    with session_scope(catalog_url) as s:
        item = s.get(Item, item_id)
        assert item.status is ItemStatus.RESTORED
        assert item.updated_at >= before and item.created_at == created
        assert s.scalar(select(Item.id).where(Item.status == "restored")) == item_id


# ----------------------------------------------------------------------------------------------
# Constraints
# ----------------------------------------------------------------------------------------------


def test_deleting_an_item_cascades_in_the_database(catalog_url):
    with session_scope(catalog_url) as s:
        item = _film(s, n_shots=3)
        other = _film(s, name="reel-2", n_shots=2)
        ref = ReferenceImage(collection=item.collection, path="/r.png", sha256="1" * 64,
                             width=8, height=8)
        run = Run(collection=item.collection, reel_version="0.1.0")
        shot = item.shots[0]
        s.add_all([
            ShotReference(shot=shot, reference=ref, rank=0, score=1.0),
            Metric(run=run, item=item, shot=shot, name="m", value=1.0),
            Review(shot=shot, reviewer="ana", decision="reject", version=1),
            Palette(item=item, shot=shot, scope="shot", k=1, seed=0, colors=[]),
            Event(item=item, shot=shot, event_type="creation", outcome="success", agent="t"),
            Deliverable(item=item, run=run, kind="access", path="/a.mp4", sha256="d" * 64),
        ])
        s.flush()
        item_id, other_id, run_id = item.id, other.id, run.id

    with session_scope(catalog_url) as s:
        # A Core DELETE: only ON DELETE CASCADE in the database can remove the children.
        s.execute(delete(Item).where(Item.id == item_id))

    with session_scope(catalog_url) as s:
        assert s.scalars(select(Shot.item_id)).all() == [other_id, other_id]
        for model in (ShotReference, Metric, Review, Palette, Event, Deliverable):
            assert _count(s, model) == 0, model.__tablename__
        # parents and siblings stay
        assert _count(s, ReferenceImage) == 1 and s.get(Run, run_id) is not None
        assert s.get(Item, other_id) is not None


def test_deleting_a_run_keeps_deliverables_and_events(catalog_url):
    with session_scope(catalog_url) as s:
        item = _film(s, n_shots=1)
        run = Run(collection=item.collection, reel_version="0.1.0", status=RunStatus.COMPLETED)
        s.add_all([
            Deliverable(item=item, run=run, kind="master", path="/m.mkv", sha256="e" * 64),
            Event(item=item, run=run, event_type="creation", outcome="success", agent="t"),
            Metric(run=run, item=item, name="n_shots", value=1.0),
        ])
        s.flush()
        run_id = run.id
    with session_scope(catalog_url) as s:
        s.execute(delete(Run).where(Run.id == run_id))
    with session_scope(catalog_url) as s:
        assert s.scalars(select(Deliverable.run_id)).all() == [None]
        assert s.scalars(select(Event.run_id)).all() == [None]
        assert _count(s, Metric) == 0


def test_orm_delete_of_a_collection_removes_everything(catalog_url):
    with session_scope(catalog_url) as s:
        coll_id = _film(s, n_shots=2).collection_id
    with session_scope(catalog_url) as s:
        s.delete(s.get(Collection, coll_id))
    with session_scope(catalog_url) as s:
        for model in (Collection, Item, Shot):
            assert _count(s, model) == 0


@pytest.mark.parametrize("case", ["collection_name", "item_name", "shot_index", "reference_sha",
                                  "shot_reference", "frame_range"])
def test_constraint_violations_raise_integrity_error(catalog_url, case):
    with session_scope(catalog_url) as s:
        item = _film(s, n_shots=2)
        ref = ReferenceImage(collection=item.collection, path="/r.png", sha256="2" * 64,
                             width=8, height=8)
        s.add(ShotReference(shot=item.shots[0], reference=ref, rank=0, score=1.0))
        s.flush()
        coll_id, item_id, shot_id, ref_id = item.collection_id, item.id, item.shots[0].id, ref.id

    bad = {
        "collection_name": lambda: Collection(name="newsreels"),
        "item_name": lambda: Item(collection_id=coll_id, name="reel-1", source_path="/x.mkv"),
        "shot_index": lambda: Shot(item_id=item_id, index=1, start_frame=100, stop_frame=110),
        "reference_sha": lambda: ReferenceImage(collection_id=coll_id, path="/other.png",
                                                sha256="2" * 64, width=8, height=8),
        "shot_reference": lambda: ShotReference(shot_id=shot_id, reference_id=ref_id, rank=1,
                                                score=0.5),
        "frame_range": lambda: Shot(item_id=item_id, index=5, start_frame=10, stop_frame=10),
    }[case]
    with pytest.raises(IntegrityError):
        with session_scope(catalog_url) as s:
            s.add(bad())
    # the failed transaction was rolled back and the catalog is still usable
    with session_scope(catalog_url) as s:
        assert _count(s, Shot) == 2


def test_foreign_keys_are_enforced(catalog_url):
    with pytest.raises(IntegrityError):
        with session_scope(catalog_url) as s:
            s.add(Shot(item_id=12345, index=0, start_frame=0, stop_frame=1))


def test_enum_columns_reject_unknown_values(catalog_url):
    with session_scope(catalog_url) as s:
        item_id = _film(s, n_shots=1).id
    with pytest.raises((StatementError, LookupError)):
        with session_scope(catalog_url) as s:
            s.get(Item, item_id).status = "half-done"
    with session_scope(catalog_url) as s:
        assert s.get(Item, item_id).status is ItemStatus.REGISTERED


def test_timestamps_must_be_timezone_aware(catalog_url):
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(catalog_url) as s:
            s.add(Collection(name="naive", created_at=datetime(2024, 5, 1, 12, 0)))
    cet = timezone(timedelta(hours=2))
    with session_scope(catalog_url) as s:
        s.add(Collection(name="aware", created_at=datetime(2024, 5, 1, 12, 0, tzinfo=cet)))
    with session_scope(catalog_url) as s:
        got = s.scalar(select(Collection.created_at).where(Collection.name == "aware"))
        assert got == datetime(2024, 5, 1, 10, 0, tzinfo=UTC) and got.tzinfo == UTC


# ----------------------------------------------------------------------------------------------
# Reviews: optimistic locking
# ----------------------------------------------------------------------------------------------


def test_concurrent_reviews_conflict(catalog_url):
    with session_scope(catalog_url) as s:
        shot_id = _film(s, n_shots=1).shots[0].id

    # Both archivists load the shot at version 1.
    with session_scope(catalog_url) as s:
        seen_a = seen_b = s.get(Shot, shot_id).version
    assert seen_a == 1

    with session_scope(catalog_url) as s:
        review = record_review(s, shot_id, "ana", "approve", expected_version=seen_a)
        assert review.version == 2
    with pytest.raises(ReviewConflict, match="version 2"):
        with session_scope(catalog_url) as s:
            record_review(s, shot_id, "ben", "reject", expected_version=seen_b)

    with session_scope(catalog_url) as s:
        shot = s.get(Shot, shot_id)
        assert shot.status is ShotStatus.APPROVED and shot.version == 2
        assert [(r.reviewer, r.version) for r in shot.reviews] == [("ana", 2)]
        # ben reloads and decides again: accepted
        record_review(s, shot_id, "ben", ReviewDecision.RERUN, expected_version=shot.version)
    with session_scope(catalog_url) as s:
        shot = s.get(Shot, shot_id)
        assert shot.status is ShotStatus.RERUN_REQUESTED and shot.version == 3
        assert [r.decision for r in shot.reviews] == [ReviewDecision.APPROVE, ReviewDecision.RERUN]


def test_stale_shot_update_raises_stale_data(catalog_url):
    """version_id_col: a session holding an outdated shot cannot overwrite a newer one."""
    with session_scope(catalog_url) as s:
        shot_id = _film(s, n_shots=1).shots[0].id
    engine = make_engine(catalog_url)
    from reel.db.session import session_factory

    make = session_factory(engine)
    with make() as stale:
        stale_shot = stale.get(Shot, shot_id)  # version 1
        stale.commit()  # release the read transaction; the object stays loaded (no expiry)
        with session_scope(engine) as s:
            s.get(Shot, shot_id).status = ShotStatus.FLAGGED  # version 2
        stale_shot.status = ShotStatus.DONE
        with pytest.raises(StaleDataError):
            stale.flush()
        stale.rollback()
    with session_scope(engine) as s:
        assert s.get(Shot, shot_id).status is ShotStatus.FLAGGED
