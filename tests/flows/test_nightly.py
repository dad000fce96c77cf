"""The nightly flow and its deployment, against the session's Prefect test server.

- the deployment is registered with `reel.flows.deploy.register` (cron + time zone, process work
  pool created on the fly) and run once through a real ProcessWorker started in the test (the
  flow run executes in a subprocess, like production);
- the queue is processed in priority order; a broken collection fails alone;
- shots sent back by reviewers are processed without being queued;
- each restored item has its Prefect artifacts (shot table + Markdown summary);
- the CLI progress reporter sees the queue, item and shot events.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from sqlalchemy import select

from reel.db import models as m
from reel.db.session import session_scope

W, H, N = 96, 64, 12  # two 12-frame shots


def make_film(folder: Path, name: str = "tiny") -> tuple[Path, Path]:
    """A 24-frame gray FFV1 film with two scenes (a cut at 12) and one colour still per scene."""
    from reel.tasks.colorspace import rgb_to_gray

    folder.mkdir(parents=True, exist_ok=True)
    scenes = []
    for img in (data.astronaut(), data.coffee()):
        big = cv2.resize(img, (W + 2 * N, H), interpolation=cv2.INTER_AREA)
        scenes.append([big[:, 2 * i:2 * i + W].copy() for i in range(N)])
    refs = folder / "refs"
    refs.mkdir(exist_ok=True)
    for k, sc in enumerate(scenes):
        cv2.imwrite(str(refs / f"still{k}.png"), cv2.cvtColor(sc[N // 2], cv2.COLOR_RGB2BGR))
    films = folder / "films"
    films.mkdir(exist_ok=True)
    film = films / f"{name}.mkv"
    frames = [rgb_to_gray(f) for sc in scenes for f in sc]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{W}x{H}", "-framerate", "24", "-i", "pipe:", "-c:v", "ffv1",
                    "-g", "1", str(film)],
                   input=b"".join(f.tobytes() for f in frames), check=True)
    return film, refs


def _entries(s) -> dict[str, m.QueueEntry]:
    with session_scope(s.database_url) as db:
        rows = db.scalars(select(m.QueueEntry).order_by(m.QueueEntry.id)).all()
        for r in rows:
            db.expunge(r)
        names = {r.id: db.get(m.Collection, r.collection_id).name for r in rows}
    return {names[r.id]: r for r in rows}


async def _work_one(pool: str, flow_run_id, timeout_s: float = 480.0):
    """Start a process worker on ``pool``, let it submit the scheduled run, wait for the end."""
    from prefect.client.orchestration import get_client
    from prefect.workers.process import ProcessWorker

    async with ProcessWorker(work_pool_name=pool, prefetch_seconds=30) as worker:
        t0 = time.monotonic()
        while True:
            await worker.get_and_submit_flow_runs()
            async with get_client() as client:
                fr = await client.read_flow_run(flow_run_id)
            if fr.state is not None and fr.state.is_final():
                return fr
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"flow run still {fr.state.type if fr.state else None}")
            await asyncio.sleep(1.0)


async def _artifacts(keys: list[str]):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))


async def _deployment(name: str):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_deployment_by_name(name)


@pytest.mark.slow
def test_nightly_deployment_runs_queue_in_priority_order(reel_home, prefect_harness, tmp_path,
                                                         monkeypatch):
    import json

    from prefect.deployments import run_deployment

    from reel.flows import queue as q
    from reel.flows.artifacts import artifact_key
    from reel.flows.deploy import register
    from reel.flows.ingest import ingest_path

    _cheap_engines(monkeypatch)
    film, refs = make_film(tmp_path / "src")
    ingest_path(reel_home, film, "tiny", references_dir=refs)
    broken = tmp_path / "broken" / "broken.mkv"
    broken.parent.mkdir()
    broken.write_bytes(film.read_bytes())
    ingest_path(reel_home, broken, "broken")
    with open(broken, "ab") as fh:  # changed after ingest: its fixity check fails the run
        fh.write(b"bit rot")
    q.add(reel_home, "tiny", priority=1, requested_by="test")
    q.add(reel_home, "broken", priority=5, requested_by="test")

    res = register(cron="30 1 * * *", timezone="Europe/Berlin", pool="reel-test-pool")
    assert res.pool_created and res.nightly == "nightly/reel-nightly"
    assert res.restore == "restore-collection/reel-restore"
    dep = asyncio.run(_deployment(res.nightly))
    assert dep.work_pool_name == "reel-test-pool" and dep.entrypoint == "reel.flows.nightly.nightly"
    assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [
        ("30 1 * * *", "Europe/Berlin")]
    # registering again updates in place (new cron), and finds the pool
    res2 = register(cron="0 2 * * *", timezone="UTC", pool="reel-test-pool")
    assert not res2.pool_created and res2.nightly_id == res.nightly_id
    dep = asyncio.run(_deployment(res.nightly))
    assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [("0 2 * * *", "UTC")]

    flow_run = run_deployment(res.nightly, timeout=0)
    fr = asyncio.run(_work_one("reel-test-pool", flow_run.id))
    # one collection failed, so the nightly run is Failed, but only after processing both
    assert fr.state.is_failed(), fr.state
    assert "1 of 2 queue entries failed: broken" in fr.state.message

    e = _entries(reel_home)
    assert e["broken"].status == m.QueueStatus.FAILED and "fixity" in e["broken"].error
    assert e["tiny"].status == m.QueueStatus.DONE and e["tiny"].error is None
    assert e["broken"].started_at < e["tiny"].started_at  # priority 5 before priority 1
    assert e["tiny"].run_id is not None and e["broken"].run_id is not None
    with session_scope(reel_home.database_url) as db:
        run = db.get(m.Run, e["tiny"].run_id)
        assert run.status == m.RunStatus.COMPLETED
        item = db.scalar(select(m.Item).where(m.Item.name == "tiny"))
        assert item.status == m.ItemStatus.DELIVERED
        delivered = db.scalars(select(m.Deliverable).where(m.Deliverable.item_id == item.id,
                                                           m.Deliverable.run_id == run.id)).all()
        kinds = {d.kind.value for d in delivered}
        assert {"master", "access"} <= kinds and all(Path(d.path).is_file() for d in delivered)
        shots = sorted(item.shots, key=lambda x: x.index)
        mlflow_run_id = run.mlflow_run_id

    # the restore flow's artifacts: a row per shot with metrics, a summary with MLflow links
    table_key, summary_key = artifact_key("tiny", "tiny", "shots"), artifact_key("tiny", "tiny", "summary")
    arts = {a.key: a for a in asyncio.run(_artifacts([table_key, summary_key, "reel-nightly"]))}
    assert set(arts) == {table_key, summary_key, "reel-nightly"}
    assert arts[table_key].type == "table"
    rows = arts[table_key].data if isinstance(arts[table_key].data, list) else json.loads(arts[table_key].data)
    assert [r["shot"] for r in rows] == [s.index for s in shots] and len(rows) == len(shots)
    assert {r["status"] for r in rows} <= {"done", "flagged"}
    assert all(r["colorfulness_mean"] is not None and r["warp_error_ab"] is not None for r in rows)
    assert all(r["psnr_db"] is None for r in rows)  # no ground truth in this collection
    md = arts[summary_key].data
    assert mlflow_run_id in md and reel_home.mlflow_tracking_uri in md and "#/experiments/" in md
    assert "| broken |" in arts["reel-nightly"].data and "| tiny |" in arts["reel-nightly"].data


def _cheap_engines(monkeypatch) -> None:
    """Fast classical engines (these tests are about orchestration, not image quality); set in
    the environment so the worker's flow-run subprocess uses them too."""
    monkeypatch.setenv("REEL_ENGINES__COLORIZE", "reinhard-global")
    monkeypatch.setenv("REEL_ENGINES__REFERENCES", "luma-layout")
    monkeypatch.setenv("REEL_ENGINES__DEFLICKER", "none")
    from reel.config import reset_settings

    reset_settings()


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name.startswith(("start_", "item_", "shot_", "collection_")):
            return lambda *a: self.calls.append((name, *a))
        raise AttributeError(name)


