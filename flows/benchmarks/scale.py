"""``reel benchmark scale``: Dask speedup, peak memory vs film length, pipeline vs transcode.

Three measurements on collections built from the sample media (bikes: 6 shots, 250 frames):

1. **speedup**: the same 12-shot film (bikes twice, back to back) restored with a local Dask
   cluster of 1 and of 2 worker processes; speedup = wall(1) / wall(2). The shot stages are the
   only parallel part (probe, shot detection, reassembly and deliverables are serial), and Prefect
   + Dask start-up (workers import Prefect, ~1 s per task) is included, as a user would see it.
2. **memory**: peak PSS (flow process + all its children: Prefect server, Dask workers, ffmpeg)
   sampled every 0.1 s from /proc with psutil, for the film and for the same film repeated 10×;
   the ratio shows whether memory grows with film length (frames are streamed; it should not).
   These runs are separate from the timed ones: the sampler costs the run CPU time.
3. **overhead**: wall time of the full pipeline over a pure ffmpeg transcode of the same film to
   the same deliverables (FFV1 master, ProRes mezzanine, H.264 access copy, framemd5).

Every restore runs in a subprocess (``python -m reel.flows.cli run``) with its own REEL_HOME,
so the measurement includes start-up exactly as ``reel run`` has it.

Example
-------
>>> film, refs = synthetic_film(Path("/tmp/scale-doc"), n_shots=2, frames_per_shot=10)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The measurements: ``overhead`` (pipeline over a pure transcode), ``speedup`` (1 vs 2 Dask
#: workers), ``memory`` (peak RSS of the film repeated vs once).
MEASURES = ("overhead", "speedup", "memory")

COLUMNS = ("measure", "film", "runner", "workers", "frames", "shots", "wall_s", "peak_rss_mb",
           "peak_pss_mb", "cores_busy",
           "value", "target", "meets_target")


# -- films ------------------------------------------------------------------------------------

def _skimage_stills() -> list[np.ndarray]:
    from skimage import data

    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
             "hubble_deep_field", "colorwheel")
    return [np.ascontiguousarray(getattr(data, n)()[..., :3]) for n in names]


def synthetic_film(folder: str | os.PathLike, *, n_shots: int = 6, frames_per_shot: int = 16,
                   width_px: int = 160, height_px: int = 96, fps: str = "24000/1001",
                   step_px: int = 2) -> tuple[Path, Path]:
    """A gray FFV1 film of ``n_shots`` hard-cut shots (each a pan over a different colour
    still) and a folder of one colour reference still per shot.

    Returns ``(film path, references folder)``. Deterministic: same arguments, same bytes.

    Example
    -------
    >>> film, refs = synthetic_film("/tmp/scale-doc", n_shots=2, frames_per_shot=10)  # doctest: +SKIP
    >>> sorted(p.name for p in refs.iterdir())  # doctest: +SKIP
    ['still-00.png', 'still-01.png']
    """
    import cv2

    from reel.tasks.colorspace import rgb_to_gray

    folder = Path(folder)
    refs = folder / "refs"
    films = folder / "films"
    refs.mkdir(parents=True, exist_ok=True)
    films.mkdir(parents=True, exist_ok=True)
    stills = _skimage_stills()
    frames: list[np.ndarray] = []
    for i in range(n_shots):
        img = stills[i % len(stills)]
        if i >= len(stills):  # a repeated still: mirror it so the cut stays visible
            img = img[:, ::-1]
        img = cv2.resize(img, (width_px + step_px * frames_per_shot, height_px + 8),
                         interpolation=cv2.INTER_AREA)
        shot = [img[4:4 + height_px, t * step_px:t * step_px + width_px]
                for t in range(frames_per_shot)]
        cv2.imwrite(str(refs / f"still-{i:02d}.png"),
                    cv2.cvtColor(shot[frames_per_shot // 2], cv2.COLOR_RGB2BGR))
        frames += [rgb_to_gray(f) for f in shot]
    film = films / f"synthetic{n_shots}.mkv"
    tmp = film.with_name(film.stem + ".tmp.mkv")
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
           "-s", f"{width_px}x{height_px}", "-framerate", fps, "-i", "pipe:",
           "-c:v", "ffv1", "-g", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", str(tmp)]
    subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                   check=True)
    os.replace(tmp, film)
    return film, refs


def _ffmpeg(args: Sequence[str]) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def scaled_film(src: str | os.PathLike, out: str | os.PathLike, *, width_px: int | None,
                repeat: int = 1, max_frames: int | None = None) -> Path:
    """``src`` (its first ``max_frames`` frames) repeated ``repeat`` times back to back, scaled
    to ``width_px`` (even height), as gray FFV1; deterministic (bitexact). Cached: an existing
    ``out`` is reused."""
    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    vf = [f"scale={width_px}:-2:flags=area" if width_px else "null", "format=gray"]
    inputs: list[str] = []
    for _ in range(repeat):
        inputs += ["-i", str(src)]
    trim = f"trim=end_frame={int(max_frames)}," if max_frames else ""
    parts = "".join(f"[{i}:v:0]{trim}setpts=PTS-STARTPTS[p{i}];" for i in range(repeat))
    chain = "".join(f"[p{i}]" for i in range(repeat))
    graph = f"{parts}{chain}concat=n={repeat}:v=1:a=0[c];[c]{','.join(vf)}[v]"
    tmp = out.with_name(out.stem + ".tmp.mkv")
    _ffmpeg([*inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "ffv1", "-g", "1",
             "-fflags", "+bitexact", "-flags:v", "+bitexact", str(tmp)])
    os.replace(tmp, out)
    return out


# -- measuring --------------------------------------------------------------------------------

class PeakRSS:
    """Samples the memory of a process and all its descendants every ``interval_s``.

    ``peak_bytes``: the largest sum of RSS. ``peak_pss_bytes``: the largest sum of PSS
    (proportional set size: a page shared by n processes counts 1/n in each), the tree's real
    use. Summed RSS overstates it whenever processes share pages, and jumps at random: a child
    caught between ``fork`` and ``exec`` (every ffmpeg/ffprobe launch) reports the whole parent
    as its own RSS, so one unlucky 0.1 s sample doubles the flow process. PSS is not fooled.
    """

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = total_pss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    info = p.memory_full_info()  # Linux: reads /proc/PID/smaps_rollup
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += info.rss
                total_pss += getattr(info, "pss", info.rss)
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_pss_bytes = max(self.peak_pss_bytes, total_pss)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def _cli(args: Sequence[str], home: Path, *, log: Path, measure: bool = False,
         timeout_s: float = 3600) -> tuple[float, float, float, float]:
    """Run ``reel ARGS`` in a subprocess with REEL_HOME=home; returns (wall s, peak summed RSS
    MB, peak summed PSS MB, cores busy). ``cores busy``: the machine's non-idle CPU seconds
    during the run over its wall time (whole machine: meaningful on an otherwise idle one)."""
    import psutil

    # the home's own Prefect database (this process's PREFECT_HOME, which reel's CLI set for
    # the benchmark's own home, would otherwise be inherited by every run)
    env = {**os.environ, "REEL_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    for k in ("REEL_DATABASE_URL", "REEL_MLFLOW_TRACKING_URI", "REEL_MLFLOW_ARTIFACT_ROOT"):
        env.pop(k, None)
    t0, busy0 = time.perf_counter(), _busy_cpu_s(psutil)
    with open(log, "a") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "reel.flows.cli", *args], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
        if measure:
            with PeakRSS(proc.pid) as rss:
                rc = proc.wait(timeout=timeout_s)
            peak, peak_pss = rss.peak_bytes / 2**20, rss.peak_pss_bytes / 2**20
        else:
            rc, peak, peak_pss = proc.wait(timeout=timeout_s), 0.0, 0.0
    wall = time.perf_counter() - t0
    cores = (_busy_cpu_s(psutil) - busy0) / wall if wall > 0 else 0.0
    if rc != 0:
        raise RuntimeError(f"`reel {' '.join(args)}` failed (exit {rc}); see {log}")
    return wall, peak, peak_pss, cores


def _busy_cpu_s(psutil: Any) -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _flow_seconds(home: Path) -> tuple[float, int]:
    """Wall time of the last restore run as the catalog saw it (flow start → finish) and the
    number of shots of the collection."""
    from sqlalchemy import func, select

    from reel.config import Settings
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(Settings(home=home).database_url) as db:
        run = db.scalars(select(m.Run).order_by(m.Run.id.desc())).first()
        n = db.scalar(select(func.count(m.Shot.id)))
        return (run.finished_at - run.started_at).total_seconds(), int(n)


def restore_once(film: Path, refs: Path, home: Path, *, runner: str, workers: int,
                 log: Path, measure_memory: bool = False) -> dict[str, float]:
    """Set up a fresh home as a user does (``reel init``, ``reel ingest``), then restore
    ``film``; wall and flow time, and with ``measure_memory`` the peak RSS/PSS (0 without).

    ``reel init`` creates the catalog, the MLflow store and Prefect's database; without it the
    run itself would create MLflow's tables (seconds of Python beside the first stages), which
    a user pays once per home, not per run. The memory sampler reads every process's
    ``smaps_rollup`` ten times a second, which costs the run CPU time, so timed runs go
    without it."""
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    _cli(["init"], home, log=log)
    _cli(["ingest", str(film), "--collection", "scale", "--references", str(refs)], home, log=log)
    wall, peak, peak_pss, cores = _cli(["run", "scale", "--runner", runner, "--workers", str(workers),
                       "--no-cache"], home, log=log, measure=measure_memory)
    flow_s, shots = _flow_seconds(home)
    return {"wall_s": wall, "flow_s": flow_s, "peak_rss_mb": peak, "peak_pss_mb": peak_pss,
            "cores_busy": cores, "shots": shots}


def transcode_once(film: Path, out_dir: Path) -> float:
    """Seconds to make the same deliverables from the unrestored film (no restoration):
    reel's deliver step (ffmpeg: FFV1 master + framemd5, ProRes mezzanine, H.264 access)."""
    from reel.tasks import deliver, media

    if out_dir.exists():
        shutil.rmtree(out_dir)
    t0 = time.perf_counter()
    info = media.probe(film)
    deliver.deliver_item([film], film, out_dir, info=info, stem=film.stem)
    return time.perf_counter() - t0


