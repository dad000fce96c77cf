"""End to end: ingest a 2.5 s two-shot gray film with audio, restore it, check everything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from sqlalchemy import func, select

from reel.tasks.colorspace import rgb_to_gray

W, H, FPS, N1, N2 = 192, 112, "24000/1001", 30, 30


def _pan(img: np.ndarray, n: int, step_px: int) -> list[np.ndarray]:
    """n frames panning across a colour image (camera-like motion)."""
    img = cv2.resize(img, (W + step_px * n, H + 8), interpolation=cv2.INTER_AREA)
    return [img[4:4 + H, i * step_px:i * step_px + W].copy() for i in range(n)]


def make_film(folder: Path) -> tuple[Path, Path, Path]:
    """A gray film (FFV1, 24000/1001, timecode, sine audio), its colour truth and 2 reference stills."""
    folder.mkdir(parents=True, exist_ok=True)
    colour = _pan(data.astronaut(), N1, 2) + _pan(data.coffee(), N2, 2)
    refs = folder / "refs"
    refs.mkdir()
    cv2.imwrite(str(refs / "astronaut.png"), cv2.cvtColor(colour[N1 // 2], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(refs / "coffee.png"), cv2.cvtColor(colour[N1 + N2 // 2], cv2.COLOR_RGB2BGR))
    film = folder / "films" / "twoshots.mkv"
    truth = folder / "truth" / "twoshots.mkv"
    film.parent.mkdir()
    truth.parent.mkdir()
    for path, frames, pix in ((film, [rgb_to_gray(f) for f in colour], "gray"),
                              (truth, colour, "rgb24")):
        cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix,
               "-s", f"{W}x{H}", "-framerate", FPS, "-i", "pipe:",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
               "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "ffv1", "-g", "1",
               "-c:a", "pcm_s16le", "-timecode", "01:00:00:00", str(path)]
        subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
    return film, truth.parent, refs


@pytest.mark.slow
def test_restore_collection_end_to_end(reel_home, prefect_harness, tmp_path):
    import mlflow

    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection
    from reel.tasks.media import count_frames, probe, sha256_file

    film, truth_dir, refs = make_film(tmp_path / "src")
    sha_before = sha256_file(film)
    report = ingest_path(reel_home, film, "e2e", references_dir=refs, ground_truth_dir=truth_dir)
    assert report.registered == ["twoshots"] and report.references_added == 2
    # a second film that is changed after ingest: its fixity check must fail it loudly,
    # without stopping the other film
    other = tmp_path / "src" / "films" / "damaged.mkv"
    other.write_bytes(film.read_bytes())
    ingest_path(reel_home, other, "e2e")
    with open(other, "ab") as fh:
        fh.write(b"bit rot")

    outcome = restore_collection("e2e")
    assert outcome == {"twoshots": "delivered", "damaged": "failed"}

    # the original is untouched
    assert sha256_file(film) == sha_before

    with session_scope(reel_home.database_url) as db:
        bad = db.scalar(select(m.Item).where(m.Item.name == "damaged"))
        assert bad.status == m.ItemStatus.FAILED and "fixity" in bad.error
        item = db.scalar(select(m.Item).where(m.Item.name == "twoshots"))
        assert item.status == m.ItemStatus.DELIVERED
        shots = sorted(item.shots, key=lambda s: s.index)
        # the detector finds the cut between the two scenes
        assert [(s.start_frame, s.stop_frame) for s in shots] == [(0, N1), (N1, N1 + N2)]
        # every stage of every shot recorded, with engine and version
        stages = db.scalars(select(m.StageResult)).all()
        assert {st.stage for st in stages} == {"segmentation", "references", "colorization",
                                               "harmonization", "qc"}
        assert len(stages) == 5 * len(shots)
        assert all(st.engine and st.engine_version and st.status == m.StageStatus.DONE
                   for st in stages)
        # each shot ranked its own reference first
        for shot, ref_name in zip(shots, ("astronaut.png", "coffee.png")):
            top = min(shot.references, key=lambda r: r.rank)
            assert Path(top.reference.path).name == ref_name
        names = set(db.scalars(select(m.Metric.name)))
        assert {"colorfulness_mean", "luminance_psnr_db_min", "psnr_db", "cdc", "warp_error_ab"} <= names
        lum = db.scalars(select(m.Metric.value).where(m.Metric.name == "luminance_psnr_db_min")).all()
        assert min(lum) >= 50.0
        # colour came from the references: far better than a gray output against the truth
        psnr = db.scalars(select(m.Metric.value).where(m.Metric.name == "psnr_db")).all()
        assert min(psnr) > 25.0
        run = db.scalar(select(m.Run))
        assert run.status == m.RunStatus.PARTIAL and run.mlflow_run_id
        delivs = {d.kind.value: d for d in db.scalars(select(m.Deliverable))}
        assert {"master", "access"} <= set(delivs)
        fixity = db.scalar(select(func.count(m.Event.id)).where(m.Event.event_type == "fixity check"))
        assert fixity >= 2  # before and after the run

    src = probe(film)
    for kind in ("master", "access"):
        path = Path(delivs[kind].path)
        info = probe(path)
        assert info.fps == FPS == src.fps
        assert count_frames(path) == src.n_frames == N1 + N2
        assert info.has_audio
    assert probe(Path(delivs["master"].path)).video_codec == "ffv1"
    assert probe(Path(delivs["access"].path)).video_codec == "h264"

    # MLflow: one run for the item, one nested run per shot with metrics and thumbnails
    mlflow.set_tracking_uri(reel_home.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(reel_home.mlflow_experiment)
    assert exp.artifact_location.startswith("file:///")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.params["engine.colorize"].startswith("exemplar-propagate")
    assert "mean.colorfulness_mean" in parents[0].data.metrics
    for child in children:
        assert "colorfulness_mean" in child.data.metrics
        arts = mlflow.artifacts.list_artifacts(run_id=child.info.run_id, artifact_path="thumbs/after")
        assert arts, "after thumbnail logged"

    # determinism: a second run gives byte-identical deliverables (the provenance sidecar and
    # PREMIS file list the run's own events, so they grow with every run)
    assert {"mezzanine", "framemd5", "sidecar", "premis"} <= set(delivs)
    first = {k: d.sha256 for k, d in delivs.items() if k not in ("sidecar", "premis")}
    assert restore_collection("e2e", items=["twoshots"]) == {"twoshots": "delivered"}
    with session_scope(reel_home.database_url) as db:
        last_run = db.scalar(select(func.max(m.Deliverable.run_id)))
        second = {d.kind.value: d.sha256 for d in db.scalars(
            select(m.Deliverable).where(m.Deliverable.run_id == last_run))
            if d.kind.value not in ("sidecar", "premis")}
    assert last_run != run.id and second == first