@pytest.mark.slow
def test_nightly_processes_reviewer_reruns_with_progress(reel_home, prefect_harness, tmp_path,
                                                         monkeypatch):
    """Nothing queued, but a reviewer sent a shot back: the nightly run restores that item
    (the request gets output version 2) and the CLI reporter sees queue, item and shot events."""
    from reel.flows import progress
    from reel.flows import queue as q
    from reel.flows.ingest import ingest_path
    from reel.flows.nightly import nightly

    _cheap_engines(monkeypatch)
    film, refs = make_film(tmp_path / "src", name="reel2")
    ingest_path(reel_home, film, "second", references_dir=refs)
    assert nightly()["processed"] == 0  # nothing queued, nothing sent back: nothing to do

    # the item's shots as detection leaves them, and a reviewer's request on the first one
    with session_scope(reel_home.database_url) as db:
        item = db.scalar(select(m.Item).where(m.Item.name == "reel2"))
        shots = [m.Shot(item_id=item.id, index=i, start_frame=i * N, stop_frame=(i + 1) * N)
                 for i in range(2)]
        db.add_all(shots)
        db.flush()
        db.add(m.RerunRequest(shot_id=shots[0].id, requested_by="reviewer",
                              params={"engines": {"colorize": "gray"}}))
        shot_id = shots[0].id
    # a stage result a killed run never collected (no manifest), two hours old: never trusted,
    # so the nightly run prunes it from the stage cache afterwards
    import os
    import time

    from reel.flows import cache

    orphan = cache.results_dir(reel_home) / ("f" * 64)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"never collected")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    rec = _Recorder()
    with progress.use(rec):
        summary = nightly()
    assert summary["processed"] == summary["done"] == 1
    assert not orphan.exists() and summary["cache_pruned"]["removed"] >= 1
    assert summary["cache_pruned"]["kept"] > 0  # this run's own entries stay
    entry = summary["entries"][0]
    assert entry["requested_by"] == q.RERUN_REQUESTER and entry["params"]["items"] == ["reel2"]
    with session_scope(reel_home.database_url) as db:
        req = db.scalar(select(m.RerunRequest).where(m.RerunRequest.shot_id == shot_id))
        assert req.status == m.RerunStatus.DONE and req.output_version == 2
        assert db.get(m.Shot, shot_id).output_version == 2
        assert db.scalar(select(m.Item).where(m.Item.name == "reel2")).status == \
            m.ItemStatus.DELIVERED
    assert q.collections_with_pending_reruns(reel_home) == {}

    names = [c[0] for c in rec.calls]
    assert names[:3] == ["start_collections", "start_collection", "start_items"]
    assert rec.calls[0] == ("start_collections", 1) and rec.calls[1] == ("start_collection", "second")
    assert ("start_shots", "reel2", 2) in rec.calls
    assert sorted(c[2] for c in rec.calls if c[0] == "shot_done") == [0, 1]
    assert ("item_done", "reel2", "delivered") in rec.calls
    assert rec.calls[-1] == ("collection_done", "second", "done")


