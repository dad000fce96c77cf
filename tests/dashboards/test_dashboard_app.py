"""The review dashboard headless (Streamlit AppTest): every page's content and every action,
checked against the catalog rows they write."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from dashboard_seed import PASSWORDS
from reel.dashboards import actions, data
from reel.db import models as m
from reel.db.reviews import record_review
from reel.db.session import session_scope

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")


def _app(user: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if user is not None:
        with session_scope_for_env() as db:
            u = db.scalar(select(m.User).where(m.User.name == user))
            at.session_state["user"] = actions.SessionUser(u.id, u.name, u.role.value)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def session_scope_for_env():
    from reel.config import get_settings

    return session_scope(get_settings().database_url)


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.title, *at.header, *at.subheader, *at.caption, *at.markdown,
                               *at.success, *at.error, *at.warning, *at.info)]
    return "\n".join(str(p) for p in parts)


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


# ------------------------------------------------------------------------------------------
# login
# ------------------------------------------------------------------------------------------


def test_nothing_is_shown_without_login_and_bad_passwords_are_refused(seeded):
    at = _app()
    _no_exception(at)
    assert [t.value for t in at.title] == ["reel review"]
    assert not at.dataframe and not at.image and not at.metric and not at.sidebar.button
    at.text_input(key="login-name").input("ana")
    at.text_input(key="login-password").input("not-her-password")
    at.button[0].click().run()
    assert "wrong password" in _texts(at)
    assert "user" not in at.session_state and not at.dataframe
    # an unknown user gets the same answer
    at.text_input(key="login-name").input("mallory")
    at.text_input(key="login-password").input(PASSWORDS["ana"])
    at.button[0].click().run()
    assert "wrong password" in _texts(at) and "user" not in at.session_state


def test_login_shows_collections_runs_progress_and_failures(seeded):
    at = _app()
    at.text_input(key="login-name").input("ana")
    at.text_input(key="login-password").input(PASSWORDS["ana"])
    at.button[0].click().run()
    _no_exception(at)
    assert at.session_state["user"].name == "ana"
    assert "Collections and runs" in [t.value for t in at.title]
    metrics = {mt.label: mt.value for mt in at.metric}
    assert metrics == {"items": "2", "shots": "3", "approved": "0", "flagged": "1"}
    # progress: 3 of 3 shots processed, none approved
    assert [p.value for p in at.get("progress")] == [100, 0]  # percent
    items, runs, fails = (d.value for d in at.dataframe)
    assert set(items["item"]) == {"reel-1", "reel-2"}
    assert list(runs["status"]) == ["partial"] and list(runs["shots done"]) == [3]
    reasons = " ".join(fails["reason"])
    assert "FixityError" in reasons and "sha256 mismatch" in reasons
    with session_scope(seeded.url) as db:
        assert db.scalar(select(m.User).where(m.User.name == "ana")).last_login_at is not None


def test_users_page_is_for_admins_only(seeded):
    at = _app("ana")
    assert "users" not in at.sidebar.radio(key="nav").options
    at = _app("ana", nav="users")  # a reviewer asking for it by URL gets the overview
    assert at.session_state["nav"] == "overview"
    at = _app("root", nav="users")
    _no_exception(at)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["ana", "root"] and "password_hash" not in table.columns


def test_logout_forgets_the_user(seeded):
    at = _app("ana")
    at.sidebar.button(key="logout").click().run()
    assert "user" not in at.session_state and [t.value for t in at.title] == ["reel review"]


# ------------------------------------------------------------------------------------------
# shot grid
# ------------------------------------------------------------------------------------------


def _open_buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.label.startswith("Open shot")]


def test_shot_grid_shows_thumbnails_badges_flags_and_filters(seeded):
    at = _app("ana", nav="item", item_id=seeded.item_id)
    _no_exception(at)
    assert "newsreels / reel-1" in [t.value for t in at.title]
    assert _open_buttons(at) == ["Open shot 0", "Open shot 1", "Open shot 2"]
    assert len(at.image) == 6  # before + after per shot
    assert "flagged: low_colorfulness" in _texts(at)
    assert "Delivery gate: 3 of 3 shots not approved" in _texts(at)
    badges = [e.value for e in at.markdown if "-badge[" in e.value]
    assert badges == [":orange-badge[flagged]", ":blue-badge[done]", ":blue-badge[done]"]

    at.multiselect(key="flt-status").set_value(["flagged"]).run()
    assert _open_buttons(at) == ["Open shot 0"]
    at.multiselect(key="flt-status").set_value([]).run()
    # metric threshold: colorfulness_mean is 5, 15, 25 for shots 0, 1, 2
    at.selectbox(key="flt-metric").set_value("colorfulness_mean").run()
    at.number_input(key="flt-min").set_value(10.0).run()
    assert _open_buttons(at) == ["Open shot 1", "Open shot 2"]
    at.number_input(key="flt-max").set_value(20.0).run()
    assert _open_buttons(at) == ["Open shot 1"]
    assert "1 of 3 shots shown" in _texts(at)
    at.checkbox(key="flt-flagged").check().run()
    assert _open_buttons(at) == []


def test_open_item_from_overview_then_shot_from_grid(seeded):
    at = _app("ana")
    at.button(key="open-item").click().run()
    assert at.session_state["nav"] == "item"
    at.button(key=f"open-{seeded.shot_ids[2]}").click().run()
    _no_exception(at)
    assert at.session_state["nav"] == "shot" and at.session_state["shot_id"] == seeded.shot_ids[2]
    assert "newsreels / reel-1 · shot 2" in [t.value for t in at.title]
    assert at.query_params["page"] in ("shot", ["shot"])
    assert at.query_params["shot"] in (str(seeded.shot_ids[2]), [str(seeded.shot_ids[2])])


# ------------------------------------------------------------------------------------------
# shot page
# ------------------------------------------------------------------------------------------


def test_shot_page_shows_comparison_curves_palette_references_and_segmentation(seeded):
    at = _app("ana", nav="shot", shot_id=seeded.shot_ids[0])
    _no_exception(at)
    text = _texts(at)
    # before/after, palette swatch, labelled segmentation, 2 references
    assert len(at.image) == 2 + 1 + 1 + 2
    assert "before (source)" in str([i.proto for i in at.image]) or "before" in text
    # per-frame curves from the Parquet file, colorfulness / warp error / CDC each plotted
    assert "per-frame values from qc_per_frame.parquet" in text
    charts = at.get("arrow_line_chart") or [e for e in at.get("vega_lite_chart")]
    assert len(charts) == 3
    assert "#0 · score 0.900 · still-0.png" in text and "#1 · score 0.400 · still-1.png" in text
    assert "regions 0–2 (ids for regional edits)" in str([i.proto for i in at.image])
    assert "flags: low_colorfulness" in text
    assert any("<div" in h.proto.body for h in at.get("html"))  # palette swatches from the catalog

    # shot 1 has no per-frame file: the page says what it shows instead
    at = _app("ana", nav="shot", shot_id=seeded.shot_ids[1])
    assert "no per-frame QC file" in _texts(at)
    metric_table = at.dataframe[0].value
    assert dict(zip(metric_table["metric"], metric_table["value"]))["colorfulness_mean"] == 15.0


def test_preview_clip_is_made_on_demand(seeded):
    at = _app("ana", nav="shot", shot_id=seeded.shot_ids[2])
    clip = Path(seeded.home) / "work" / "newsreels" / f"item-{seeded.item_id:05d}" / "shot-0002" / "preview.mp4"
    clip.unlink(missing_ok=True)
    assert not at.get("video")
    at.button(key="preview-1").click().run()
    _no_exception(at)
    assert clip.is_file() and clip.stat().st_size > 0
    assert len(at.get("video")) == 1
    from reel.tasks.media import probe

    info = probe(clip)
    assert info.video_codec == "h264" and info.n_frames == 12


# ------------------------------------------------------------------------------------------
# decisions
# ------------------------------------------------------------------------------------------


def test_approve_is_recorded_with_who_and_when(seeded):
    shot_id = seeded.shot_ids[1]
    at = _app("ana", nav="shot", shot_id=shot_id)
    at.button(key=f"approve-{shot_id}").click().run()
    _no_exception(at)
    assert "Approved by ana." in _texts(at)
    with session_scope(seeded.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.APPROVED and shot.version == 2
        (review,) = shot.reviews
        assert review.reviewer == "ana" and review.decision is m.ReviewDecision.APPROVE
        assert (m.utcnow() - review.created_at).total_seconds() < 120
        ev = db.scalars(select(m.Event).where(m.Event.shot_id == shot_id,
                                              m.Event.event_type == "quality review")).one()
        assert ev.agent == "ana" and ev.detail["decision"] == "approve"
    # the page shows the new state and the history
    assert at.button(key=f"approve-{shot_id}").disabled
    assert "approve" in list(at.dataframe[-1].value["what"])


def test_reject_needs_a_note(seeded):
    shot_id = seeded.shot_ids[0]
    at = _app("ana", nav="shot", shot_id=shot_id)
    at.button(key=f"reject-{shot_id}").click().run()
    assert "a rejection needs a note" in _texts(at)
    with session_scope(seeded.url) as db:
        assert db.get(m.Shot, shot_id).status is m.ShotStatus.FLAGGED and not db.get(m.Shot, shot_id).reviews
    at.text_input(key=f"reject-note-{shot_id}").input("sky is green")
    at.button(key=f"reject-{shot_id}").click().run()
    _no_exception(at)
    with session_scope(seeded.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.REJECTED
        assert [(r.reviewer, r.note) for r in shot.reviews] == [("ana", "sky is green")]


def test_a_decision_on_a_shot_changed_meanwhile_is_refused(seeded):
    shot_id = seeded.shot_ids[2]
    at = _app("ana", nav="shot", shot_id=shot_id)  # ana sees version 1
    with session_scope(seeded.url) as db:  # root rejects it first
        record_review(db, shot_id, "root", "reject", expected_version=1, note="flicker")
    at.button(key=f"approve-{shot_id}").click().run()
    _no_exception(at)
    assert "Not saved" in _texts(at) and "version 2" in _texts(at)
    with session_scope(seeded.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.REJECTED and [r.reviewer for r in shot.reviews] == ["root"]
    # the page now shows version 2: approving again works
    at.button(key=f"approve-{shot_id}").click().run()
    with session_scope(seeded.url) as db:
        assert db.get(m.Shot, shot_id).status is m.ShotStatus.APPROVED


def test_rerun_with_reference_palette_engine_and_regional_edit(seeded):
    shot_id = seeded.shot_ids[0]
    at = _app("ana", nav="shot", shot_id=shot_id)
    refs = at.selectbox(key=f"rr-ref-{shot_id}")
    choice = next(o for o in refs.options if "still-1.png" in o)
    refs.set_value(choice)
    pal = at.selectbox(key=f"rr-pal-{shot_id}")
    pal.set_value("palette of shot 2")
    at.checkbox(key=f"rr-eng-on-{shot_id}").check().run()
    at.selectbox(key=f"rr-eng-colorize-{shot_id}").set_value("welsh")
    at.checkbox(key=f"rr-edit-on-{shot_id}").check().run()
    labels = at.multiselect(key=f"rr-edit-labels-{shot_id}")
    assert labels.options == ["0", "1", "2"]
    labels.set_value([1])
    at.color_picker(key=f"rr-edit-color-{shot_id}").pick("#3366cc")
    at.slider(key=f"rr-edit-strength-{shot_id}").set_value(0.5)
    at.text_input(key=f"rr-note-{shot_id}").input("try the other still")
    at.button(key=f"rerun-{shot_id}").click().run()
    _no_exception(at)
    assert "Re-run request #1 saved" in _texts(at)
    with session_scope(seeded.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.RERUN_REQUESTED
        (req,) = shot.rerun_requests
        assert req.requested_by == "ana" and req.status is m.RerunStatus.PENDING
        assert req.params == {
            "reference": str(seeded.refs[1]),
            "palette": {"from_shot": seeded.shot_ids[2]},
            "engines": {"colorize": "welsh"},
            "edit": {"region": {"labels": [1]}, "target_rgb": "#3366cc", "strength": 0.5},
        }
        assert req.review.note == "try the other still"
    assert "Re-run request #1 by ana is pending" in _texts(at)


def test_rerun_with_an_uploaded_reference(seeded, tmp_path):
    shot_id = seeded.shot_ids[1]
    at = _app("ana", nav="shot", shot_id=shot_id)
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, :, 2] = 200
    ok, png = cv2.imencode(".png", img)
    at.get("file_uploader")[0].set_value(("blue sky.png", png.tobytes(), "image/png"))
    at.button(key=f"rr-upload-btn-{shot_id}").click().run()
    _no_exception(at)
    assert "added to the collection's library" in _texts(at)
    with session_scope(seeded.url) as db:
        ref = db.scalar(select(m.ReferenceImage).where(m.ReferenceImage.path.like("%blue_sky.png")))
        assert ref is not None and (ref.width, ref.height) == (30, 20)
        assert Path(ref.path).parent == Path(seeded.home) / "libraries" / "newsreels"
        ev = db.scalar(select(m.Event).where(m.Event.event_type == "reference upload"))
        assert ev.agent == "ana" and ev.detail["original_name"] == "blue sky.png"
    # the upload is now the chosen reference
    assert at.selectbox(key=f"rr-ref-{shot_id}").value.endswith("blue_sky.png")
    at.button(key=f"rerun-{shot_id}").click().run()
    with session_scope(seeded.url) as db:
        (req,) = db.get(m.Shot, shot_id).rerun_requests
        assert req.params == {"reference": ref.path}


def test_rerun_without_changes_is_refused(seeded):
    shot_id = seeded.shot_ids[1]
    at = _app("ana", nav="shot", shot_id=shot_id)
    at.button(key=f"rerun-{shot_id}").click().run()
    assert "at least one change" in _texts(at)
    with session_scope(seeded.url) as db:
        assert not db.get(m.Shot, shot_id).rerun_requests


def test_upload_rejects_files_that_are_not_images(seeded):
    user = actions.SessionUser(1, "ana", "reviewer")
    with pytest.raises(ValueError, match="not a readable image"):
        actions.save_reference_upload(seeded.url, seeded.home / "libraries", seeded.collection_id,
                                      "evil.png", b"<script>", user)
    with pytest.raises(ValueError, match="not an image file"):
        actions.save_reference_upload(seeded.url, seeded.home / "libraries", seeded.collection_id,
                                      "x.sh", b"#!/bin/sh", user)


# ------------------------------------------------------------------------------------------
# audit log
# ------------------------------------------------------------------------------------------


def test_audit_page_lists_who_did_what(seeded):
    with session_scope(seeded.url) as db:
        from reel.db.reviews import review_shot

        review_shot(db, seeded.shot_ids[0], "ana", "approve", expected_version=None)
        review_shot(db, seeded.shot_ids[1], "root", "reject", expected_version=None, note="too red")
    at = _app("root", nav="audit")
    _no_exception(at)
    table = at.dataframe[0].value
    assert list(table["who"]) == ["root", "ana"] and list(table["what"]) == ["reject", "approve"]
    assert list(table["note"])[0] == "too red"
    at.selectbox(key="audit-who").set_value("ana").run()
    assert list(at.dataframe[0].value["who"]) == ["ana"]


def test_filter_cards_and_versions_helpers(seeded):
    cards = data.shot_cards(seeded.url, seeded.home / "work", seeded.item_id)
    assert [c.after is not None for c in cards] == [True, True, True]
    assert data.metric_names(cards) == ["cdc", "colorfulness_mean", "luminance_psnr_db_min", "warp_error_ab"]
    assert [c.index for c in data.filter_cards(cards, metric="cdc", maximum=0.015)] == [0]


@pytest.mark.postgres
def test_review_round_trip_on_postgresql(seeded_pg):
    """Login, grid, shot page, approve and audit log over a PostgreSQL catalog."""
    at = _app()
    at.text_input(key="login-name").input("root")
    at.text_input(key="login-password").input(PASSWORDS["root"])
    at.button[0].click().run()
    _no_exception(at)
    assert {mt.label: mt.value for mt in at.metric}["shots"] == "3"
    at.button(key="open-item").click().run()
    _no_exception(at)
    assert _open_buttons(at) == ["Open shot 0", "Open shot 1", "Open shot 2"]
    shot_id = seeded_pg.shot_ids[0]
    at.button(key=f"open-{shot_id}").click().run()
    at.button(key=f"approve-{shot_id}").click().run()
    _no_exception(at)
    with session_scope(seeded_pg.url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.APPROVED and shot.reviews[0].reviewer == "root"
    at.sidebar.radio(key="nav").set_value("audit").run()
    _no_exception(at)
    assert list(at.dataframe[0].value["who"]) == ["root"]


def test_docstring_examples_of_dashboard_modules():
    import doctest

    for module in (actions, data):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_a_rerun_version_is_shown_beside_the_old_one(seeded):
    import shutil

    shot_id = seeded.shot_ids[0]
    v1 = Path(seeded.home) / "work" / "newsreels" / f"item-{seeded.item_id:05d}" / "shot-0000"
    v2 = v1 / "v2"
    v2.mkdir(exist_ok=True)
    for name in ("before.png", "after.png", "overlay.png", "labels.npz", "palette.png"):
        shutil.copy(v1 / name, v2 / name)
    with session_scope(seeded.url) as db:
        req = actions.rerun(seeded.url, shot_id, actions.SessionUser(1, "ana", "reviewer"), 1,
                            {"engines": {"colorize": "welsh"}})
        shot = db.get(m.Shot, shot_id)
        run2 = m.Run(collection_id=seeded.collection_id, reel_version="0.1.0", status=m.RunStatus.COMPLETED)
        db.add(run2)
        db.flush()
        db.add(m.StageResult(run_id=run2.id, item_id=seeded.item_id, shot_id=shot_id, stage="qc",
                             engine="reel-qc", engine_version="0", params_hash="", output_version=2,
                             output_path=str(v2 / "after.png"), status=m.StageStatus.DONE))
        db.add(m.Metric(run_id=run2.id, item_id=seeded.item_id, shot_id=shot_id,
                        name="colorfulness_mean", value=42.0))
        r = db.get(m.RerunRequest, req)
        r.status, r.output_version, r.picked_up_run_id = m.RerunStatus.DONE, 2, run2.id
        shot = db.get(m.Shot, shot_id)
        shot.output_version, shot.status = 2, m.ShotStatus.DONE
    at = _app("ana", nav="shot", shot_id=shot_id)
    _no_exception(at)
    text = _texts(at)
    assert "Versions" in text and "**v1**" in text and "**v2** (current)" in text
    assert "made for request #1 by ana: engines={'colorize': 'welsh'}" in text
    assert "colorfulness_mean 42" in text and "colorfulness_mean 5" in text
    assert "after (v2)" in str([i.proto for i in at.image])
    # the grid shows the current version's thumbnails and metrics
    cards = data.shot_cards(seeded.url, seeded.home / "work", seeded.item_id)
    assert cards[0].dir == v2 and cards[0].metrics == {"colorfulness_mean": 42.0}
    shutil.rmtree(v2)
