"""End to end: `reel run` and `reel deliver` make the same preservation set from read-only
originals (one with two audio streams and a timecode, one with a variable frame rate), with a
MediaConch check shown by `reel status` and PREMIS provenance listing stages and reviews."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from sqlalchemy import select
from typer.testing import CliRunner

W, H = 160, 96
AV_KINDS = {"master", "framemd5", "mezzanine", "access"}


def _pan(img: np.ndarray, n: int, step_px: int) -> list[np.ndarray]:
    img = cv2.resize(img, (W + step_px * n, H + 8), interpolation=cv2.INTER_AREA)
    return [cv2.cvtColor(img[4:4 + H, i * step_px:i * step_px + W], cv2.COLOR_RGB2GRAY)
            for i in range(n)]


def make_films(folder: Path) -> tuple[Path, Path]:
    """twoshots.mkv: gray FFV1, 24000/1001, timecode, PCM + FLAC audio (two shots);
    phone.mp4: H.264 at 25 fps with every 5th frame dropped (VFR) and AAC audio."""
    folder.mkdir(parents=True)
    film = folder / "twoshots.mkv"
    frames = _pan(data.astronaut(), 24, 2) + _pan(data.coffee(), 24, 2)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
         "-s", f"{W}x{H}", "-framerate", "24000/1001", "-i", "pipe:",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2.002",
         "-f", "lavfi", "-i", "sine=frequency=220:sample_rate=48000:duration=2.002",
         "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "ffv1", "-g", "1",
         "-c:a:0", "pcm_s16le", "-c:a:1", "flac", "-timecode", "01:00:00:00", str(film)],
        input=b"".join(f.tobytes() for f in frames), check=True)
    phone = folder / "phone.mp4"
    frames = _pan(data.chelsea(), 40, 2)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
         "-s", f"{W}x{H}", "-framerate", "25", "-i", "pipe:",
         "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=1.6",
         "-map", "0:v", "-map", "1:a", "-vf", "select='not(eq(mod(n\\,5)\\,2))'",
         "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         str(phone)],
        input=b"".join(f.tobytes() for f in frames), check=True)
    return film, phone


def _latest_deliverables(db, m, item_id: int) -> dict:
    from sqlalchemy import func

    run = db.scalar(select(func.max(m.Deliverable.run_id)).where(m.Deliverable.item_id == item_id))
    return {d.kind.value: d for d in db.scalars(select(m.Deliverable).where(
        m.Deliverable.item_id == item_id, m.Deliverable.run_id == run))}


@pytest.mark.slow
def test_run_and_deliver_make_the_same_preservation_set(reel_home, prefect_harness, tmp_path,
                                                        monkeypatch):
    from reel.config import get_settings, reset_settings
    from reel.db import models as m
    from reel.db.reviews import record_review
    from reel.db.session import session_scope
    from reel.flows.cli import app
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection
    from reel.tasks.media import count_frames, probe, sha256_file
    from reel.tasks.provenance import PREMIS_NS, check_premis

    # cheap engines: this test is about media and provenance, not colour quality
    monkeypatch.setenv("REEL_ENGINES__COLORIZE", "gray")
    monkeypatch.setenv("REEL_ENGINES__HARMONIZE", "none")
    reset_settings()
    s = get_settings()
    film, phone = make_films(tmp_path / "films")
    report = ingest_path(s, tmp_path / "films", "archive")
    assert sorted(report.registered) == ["phone", "twoshots"]
    # originals are read-only from here on; reel must never need to write them
    before = {}
    for p in (film, phone):
        os.chmod(p, 0o444)
        before[p] = (p.stat().st_mtime_ns, sha256_file(p))

    assert restore_collection("archive") == {"phone": "delivered", "twoshots": "delivered"}

    with session_scope(s.database_url) as db:
        items = {i.name: i for i in db.scalars(select(m.Item))}
        tw, ph = items["twoshots"], items["phone"]
        run_set = {k: d.sha256 for k, d in _latest_deliverables(db, m, tw.id).items()}
        assert set(run_set) == AV_KINDS | {"sidecar", "premis"}
        events = lambda item, t: [e for e in item.events if e.event_type == t]  # noqa: E731
        # conformance of both masters recorded as a passed validation
        for it in (tw, ph):
            val = events(it, "validation")
            assert val and val[-1].outcome == m.EventOutcome.SUCCESS
            assert val[-1].detail["policy_name"] == "reel FFV1/Matroska preservation master"
            assert [e.detail["when"] for e in events(it, "fixity check")] == \
                ["before run", "after run"]
        # odd sources were recorded: two audio streams; VFR converted with a warning
        assert [e.detail["condition"] for e in events(tw, "metadata extraction")] == \
            ["several audio streams"]
        norm = events(ph, "normalization")
        assert len(norm) == 1 and norm[0].outcome == m.EventOutcome.WARNING
        assert norm[0].detail["source"]["n_frames"] == 32
        assert norm[0].detail["output"]["n_frames"] == 40
        assert ph.probe["is_vfr"] is True and ph.n_frames == 32
        phone_set = _latest_deliverables(db, m, ph.id)
        shot_ids = [x.id for x in sorted(tw.shots, key=lambda x: x.index)]

    # deliverables of the VFR film follow the constant-rate intermediate (40 frames, 25 fps)
    pm = probe(Path(phone_set["master"].path), deep=True)
    assert (pm.fps, pm.n_frames, pm.is_vfr) == ("25/1", 40, False)
    # the two-audio film: rate, timecode, frame count and both audio streams kept everywhere
    with session_scope(s.database_url) as db:
        paths = {k: Path(d.path) for k, d in _latest_deliverables(db, m, tw.id).items()}
    for kind in ("master", "mezzanine", "access"):
        info = probe(paths[kind])
        assert info.fps == "24000/1001" and info.timecode == "01:00:00:00", kind
        assert count_frames(paths[kind]) == 48 and len(info.audio_streams) == 2, kind

    # reviewers' decisions (written to the reviews table only) must reach the PREMIS file;
    # approving every shot also opens the review gate of `reel deliver`
    with session_scope(s.database_url) as db:
        for shot_id in shot_ids:
            record_review(db, shot_id, "ana", "approve", expected_version=None, note="good")

    runner = CliRunner()
    result = runner.invoke(app, ["deliver", "twoshots", "--collection", "archive"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "premis" in out and "conformance pass" in out

    with session_scope(s.database_url) as db:
        tw = db.scalar(select(m.Item).where(m.Item.name == "twoshots"))
        again = _latest_deliverables(db, m, tw.id)
        assert set(again) == set(run_set)
        # `reel deliver` reproduces the run's media byte for byte
        assert {k: again[k].sha256 for k in AV_KINDS} == {k: run_set[k] for k in AV_KINDS}
        premis_path = Path(again["premis"].path)
        sidecar_path = Path(again["sidecar"].path)
        assert tw.status == m.ItemStatus.DELIVERED
        n_runs = len(db.scalars(select(m.Run)).all())
        assert n_runs == 2

    # PREMIS: valid structure; ingestion, fixity, stage events with engine agents, the review,
    # creations of every deliverable, the validation
    assert check_premis(premis_path) == []
    root = ET.parse(premis_path).getroot()
    ns = {"p": PREMIS_NS}
    types = [e.findtext("p:eventType", namespaces=ns) for e in root.findall("p:event", ns)]
    for t in ("ingestion", "message digest calculation", "fixity check", "shot detection",
              "segmentation", "references", "colorization", "harmonization", "qc",
              "quality review", "creation", "validation"):
        assert t in types, t
    agents = {a.findtext("p:agentName", namespaces=ns): a for a in root.findall("p:agent", ns)}
    assert {"reel", "gray", "none", "ffmpeg", "MediaConch", "ana"} <= set(agents)
    assert agents["ana"].findtext("p:agentType", namespaces=ns) == "person"
    objects = {o.findtext("p:objectIdentifier/p:objectIdentifierValue", namespaces=ns): o
               for o in root.findall("p:object", ns)}
    assert {"original", "master", "mezzanine", "access", "framemd5",
            "restored-shot-0000", "restored-shot-0001"} <= set(objects)
    digest = objects["master"].findtext("p:objectCharacteristics/p:fixity/p:messageDigest",
                                        namespaces=ns)
    assert digest == run_set["master"]
    rec = json.loads(sidecar_path.read_text())
    colorize = [e for e in rec["events"] if e["type"] == "colorization"]
    assert len(colorize) == 2        # one restore run, two shots (reel deliver re-uses them)
    assert all(e["detail"]["inputs"][0]["sha256"] == before[film][1] for e in colorize)
    review = [e for e in rec["events"] if e["type"] == "quality review"]
    assert len(review) == 2 and {r["detail"]["decision"] for r in review} == {"approve"}
    assert {r["detail"]["shot"]["index"] for r in review} == {0, 1}
    assert rec["disclosure"].startswith("colour is AI-derived by reel ")

    # `reel status` shows the conformance results
    result = runner.invoke(app, ["status", "archive"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "conformance (MediaConch)" in text and "success" in text

    # the originals were never written
    for p, (mtime, sha) in before.items():
        assert (p.stat().st_mtime_ns, sha256_file(p)) == (mtime, sha)
        assert oct(p.stat().st_mode & 0o777) == "0o444"
    assert sorted(x.name for x in film.parent.iterdir()) == ["phone.mp4", "twoshots.mkv"]


def test_deliver_command_errors_say_what_to_do(reel_home, tmp_path):
    from reel.flows.cli import app
    from reel.flows.ingest import ingest_path

    runner = CliRunner()
    result = runner.invoke(app, ["deliver", "nothing"])
    assert result.exit_code == 1 and "no item named 'nothing'" in " ".join(result.output.split())
    clip = tmp_path / "f" / "clip.mkv"
    clip.parent.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=25:duration=0.4", "-c:v", "ffv1", str(clip)],
                   check=True)
    ingest_path(reel_home, clip, "a")
    ingest_path(reel_home, clip, "b")
    result = runner.invoke(app, ["deliver", "clip"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "--collection" in text
