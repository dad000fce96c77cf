"""Migration 0002 (users, re-run requests, output versions) and the review/user helpers, on
SQLite and PostgreSQL (``-m postgres``)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from reel.db import api
from reel.db.models import (
    Collection,
    Event,
    Item,
    RerunRequest,
    RerunStatus,
    Run,
    Shot,
    ShotStatus,
    StageResult,
    User,
    UserRole,
)
from reel.db.reviews import (
    RerunParamsError,
    ReviewConflict,
    audit_log,
    delivery_blockers,
    request_rerun,
    review_shot,
    validate_rerun_params,
)
from reel.db.session import make_engine, session_scope
from reel.db.users import UserError, authenticate, create_user, set_password, verify_password


def _film(s, n_shots: int = 2) -> Item:
    item = Item(collection=Collection(name="c"), name="f", source_path="/f.mkv")
    for i in range(n_shots):
        item.shots.append(Shot(index=i, start_frame=10 * i, stop_frame=10 * (i + 1)))
    s.add(item)
    s.flush()
    return item


def test_upgrade_from_0001_keeps_rows_and_numbers_them_version_1(empty_url):
    api.upgrade(empty_url, "0001")
    eng = make_engine(empty_url)
    with eng.begin() as c:  # rows written by reel 0001
        c.execute(text("INSERT INTO collections (id, name, created_at) VALUES (1, 'c', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO items (id, collection_id, name, source_path, has_audio, status, "
                       "created_at, updated_at) VALUES (1, 1, 'f', '/f', false, 'restored', "
                       "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO shots (id, item_id, index, start_frame, stop_frame, transition, "
                       "confidence, origin, status, flags, version, created_at, updated_at) VALUES "
                       "(1, 1, 0, 0, 10, 'cut', 1.0, 'detected', 'done', '[]', 1, "
                       "'2026-01-01 00:00:00', '2026-01-01 00:00:00')".replace(" index,", ' "index",')))
        c.execute(text("INSERT INTO runs (id, collection_id, status, started_at, reel_version, settings) "
                       "VALUES (1, 1, 'completed', '2026-01-01 00:00:00', '0.1.0', '{}')"))
        c.execute(text("INSERT INTO stage_results (id, run_id, item_id, shot_id, stage, engine, "
                       "engine_version, params_hash, params, status, created_at) VALUES "
                       "(1, 1, 1, 1, 'qc', 'reel-qc', '0.1.0', '', '{}', 'done', '2026-01-01 00:00:00')"))
    api.upgrade(empty_url, "0002")
    assert api.current_revision(empty_url) == "0002"
    api.upgrade(empty_url)  # the ORM maps the head schema
    with session_scope(empty_url) as s:
        assert s.get(Shot, 1).output_version == 1 and s.get(StageResult, 1).output_version == 1
        assert s.get(Shot, 1).status is ShotStatus.DONE
    insp = inspect(make_engine(empty_url))
    fks = {fk["constrained_columns"][0]: fk for fk in insp.get_foreign_keys("rerun_requests")}
    assert fks["shot_id"]["options"].get("ondelete") == "CASCADE"
    assert fks["review_id"]["options"].get("ondelete") == "SET NULL"
    assert fks["picked_up_run_id"]["options"].get("ondelete") == "SET NULL"
    assert {u["name"] for u in insp.get_unique_constraints("users")} == {"uq_users_name"}

    api.downgrade(empty_url, "0001")
    insp = inspect(make_engine(empty_url))
    assert "users" not in insp.get_table_names() and "rerun_requests" not in insp.get_table_names()
    assert "output_version" not in {c["name"] for c in insp.get_columns("shots")}
    uniques = {u["name"] for u in insp.get_unique_constraints("shots")}
    assert "uq_shots_item_id_index" in uniques  # the batch copy on SQLite keeps constraints
    with make_engine(empty_url).connect() as c:
        assert c.execute(text("SELECT count(*) FROM shots")).scalar_one() == 1
        assert c.execute(text("SELECT count(*) FROM stage_results")).scalar_one() == 1


def test_users_are_unique_and_store_only_salted_hashes(catalog_url):
    with session_scope(catalog_url) as s:
        ana = create_user(s, "ana", "admin", "correct horse")
        assert ana.role is UserRole.ADMIN and ana.created_at.tzinfo is not None
        assert "correct horse" not in ana.password_hash and ana.password_hash.startswith("scrypt$")
        with pytest.raises(UserError, match="already exists"):
            create_user(s, "ana", "reviewer", "another pass")
        with pytest.raises(UserError, match="at least 8"):
            create_user(s, "ben", "reviewer", "short")
        with pytest.raises(UserError, match="invalid user name"):
            create_user(s, "bad name;", "reviewer", "long enough")
    with pytest.raises(IntegrityError):  # the database enforces it too
        with session_scope(catalog_url) as s:
            s.add(User(name="ana", role=UserRole.REVIEWER, password_hash="x"))
    with session_scope(catalog_url) as s:
        assert authenticate(s, "ana", "wrong") is None and authenticate(s, "nobody", "x") is None
        user = authenticate(s, "ana", "correct horse")
        assert user is not None and user.last_login_at is not None
        set_password(s, "ana", "new password")
        assert verify_password("new password", user.password_hash)
        assert authenticate(s, "ana", "correct horse") is None
    assert not verify_password("x", "not$a$hash") and not verify_password("x", "")


def test_decisions_are_audited_and_supersede_pending_reruns(catalog_url):
    with session_scope(catalog_url) as s:
        item = _film(s)
        a, b = (sh.id for sh in item.shots)
        item_id = item.id
    with session_scope(catalog_url) as s:
        req = request_rerun(s, a, "ana", {"engines": {"colorize": "welsh"}}, expected_version=1,
                            note="too warm")
        assert req.status is RerunStatus.PENDING and req.review.note == "too warm"
        assert s.get(Shot, a).status is ShotStatus.RERUN_REQUESTED
        with pytest.raises(ReviewConflict):
            review_shot(s, a, "ben", "approve", expected_version=1)
    with session_scope(catalog_url) as s:
        review_shot(s, a, "ben", "approve", expected_version=2)
        assert s.get(RerunRequest, req.id).status is RerunStatus.CANCELLED
        with pytest.raises(ValueError, match="needs a note"):
            review_shot(s, b, "ben", "reject", expected_version=None, note="  ")
        review_shot(s, b, "ben", "reject", expected_version=None, note="banding")
        assert delivery_blockers(s, item_id) == [(1, "rejected")]
    with session_scope(catalog_url) as s:
        log = audit_log(s, item_id=item_id)
        assert [(e.agent, e.detail["decision"]) for e in log] == [
            ("ben", "reject"), ("ben", "approve"), ("ana", "rerun")]
        assert log[1].detail["cancelled_requests"] == [req.id]
        assert log[2].detail["params"] == {"engines": {"colorize": "welsh"}}
        assert [e.agent for e in audit_log(s, actor="ana")] == ["ana"]
        assert all(e.created_at.tzinfo is not None for e in log)


def test_rerun_request_survives_its_run_being_deleted(catalog_url):
    with session_scope(catalog_url) as s:
        item = _film(s, 1)
        run = Run(collection=item.collection, reel_version="0")
        s.add(run)
        s.flush()
        req = request_rerun(s, item.shots[0].id, "ana", {"engines": {"harmonize": "none"}},
                            expected_version=None)
        req.picked_up_run_id = run.id
        req_id, run_id = req.id, run.id
    with session_scope(catalog_url) as s:
        s.delete(s.get(Run, run_id))
    with session_scope(catalog_url) as s:
        assert s.get(RerunRequest, req_id).picked_up_run_id is None
        assert s.scalars(select(Event).where(Event.event_type == "quality review")).all()


@pytest.mark.parametrize("params, message", [
    ({}, "at least one change"),
    ({"colour": "red"}, "unknown re-run parameter"),
    ({"reference": "relative.png"}, "absolute path"),
    ({"engines": {"qc": "x"}}, "unknown stage"),
    ({"palette": {"from_reference": "/a.png", "k": 40}}, "2..12"),
    ({"edit": {"region": {"box": [0.5, 0, 0.2, 1]}, "target_rgb": "#000000"}}, "x0 < x1"),
    ({"edit": {"region": {"labels": [1]}, "target_rgb": "blue"}}, "#rrggbb"),
    ({"edit": {"region": {"labels": [1]}, "target_rgb": "#0000ff", "strength": 0}}, "strength"),
])
def test_rerun_params_are_validated(params, message):
    with pytest.raises(RerunParamsError, match=message):
        validate_rerun_params(params)


@pytest.mark.parametrize("module", ["reel.db.users", "reel.db.reviews"])
def test_docstring_examples_of_review_modules(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
