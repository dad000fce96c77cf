"""Runners: a collection on a real `dask scheduler` + 2 `dask worker` processes gives the same
deliverables as the thread pool; GPU slots are strict and exclusive (flows/runners.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _deliverables(s) -> dict[str, str]:
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        last = db.scalar(select(func.max(m.Deliverable.run_id)))
        return {d.kind.value: d.sha256 for d in db.scalars(
            select(m.Deliverable).where(m.Deliverable.run_id == last))
            if d.kind.value not in ("sidecar", "premis")}


def _stage_rows(s) -> list[tuple[str, str | None, str | None]]:
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        return [(r.stage, r.device, r.cache_key) for r in db.scalars(
            select(m.StageResult).where(m.StageResult.shot_id.is_not(None)))]


def _dask_exe() -> str:
    exe = Path(sys.executable).with_name("dask")
    return str(exe) if exe.exists() else shutil.which("dask") or "dask"


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` + 2 `dask worker` processes (1 thread each) on 127.0.0.1."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = [open(tmp_path / f"dask-{i}.log", "w") for i in range(3)]
    procs = [subprocess.Popen([_dask_exe(), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env, stdout=logs[0],
                              stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        from distributed import Client

        for i in (1, 2):
            procs.append(subprocess.Popen(
                [_dask_exe(), "worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
                 "--local-directory", str(tmp_path / f"w{i}")],
                env=env, stdout=logs[i], stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                    workers = client.scheduler_info()["workers"]
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "dask-0.log").read_text()
                time.sleep(0.5)
        assert len(workers) == 2
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for fh in logs:
            fh.close()


@pytest.mark.slow
def test_dask_cluster_matches_thread_pool(prefect_harness, dask_cluster, tmp_path, monkeypatch):
    from reel.config import configure, reset_settings
    from reel.flows.benchmarks.scale import synthetic_film
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection

    film, refs = synthetic_film(tmp_path / "src", n_shots=3, frames_per_shot=16)
    results = {}
    for runner in ("threads", "dask"):
        home = tmp_path / f"home-{runner}"
        monkeypatch.setenv("REEL_HOME", str(home))
        reset_settings()
        s = configure(runner=runner, dask_address=dask_cluster if runner == "dask" else None)
        s.ensure_dirs()
        ingest_path(s, film, "dasktest", references_dir=refs)
        assert restore_collection("dasktest") == {film.stem: "delivered"}
        results[runner] = _deliverables(s)
        rows = _stage_rows(s)
        assert len(rows) == 3 * 5 and all(dev == "cpu" and key for _, dev, key in rows)
    reset_settings()
    assert {"master", "mezzanine", "access", "framemd5"} <= set(results["threads"])
    assert results["dask"] == results["threads"]


def test_gpu_slots_are_exclusive(prefect_harness):
    """Two CUDA-device stage bodies never overlap under a 1-slot `gpu` limit; CPU takes none."""
    from reel.flows import runners

    assert runners.create_gpu_limit(0) == 0  # no GPU: no limit created
    assert runners.create_gpu_limit(1) == 1
    assert runners.create_gpu_limit(1) == 1  # idempotent (updates the existing limit)
    inside, overlaps, lock = [0], [0], threading.Lock()

    def body(device: str) -> None:
        with runners.gpu_slot(device):
            with lock:
                inside[0] += 1
                overlaps[0] = max(overlaps[0], inside[0])
            time.sleep(0.3)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=body, args=("cuda",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 1
    # CPU work takes no slot, so it overlaps freely
    inside[0] = overlaps[0] = 0
    threads = [threading.Thread(target=body, args=("cpu",)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] > 1


def test_gpu_stage_task_picks_device_and_records_it():
    """A GPU-capable engine's task body runs on CPU here (no CUDA) and passes device=."""
    from reel.flows import runners
    from reel.registry import Engine

    class Learned(Engine):
        name, version, uses_gpu = "learned-demo", "1", True

        def __init__(self, device: str = "cpu"):
            super().__init__()

    class Classical(Engine):
        name, version = "classical-demo", "1"

    seen = {}

    class Result:
        pass

    def body(x, engine="learned-demo", **params):
        seen.update(params)
        return Result()

    from prefect import task

    base = task(name="demo")(body)
    assert runners.gpu_stage_task(base, Classical) is base
    wrapped = runners.gpu_stage_task(base, Learned)
    res = wrapped.fn(1)
    assert seen == {"device": "cpu"} and runners.result_device(res) == "cpu"
    assert runners.choose_device(False) == "cpu"


def test_run_options_are_checked(reel_home):
    from typer.testing import CliRunner

    from reel.flows.cli import app

    res = CliRunner().invoke(app, ["run", "any", "--runner", "bogus"])
    assert res.exit_code == 1 and "unknown runner" in res.output
    res = CliRunner().invoke(app, ["run", "any", "--dask-address", "localhost:8786"])
    assert res.exit_code == 1 and "tcp://HOST:8786" in res.output


def test_local_cluster_workers_use_one_opencv_thread(reel_home, monkeypatch):
    """The local cluster's workers run OpenCV on one thread (the nanny's OMP_NUM_THREADS=1 does
    not reach OpenCV): one worker = one core, so throughput follows the worker count."""
    import types

    from distributed import Client

    # spawned worker processes re-run the parent's __main__ file; inside pytest an earlier
    # test (the Streamlit AppTest of the dashboard) can leave that pointing at dashboards/app.py
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))

    from reel.config import configure
    from reel.flows import runners

    def opencv_threads() -> int:
        import cv2

        return cv2.getNumThreads()

    s = configure(runner="dask", max_workers=2)
    with runners.collection_runner(s) as make_runner:
        address = make_runner().address
        with Client(address) as client:
            per_worker = client.run(opencv_threads)
    assert len(per_worker) == 2 and set(per_worker.values()) == {1}