def test_queue_run_cli_reports_a_failing_collection(reel_home, prefect_harness, tmp_path):
    """`reel queue run`: the queue processed in this process; a broken film fails its entry,
    the command exits 3 and says why; an empty queue is a no-op."""
    from typer.testing import CliRunner

    from reel.flows.cli import app
    from reel.flows.ingest import ingest_path

    film = tmp_path / "films" / "gone.mkv"
    film.parent.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x48:rate=24:duration=0.5", "-c:v", "ffv1", str(film)],
                   check=True)
    ingest_path(reel_home, film, "gone")
    film.unlink()  # the original disappeared after ingest
    runner = CliRunner()
    assert runner.invoke(app, ["queue", "add", "gone", "--by", "ana"]).exit_code == 0
    r = runner.invoke(app, ["queue", "run"])
    assert r.exit_code == 3, r.output
    text = " ".join(r.output.split())
    assert "1 entries: 0 done, 1 failed" in text and "gone: failed" in text
    e = _entries(reel_home)["gone"]
    assert e.status == m.QueueStatus.FAILED and "gone" in e.error and e.run_id is not None
    r = runner.invoke(app, ["queue", "run"])
    assert r.exit_code == 0 and "0 entries: 0 done, 0 failed" in " ".join(r.output.split())
