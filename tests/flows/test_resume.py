"""Resume after a crash: SIGKILL `reel run` half-way, run again, only unfinished shots run and
every deliverable is byte-identical to an uninterrupted run (flows/cache.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

N_SHOTS = 6


def _deliverables(s) -> dict[str, str]:
    """kind → sha256 of the latest run's deliverables (the provenance sidecar and PREMIS
    list the run's own events and dates, so they differ between runs by design)."""
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        last = db.scalar(select(func.max(m.Deliverable.run_id)))
        return {d.kind.value: d.sha256 for d in db.scalars(
            select(m.Deliverable).where(m.Deliverable.run_id == last))
            if d.kind.value not in ("sidecar", "premis")}


def _cli_env(home: Path) -> dict[str, str]:
    from prefect.settings import get_current_settings

    env = dict(os.environ)
    env.update(REEL_HOME=str(home), PREFECT_API_URL=str(get_current_settings().api.url),
               PYTHONUNBUFFERED="1")
    env.pop("REEL_DATABASE_URL", None)
    env.pop("REEL_MLFLOW_TRACKING_URI", None)
    return env


def _shot_rows(s) -> dict[int, dict]:
    """shot index → {status, stages recorded (stage → list of (run, cache_hit, key, device))}."""
    from reel.db import models as m
    from reel.db.session import session_scope

    out: dict[int, dict] = {}
    with session_scope(s.database_url) as db:
        shots = {sh.id: sh for sh in db.scalars(select(m.Shot))}
        for sh in shots.values():
            out[sh.index] = {"status": sh.status.value, "stages": {}}
        for ev in db.scalars(select(m.Event).where(m.Event.shot_id.is_not(None))):
            if "cache_key" not in (ev.detail or {}):
                continue
            out[shots[ev.shot_id].index]["stages"].setdefault(ev.event_type, []).append(
                (ev.run_id, ev.detail["cache_hit"], ev.detail["cache_key"], ev.detail["device"]))
    return out


@pytest.mark.slow
def test_sigkill_then_resume_reuses_finished_shots(prefect_harness, tmp_path, monkeypatch):
    from reel.config import Settings, reset_settings
    from reel.flows.benchmarks.scale import synthetic_film
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection

    film, refs = synthetic_film(tmp_path / "src", n_shots=N_SHOTS, frames_per_shot=12)

    # the uninterrupted run, in this process, in its own home
    ref_home = tmp_path / "home-ref"
    monkeypatch.setenv("REEL_HOME", str(ref_home))
    reset_settings()
    ref = Settings(home=ref_home)
    ref.ensure_dirs()
    ingest_path(ref, film, "resume", references_dir=refs)
    assert restore_collection("resume") == {film.stem: "delivered"}
    expected = _deliverables(ref)
    assert {"master", "mezzanine", "access", "framemd5"} <= set(expected)
    reset_settings()

    # the crashed run: `reel run` in its own process group, SIGKILLed once some shots finished
    home = tmp_path / "home"
    s = Settings(home=home)
    s.ensure_dirs()
    ingest_path(s, film, "resume", references_dir=refs)
    # one worker: shots finish in order, so the kill lands between finished and untouched shots
    cmd = [sys.executable, "-m", "reel.flows.cli", "run", "resume", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=_cli_env(home), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 900  # generous: CI machines can be heavily shared
    try:
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no shot finished in time"
            done = [i for i, r in _shot_rows(s).items() if r["status"] in ("done", "flagged")]
            if len(done) >= 2:
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = _shot_rows(s)
    finished = {i for i, r in killed.items() if r["status"] in ("done", "flagged")}
    untouched = {i for i, r in killed.items() if not r["stages"]}
    assert 2 <= len(finished) < N_SHOTS, killed
    assert untouched, "the kill came too late to test anything"

    # the resumed run
    res = subprocess.run(cmd, env=_cli_env(home), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    after = _shot_rows(s)
    resume_run = max(run for r in after.values() for rows in r["stages"].values()
                     for run, *_ in rows)
    for i, r in after.items():
        now = {st: rows[-1] for st, rows in r["stages"].items()}
        assert all(row[0] == resume_run for row in now.values()), (i, now)
        assert set(now) == {"segmentation", "references", "colorization", "harmonization", "qc"}
        assert all(row[3] == "cpu" and len(row[2]) == 64 for row in now.values())
        hits = {st: row[1] for st, row in now.items()}
        if i in finished:  # finished before the kill: every stage reused, same keys
            assert all(hits.values()), (i, hits)
            assert {st: rows[0][2] for st, rows in killed[i]["stages"].items()} == \
                {st: row[2] for st, row in now.items()}
        if i in untouched:  # never collected before the kill: every stage ran again
            assert not any(hits.values()), (i, hits)

    # byte-identical deliverables to the uninterrupted run
    assert _deliverables(s) == expected
