"""The collection queue (flows/queue.py), `reel queue` and the artifact builders: no Prefect run."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace as NS

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.db import models as m
from reel.db.api import ensure_schema
from reel.db.session import session_scope


def _catalog(s, collections=("alpha", "beta", "gamma")) -> dict[str, int]:
    """Collections with one item and two shots each; returns collection → first shot id."""
    ensure_schema(s.database_url)
    shots = {}
    with session_scope(s.database_url) as db:
        for name in collections:
            col = m.Collection(name=name)
            item = m.Item(collection=col, name=f"{name}-film", source_path=f"/nowhere/{name}.mkv")
            db.add_all([col, item])
            db.flush()
            sh = [m.Shot(item_id=item.id, index=i, start_frame=10 * i, stop_frame=10 * i + 10)
                  for i in range(2)]
            db.add_all(sh)
            db.flush()
            shots[name] = sh[0].id
    return shots


def test_queue_order_claim_cancel_finish(reel_home):
    from reel.flows import queue as q

    _catalog(reel_home)
    a = q.add(reel_home, "alpha", priority=0, requested_by="ana")
    b = q.add(reel_home, "beta", priority=5, requested_by="bo")
    c = q.add(reel_home, "gamma", priority=5, requested_by="cy")
    assert (a.status, a.priority, a.requested_by) == ("queued", 0, "ana")
    # open entries in run order: priority desc, then first come first served
    assert [v.collection for v in q.list_entries(reel_home)] == ["beta", "gamma", "alpha"]

    with pytest.raises(q.QueueError, match="already queued"):
        q.add(reel_home, "beta", requested_by="x")
    with pytest.raises(q.QueueError, match="no collection"):
        q.add(reel_home, "nope", requested_by="x")
    with pytest.raises(q.QueueError, match="no item"):
        q.add(reel_home, "alpha", requested_by="x", items=["ghost"])

    assert q.cancel(reel_home, c.id, by="cy").status == "cancelled"
    first = q.claim_next(reel_home, flow_run_id="fr-1")
    assert (first.id, first.status, first.params["nightly_flow_run_id"]) == (b.id, "running", "fr-1")
    assert first.started_at is not None
    with pytest.raises(q.QueueError, match="only queued"):
        q.cancel(reel_home, b.id)
    done = q.finish(reel_home, b.id, "done", run_id=None)
    assert done.status == "done" and done.finished_at is not None
    second = q.claim_next(reel_home)
    assert second.id == a.id
    failed = q.finish(reel_home, a.id, "failed", error="boom")
    assert (failed.status, failed.error) == ("failed", "boom")
    assert q.claim_next(reel_home) is None
    assert q.list_entries(reel_home) == []
    assert {v.status for v in q.list_entries(reel_home, statuses=None)} == {"done", "failed",
                                                                          "cancelled"}
    # a finished collection can be queued again
    assert q.add(reel_home, "beta", requested_by="bo").status == "queued"


def test_requeue_stale_and_reruns(reel_home):
    from reel.flows import queue as q

    shots = _catalog(reel_home)
    e = q.add(reel_home, "alpha", requested_by="ana", items=["alpha-film"])
    assert e.items == ["alpha-film"]
    q.claim_next(reel_home)
    assert q.requeue_stale(reel_home, older_than=timedelta(hours=1)) == []
    with session_scope(reel_home.database_url) as db:
        db.get(m.QueueEntry, e.id).started_at = m.utcnow() - timedelta(hours=3)
    assert q.requeue_stale(reel_home, older_than=timedelta(hours=1)) == [e.id]
    assert q.list_entries(reel_home)[0].status == "queued"

    # shots sent back by reviewers: beta (pending) counts, gamma (done) does not
    with session_scope(reel_home.database_url) as db:
        db.add(m.RerunRequest(shot_id=shots["beta"], requested_by="rev",
                              params={"engines": {"colorize": "gray"}}))
        db.add(m.RerunRequest(shot_id=shots["gamma"], requested_by="rev",
                              params={"engines": {"colorize": "gray"}},
                              status=m.RerunStatus.DONE))
        db.add(m.RerunRequest(shot_id=shots["alpha"], requested_by="rev",
                              params={"engines": {"colorize": "gray"}}))
    assert q.collections_with_pending_reruns(reel_home) == {"alpha": ["alpha-film"],
                                                            "beta": ["beta-film"]}
    added = q.enqueue_reruns(reel_home)
    # alpha is queued already (its run picks the request up); beta gets an entry of its own
    assert [(v.collection, v.requested_by, v.items, v.params["reason"]) for v in added] == [
        ("beta", q.RERUN_REQUESTER, ["beta-film"], "rerun")]
    assert q.enqueue_reruns(reel_home) == []


def test_queue_cli(reel_home):
    from reel.flows.cli import app

    _catalog(reel_home)
    runner = CliRunner()
    r = runner.invoke(app, ["queue", "add", "alpha", "--priority", "3", "--by", "ana"])
    assert r.exit_code == 0, r.output
    assert "queued alpha" in r.output
    r = runner.invoke(app, ["queue", "add", "beta"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["queue", "add", "nope"])
    assert r.exit_code == 1 and "no collection named 'nope'" in r.output
    r = runner.invoke(app, ["queue", "list"])
    assert r.exit_code == 0, r.output
    assert r.output.index("alpha") < r.output.index("beta") and "ana" in r.output
    with session_scope(reel_home.database_url) as db:
        beta_id = db.scalar(select(m.QueueEntry.id).join(m.Collection)
                            .where(m.Collection.name == "beta"))
    r = runner.invoke(app, ["queue", "cancel", str(beta_id)])
    assert r.exit_code == 0 and "cancelled" in r.output
    r = runner.invoke(app, ["queue", "cancel", str(beta_id)])
    assert r.exit_code == 1 and "only queued" in r.output
    r = runner.invoke(app, ["queue", "list"])
    assert "beta" not in r.output
    r = runner.invoke(app, ["queue", "list", "--all"])
    assert "beta" in r.output and "cancelled" in r.output
    assert runner.invoke(app, ["queue", "--help"]).exit_code == 0
    r = runner.invoke(app, ["deploy", "--help"])
    assert r.exit_code == 0 and "--cron" in r.output and "--pool" in r.output


def test_artifact_builders():
    from reel.flows.artifacts import (artifact_key, item_summary_markdown, mlflow_ui_link,
                                      nightly_markdown, shot_rows)

    shots = [NS(id=11, index=1, start=24, stop=60), NS(id=10, index=0, start=0, stop=24),
             NS(id=12, index=2, start=60, stop=70)]
    outcomes = [NS(shot_id=10, status="done", flags=[], error=None,
                   metrics={"psnr_db": 31.23456, "colorfulness_mean": 20.0, "warp_error_ab": 3.0,
                            "cdc": 0.01, "colorize_confidence": 0.8}),
                NS(shot_id=11, status="flagged", flags=["high_cdc"], error=None,
                   metrics={"psnr_db": 27.0, "cdc": 0.09, "warp_error_ab": float("nan")})]
    rows = shot_rows(shots, outcomes)
    assert [r["shot"] for r in rows] == [0, 1, 2]
    assert rows[0]["psnr_db"] == 31.2346 and rows[0]["frames"] == "0-24" and rows[0]["flags"] == ""
    assert rows[1]["warp_error_ab"] is None and rows[1]["flags"] == "high_cdc"
    assert rows[2]["status"] == "not run" and rows[2]["n_frames"] == 10
    md = item_summary_markdown(collection="Bikes", item="bikes", catalog_run_id=3, rows=rows,
                               tracking_uri="http://mlflow:5000", experiment_id="2",
                               mlflow_run_id="abc", shots_table_key="reel-bikes-bikes-shots")
    assert "http://mlflow:5000/#/experiments/2/runs/abc" in md
    assert "| cdc | 0.05 | 0.09 (shot 1) |" in md  # worst = highest for error metrics
    assert "| psnr_db | 29.12 | 27 (shot 1) |" in md   # worst = lowest for quality metrics
    assert "high_cdc ×1" in md and "1 done, 1 flagged, 1 not run" in md
    assert "mlflow ui" not in md
    md2 = item_summary_markdown(collection="c", item="i", catalog_run_id=1, rows=[],
                                tracking_uri="sqlite:////x/mlflow.db", experiment_id=None,
                                mlflow_run_id=None)
    assert "mlflow ui --backend-store-uri sqlite:////x/mlflow.db" in md2
    assert mlflow_ui_link("sqlite:///a.db", "1", None) == "http://127.0.0.1:5000/#/experiments/1"
    key = artifact_key("A Very/Odd_Name", "x" * 200, "summary")
    assert key.endswith("-summary") and len(key) <= 100 and key == key.lower()
    assert set(key) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    md3 = nightly_markdown([NS(id=1, collection="a", status="failed", priority=2,
                               requested_by="ana", run_id=None, error="x|y\nz")])
    assert "| 1 | a | 2 | ana | failed | – | x/y z |" in md3