def _base_film(samples_dir: Path, source: str, work: Path) -> tuple[Path, Path]:
    if source == "synthetic":
        return synthetic_film(work / "synthetic", n_shots=6, frames_per_shot=40,
                              width_px=320, height_px=180)
    from reel.tasks.samples import build_sample_collections

    col = build_sample_collections(samples_dir)["bikes"]
    return col.films[0], col.references_dir


def run_benchmark(out: str | os.PathLike, *, samples_dir: str | os.PathLike,
                  source: str = "bikes", width_px: int | None = 320, repeat: int = 10,
                  max_frames: int | None = None, speedup_repeat: int = 2,
                  workers: Sequence[int] = (1, 2), log_mlflow: bool = True,
                  command: str | None = None,
                  on_progress: Callable[[str], None] | None = None,
                  measures: Sequence[str] = MEASURES,
                  transcode_runs: int = 3) -> list[dict[str, Any]]:
    """Run the measurements named in ``measures`` (default: all three of :data:`MEASURES`);
    write ``scale.csv`` + ``summary.md`` (+ MLflow). The transcode (a few seconds, so the
    noisiest timing) runs ``transcode_runs`` times; its row and the ratio use the median."""
    unknown = set(measures) - set(MEASURES)
    if unknown or not measures:
        raise ValueError(f"unknown measure(s) {sorted(unknown)}; use some of {', '.join(MEASURES)}")
    if transcode_runs < 1:
        raise ValueError(f"transcode_runs must be >= 1, got {transcode_runs}")
    from reel.flows.benchmarks.common import write_results
    from reel.tasks import media

    out = Path(out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    log = out / "scale.log"
    say = on_progress or (lambda msg: None)
    base, refs = _base_film(Path(samples_dir), source, work)
    tag = f"{source}-w{width_px or 'orig'}-f{max_frames or 'all'}"
    film1 = scaled_film(base, work / f"{tag}-x1.mkv", width_px=width_px, repeat=1,
                        max_frames=max_frames)
    films = [film1]
    if "speedup" in measures:
        film2 = scaled_film(base, work / f"{tag}-x{speedup_repeat}.mkv", width_px=width_px,
                            repeat=speedup_repeat, max_frames=max_frames)
        films.append(film2)
    if "memory" in measures:
        filmN = scaled_film(base, work / f"{tag}-x{repeat}.mkv", width_px=width_px,
                            repeat=repeat, max_frames=max_frames)
        films.append(filmN)
    frames = {p: media.count_frames(p) for p in films}
    rows: list[dict[str, Any]] = []
    notes = _notes(source, width_px, repeat, max_frames, speedup_repeat)

    def save(final: bool = False) -> None:  # partial results survive an interrupted run
        write_results("scale", rows, out, columns=COLUMNS, title="scale", notes=notes,
                      command=command, log_mlflow=log_mlflow and final,
                      key_columns=("measure", "film", "workers"),
                      params={"source": source, "width_px": width_px, "repeat": repeat,
                              "max_frames": max_frames, "speedup_repeat": speedup_repeat})

    # 1. pipeline over a pure transcode to the same deliverables (the base film; thread pool,
    #    2 workers, no memory sampler attached)
    def restore_row(film: Path, measure: str, *, memory: bool) -> dict[str, float]:
        say(f"{measure}: {film.name} ({frames[film]} frames)…")
        r = restore_once(film, refs, out / "homes" / f"{measure}-{film.stem}", runner="threads",
                         workers=2, log=log, measure_memory=memory)
        rows.append({"measure": measure, "film": film.name, "runner": "threads", "workers": 2,
                     "frames": frames[film], "shots": r["shots"], "wall_s": r["wall_s"],
                     "peak_rss_mb": r["peak_rss_mb"] if memory else "",
                     "peak_pss_mb": r["peak_pss_mb"] if memory else "",
                     "cores_busy": r["cores_busy"], "value": r["flow_s"], "target": "",
                     "meets_target": ""})
        return r

    if "overhead" in measures:
        say(f"transcode: {film1.name} ({transcode_runs}×)…")
        tcs = [transcode_once(film1, work / "transcode") for _ in range(transcode_runs)]
        tc = float(np.median(tcs))
        notes.append(f"transcode runs: {', '.join(f'{t:.3f}' for t in tcs)} s; the `transcode` "
                     f"row and the ratio use their median.")
        rows.append({"measure": "transcode", "film": film1.name, "runner": "ffmpeg",
                     "workers": 1, "frames": frames[film1], "shots": "", "wall_s": tc,
                     "peak_rss_mb": "", "value": tc, "target": "", "meets_target": ""})
        timed = restore_row(film1, "restore", memory=False)
        over = timed["flow_s"] / tc
        rows.append({"measure": "pipeline_over_transcode", "film": film1.name,
                     "runner": "threads", "workers": 2, "frames": frames[film1],
                     "shots": timed["shots"], "wall_s": "", "peak_rss_mb": "", "value": over,
                     "target": "<= 8", "meets_target": over <= 8})
        save()

    # 2. speedup: the 12-shot film (base repeated speedup_repeat times) with 1 and 2 Dask
    #    worker processes
    by_workers = {}
    for n in (workers if "speedup" in measures else ()):
        say(f"speedup: {film2.name} on a local Dask cluster of {n} worker(s)…")
        r = restore_once(film2, refs, out / "homes" / f"dask{n}", runner="dask", workers=n, log=log)
        by_workers[n] = r
        rows.append({"measure": "restore", "film": film2.name, "runner": "dask", "workers": n,
                     "frames": frames[film2], "shots": r["shots"], "wall_s": r["wall_s"],
                     "peak_rss_mb": "", "peak_pss_mb": "", "cores_busy": r["cores_busy"],
                     "value": r["flow_s"],
                     "target": "", "meets_target": ""})
        save()
    if 1 in by_workers and 2 in by_workers:
        sp = by_workers[1]["flow_s"] / by_workers[2]["flow_s"]
        rows.append({"measure": "speedup_2_vs_1_workers", "film": film2.name, "runner": "dask",
                     "workers": 2, "frames": frames[film2], "shots": by_workers[2]["shots"],
                     "wall_s": "", "peak_rss_mb": "", "value": sp, "target": ">= 1.7",
                     "meets_target": sp >= 1.7})
        save()

    # 3. memory: the base film and the base film repeated `repeat` times, memory sampled
    if "memory" in measures:
        mem1 = restore_row(film1, "restore_memory", memory=True)
        save()
        memN = restore_row(filmN, "restore_memory", memory=True)
        ratio = memN["peak_pss_mb"] / mem1["peak_pss_mb"]
        rows.append({"measure": f"peak_memory_x{repeat}_over_x1", "film": filmN.name,
                     "runner": "threads", "workers": 2, "frames": frames[filmN],
                     "shots": memN["shots"], "wall_s": "", "peak_rss_mb": "",
                     "value": ratio, "target": "<= 1.2", "meets_target": ratio <= 1.2})
    save(final=True)
    return rows


def _notes(source: str, width_px: int | None, repeat: int, max_frames: int | None,
           speedup_repeat: int) -> list[str]:
    return [
        "`restore` rows are timed runs (no memory sampler attached: it reads every process's "
        "smaps_rollup ten times a second and slowed a 320 px run by ~10 %); `restore_memory` "
        "rows are separate runs of the same kind with the sampler, for the memory columns.",
        "Each restore runs in a fresh REEL_HOME set up as a user does: `reel init`, "
        "`reel ingest`, then the timed `reel run`.",
        "`value` of a `restore` row: the flow's wall time from the catalog (run start → finish, "
        "includes the local Dask cluster start-up, shot detection, all shot stages, reassembly, "
        "deliverables, MediaConch and provenance); `wall_s`: the whole `reel run` process "
        "(adds Python/Prefect imports and the ephemeral Prefect server start).",
        "`peak_pss_mb`: the largest summed PSS (proportional set size) of `reel run` and all "
        "its descendants (Prefect server, Dask nanny/workers, ffmpeg), sampled every 0.1 s with "
        "psutil; the memory target (x{n} over x1) uses it. `peak_rss_mb`: the same with RSS, "
        "shown for comparison: it counts shared pages once per process and jumps when a sample "
        "catches a child between fork and exec (the child then reports the parent's RSS)."
        .replace("{n}", str(repeat)),
        f"Films: {source} (gray, scaled to width {width_px or 'original'}"
        f"{f', first {max_frames} frames' if max_frames else ''}); x{speedup_repeat} (speedup) "
        f"and x{repeat} (memory) = the film repeated back to back. Runs use --no-cache.",
        f"Machine: {os.cpu_count()} CPU(s). `cores_busy`: the machine's non-idle CPU time "
        "during a `reel run` over its wall time. A worker is one core for Python/OpenCV/torch, "
        "but its stages also run ffmpeg decoders and encoders in subprocesses, and the flow "
        "process and the Prefect API server work beside it; when the 1-worker run already "
        "keeps c cores busy, 2 workers can be at most (cores)/c times faster on this machine.",
        "transcode: reel's deliver step on the unrestored film (decode → FFV1 master + "
        "framemd5, ProRes 422 HQ mezzanine, H.264 access), i.e. the same deliverables without "
        "restoration.",
    ]
