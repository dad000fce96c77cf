"""Tests of reel.tasks.deliver: reassembly of shot intermediates into the master, access copy."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reel.tasks.deliver import (
    DeliverableError,
    framemd5_sidecar,
    make_access,
    reassemble_master,
)
from reel.tasks.media import FrameWriter, iter_frames, probe

META = {"comment": "colour is AI-derived by reel 0.1.0", "reel_version": "0.1.0"}
CUT = 24  # the synthetic film's only cut


def ffmpeg(*args: str) -> bytes:
    return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                           *args], check=True, capture_output=True).stdout


def audio_md5(path: Path) -> str:
    return ffmpeg("-i", str(path), "-map", "0:a", "-f", "md5", "-").decode().strip()


def make_film(path: Path, audio_codec: str) -> None:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=80x48:rate=24000/1001:duration=1.001",
           "-f", "lavfi", "-i", "smptebars=size=80x48:rate=24000/1001:duration=1.001",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2.002",
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", "-map", "2:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", audio_codec,
           "-timecode", "01:00:00:00", str(path))


def restore(frame: np.ndarray, shot: int) -> np.ndarray:
    """Stand-in for a restoration stage: a visible, deterministic change per shot."""
    return (255 - frame) if shot == 0 else np.roll(frame, 1, axis=2)


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    d = tmp_path_factory.mktemp("deliver")
    src = d / "film.mov"
    # two shots (testsrc2 then smptebars) at 24000/1001 with a PCM sine track and a timecode
    make_film(src, "pcm_s16le")
    info = probe(src)
    assert info.n_frames == 48
    w, h = info.display_size
    shots, frames = [], []
    for i, (a, b) in enumerate([(0, CUT), (CUT, info.n_frames)]):
        p = d / f"shot-{i:04d}.mkv"
        with FrameWriter(p, w, h, info.fps) as fw:
            for f in iter_frames(src, a, b, pix_fmt="rgb24"):
                r = restore(f, i)
                frames.append(r)
                fw.write(r)
        shots.append(p)
    master = reassemble_master(shots, src, d / "out" / "film.master.mkv", info=info,
                               metadata=META)
    return {"dir": d, "src": src, "info": info, "shots": shots, "frames": np.stack(frames),
            "master": master}


def test_master_matches_source_rate_count_timecode_audio(film):
    m = probe(film["master"])
    assert m.container.startswith("matroska")
    assert m.video_codec == "ffv1"
    assert m.n_frames == 48
    assert m.fps == "24000/1001" and not m.is_vfr
    assert m.timecode == "01:00:00:00"
    assert m.has_audio and m.audio_streams[0]["codec"] == "pcm_s16le"
    assert audio_md5(film["master"]) == audio_md5(film["src"])   # audio copied bit for bit
    tags = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of",
                           "default=nw=1", str(film["master"])], capture_output=True,
                          text=True, check=True).stdout
    assert "colour is AI-derived by reel 0.1.0" in tags
    # FFV1 level 3, intra-only, slice CRCs
    vs = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                         "stream=codec_name,pix_fmt", "-of", "compact", str(film["master"])],
                        capture_output=True, text=True, check=True).stdout
    assert "ffv1" in vs and "bgr0" in vs


def test_master_frames_equal_intermediates_and_sidecar(film):
    got = np.stack(list(iter_frames(film["master"], pix_fmt="rgb24")))
    assert np.array_equal(got, film["frames"])
    # shot 0 is inverted, shot 1 channel-rolled: the master holds the shots, not the source
    src0 = next(iter_frames(film["src"], 0, 1, pix_fmt="rgb24"))
    assert not np.array_equal(got[0], src0)
    side = framemd5_sidecar(film["master"])
    assert side.name == "film.master.mkv.framemd5"
    rows = [ln for ln in side.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(rows) == 48


def test_master_rerun_is_byte_identical(film):
    again = reassemble_master(film["shots"], film["src"], film["dir"] / "again.mkv",
                              info=film["info"], metadata=META)
    assert again.read_bytes() == film["master"].read_bytes()
    assert framemd5_sidecar(again).read_text().splitlines()[1:] == \
        framemd5_sidecar(film["master"]).read_text().splitlines()[1:]


def test_mismatch_raises_and_leaves_nothing(film, tmp_path):
    wrong = dataclasses.replace(film["info"], n_frames=49)
    out = tmp_path / "bad.mkv"
    with pytest.raises(DeliverableError, match="48 frames"):
        reassemble_master(film["shots"], film["src"], out, info=wrong, metadata=META)
    # a shot of the wrong size
    small = tmp_path / "small.mkv"
    with FrameWriter(small, 40, 24, film["info"].fps) as fw:
        fw.write(np.zeros((24, 40, 3), np.uint8))
    with pytest.raises(DeliverableError, match="source size"):
        reassemble_master([film["shots"][0], small], film["src"], out, info=film["info"])
    # missing frames (one shot left out)
    with pytest.raises(DeliverableError, match="24 frames"):
        reassemble_master(film["shots"][:1], film["src"], out, info=film["info"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.mkv"]


def test_access_copy(film):
    out = film["dir"] / "film.access.mp4"
    make_access(film["master"], out, source=film["src"], info=film["info"], metadata=META)
    a = probe(out)
    assert (a.video_codec, a.pix_fmt) == ("h264", "yuv420p")
    assert a.n_frames == 48 and a.fps == "24000/1001" and not a.is_vfr
    assert a.timecode == "01:00:00:00"
    assert a.has_audio and a.audio_streams[0]["codec"] == "aac"
    assert a.audio_streams[0]["sample_rate"] == 48000
    tags = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of",
                           "default=nw=1", str(out)], capture_output=True, text=True,
                          check=True).stdout
    assert "colour is AI-derived by reel 0.1.0" in tags
    # close to the master (crf 18 on tiny synthetic frames)
    acc = np.stack(list(iter_frames(out, pix_fmt="rgb24"))).astype(np.float32)
    mse = float(np.mean((acc - film["frames"].astype(np.float32)) ** 2))
    assert 10 * np.log10(255.0 ** 2 / mse) > 28.0
    # deterministic; audio may also come from the master (its lossless copy of the source;
    # the MP4 sample tables then differ slightly because Matroska timestamps are in ms)
    out2 = film["dir"] / "film.access2.mp4"
    make_access(film["master"], out2, source=film["src"], info=film["info"], metadata=META)
    assert out2.read_bytes() == out.read_bytes()
    out3 = film["dir"] / "film.access3.mp4"
    make_access(film["master"], out3, info=film["info"], metadata=META)
    a3 = probe(out3)
    assert a3.n_frames == 48 and a3.has_audio
    vmd5 = lambda p: ffmpeg("-i", str(p), "-map", "0:v", "-c", "copy", "-f", "md5", "-")
    assert vmd5(out3) == vmd5(out)   # same video bitstream


def test_access_verification_failure(film, tmp_path):
    wrong = dataclasses.replace(film["info"], n_frames=47)
    with pytest.raises(DeliverableError, match="48 frames"):
        make_access(film["master"], tmp_path / "x.mp4", source=film["src"], info=wrong)
    wrong_fps = dataclasses.replace(film["info"], fps="25/1", avg_fps="25/1")
    with pytest.raises(DeliverableError, match="fps"):
        make_access(film["master"], tmp_path / "x.mp4", source=film["src"], info=wrong_fps)
    assert list(tmp_path.iterdir()) == []


def test_aac_in_mp4_is_copied_packet_for_packet(film, tmp_path):
    """AAC from MP4: packets are copied unchanged; MP4 hides the 1024 encoder-priming samples
    with an edit list, Matroska (FFmpeg 5.1) cannot, so the master's video starts 1024 samples
    later instead (sync kept) and a decoder also outputs the priming samples."""
    src = tmp_path / "film.mp4"
    make_film(src, "aac")
    info = probe(src)
    master = reassemble_master(film["shots"], src, tmp_path / "m.mkv", info=info,
                               metadata=META)
    copy_md5 = lambda p: ffmpeg("-i", str(p), "-map", "0:a", "-c:a", "copy", "-f", "md5",
                                "-").decode().strip()
    assert copy_md5(master) == copy_md5(src)
    n_samples = lambda p: len(ffmpeg("-i", str(p), "-map", "0:a", "-f", "s16le", "-")) // 2
    assert n_samples(master) - n_samples(src) == 1024
    start = lambda p, sel: float(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", sel, "-show_entries", "stream=start_time",
         "-of", "csv=p=0", str(p)], capture_output=True, text=True, check=True).stdout)
    assert start(master, "v:0") - start(master, "a:0") == pytest.approx(1024 / 48000, abs=2e-3)
    assert probe(master).timecode == "01:00:00:00"


def test_silent_film_without_timecode(tmp_path):
    src = tmp_path / "silent.mkv"
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (6, 15, 21, 3), dtype=np.uint8)   # odd size
    with FrameWriter(src, 21, 15, "25/1") as fw:
        for f in frames:
            fw.write(f)
    info = probe(src)
    assert not info.has_audio and info.timecode is None
    m = reassemble_master([src], src, tmp_path / "m.mkv", info=info, metadata={})
    assert np.array_equal(np.stack(list(iter_frames(m, pix_fmt="rgb24"))), frames)
    a = make_access(m, tmp_path / "a.mp4", source=src, info=info, metadata={})
    pa = probe(a)
    assert pa.n_frames == 6 and pa.fps == "25/1" and not pa.has_audio
    assert (pa.width, pa.height) == (22, 16)   # padded to even for 4:2:0
