"""Tests of reel.tasks.media on small lavfi-generated clips."""

from __future__ import annotations

import hashlib
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import reel.tasks.media as media
from reel.tasks.media import (
    FrameWriter,
    MediaError,
    MediaInfo,
    count_frames,
    fps_fraction,
    iter_frames,
    probe,
    sha256_file,
    write_framemd5,
    write_png,
)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {}
    # H.264 with B-frames and a long GOP, 24000/1001, AAC audio, start timecode: 96 frames
    out["mp4"] = d / "film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=24000/1001:duration=4.004",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
           "-c:v", "libx264", "-bf", "3", "-g", "40", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-timecode", "01:00:00:00", str(out["mp4"]))
    # the same pictures as intra-only FFV1 in Matroska (no nb_frames: counted by decoding)
    out["mkv"] = d / "film.mkv"
    ffmpeg("-i", str(out["mp4"]), "-map", "0:v", "-c:v", "ffv1", str(out["mkv"]))
    # rotation metadata (display matrix)
    out["rot"] = d / "rot.mp4"
    ffmpeg("-i", str(out["mp4"]), "-map", "0:v", "-c", "copy", "-metadata:s:v", "rotate=90",
           str(out["rot"]))
    out["audio_only"] = d / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", str(out["audio_only"]))
    out["text"] = d / "notes.txt"
    out["text"].write_text("this is not a film\n")
    return out


def test_probe_reports_exact_rate_count_timecode_and_audio(clips):
    info = probe(clips["mp4"])
    assert (info.width, info.height) == (96, 64)
    assert info.fps == "24000/1001" and info.avg_fps == "24000/1001"
    assert not info.is_vfr
    assert info.fps_float == pytest.approx(23.976, abs=1e-3)
    assert info.n_frames == 96
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert "mp4" in info.container
    assert info.timecode == "01:00:00:00"
    assert info.rotation_deg == 0
    assert info.has_audio
    assert info.audio_streams == [{"index": 1, "codec": "aac", "sample_rate": 48000,
                                   "channels": 1}]
    assert info.duration_s == pytest.approx(4.004, abs=0.01)
    d = json.loads(json.dumps(info.to_dict()))
    assert d["fps"] == "24000/1001" and d["n_frames"] == 96 and d["has_audio"] is True


def test_probe_counts_frames_when_container_has_no_count(clips):
    info = probe(clips["mkv"])
    assert info.video_codec == "ffv1"
    assert info.n_frames == 96 == count_frames(clips["mkv"])
    assert info.fps == "24000/1001"
    assert not info.has_audio


def test_probe_errors_are_clear(clips, tmp_path):
    with pytest.raises(MediaError, match="not found"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="not readable media"):
        probe(clips["text"])
    with pytest.raises(MediaError, match="no video stream"):
        probe(clips["audio_only"])


def test_vfr_property():
    info = MediaInfo(path=Path("x"), container="matroska", video_codec="h264", width=2,
                     height=2, fps="30/1", avg_fps="2997/100", n_frames=3, duration_s=0.1,
                     pix_fmt="yuv420p", bit_depth=8)
    assert info.is_vfr and info.fps_fraction == Fraction(30)


def test_fps_fraction_parsing():
    assert fps_fraction("24000/1001") == Fraction(24000, 1001)
    assert fps_fraction(23.976) == Fraction(24000, 1001)
    assert fps_fraction(25) == Fraction(25)
    with pytest.raises(ValueError):
        fps_fraction("0/1")


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_iter_frames_ranges_equal_full_decode(clips, kind, monkeypatch):
    full = np.stack(list(iter_frames(clips[kind], pix_fmt="rgb24")))
    assert full.shape == (96, 64, 96, 3) and full.dtype == np.uint8
    # consecutive testsrc2 frames differ, so an off-by-one would be caught
    assert all(not np.array_equal(full[i], full[i + 1]) for i in range(95))
    ranges = [(30, 76), (0, 1), (95, 96), (80, None)]
    for a, b in ranges:
        got = np.stack(list(iter_frames(clips[kind], a, b, pix_fmt="rgb24")))
        assert np.array_equal(got, full[a:b]), (a, b)
    # the fast-seek path (normally only > 20 s into a film) must be exact as well
    monkeypatch.setattr(media, "_SEEK_MIN_S", 0.5)
    monkeypatch.setattr(media, "_SEEK_MARGIN_S", 0.3)
    meta = media._video_meta(clips[kind])
    assert media._seek_plan(meta, 60) is not None
    for a, b in [(30, 76), (60, 61), (50, None), (95, 96)]:
        got = np.stack(list(iter_frames(clips[kind], a, b, pix_fmt="rgb24")))
        assert np.array_equal(got, full[a:b]), ("seek", a, b)


def test_iter_frames_gray_is_ffmpeg_gray_and_scaling(clips):
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-nostdin", "-i", str(clips["mp4"]),
                          "-frames:v", "3", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(3, 64, 96)
    got = np.stack(list(iter_frames(clips["mp4"], 0, 3)))
    assert got.shape == (3, 64, 96) and np.array_equal(got, ref)
    small = list(iter_frames(clips["mp4"], 10, 12, pix_fmt="rgb24", width=50))
    assert [f.shape for f in small] == [(34, 50, 3)] * 2   # 64*50/96 = 33.3 -> even 34
    both = next(iter_frames(clips["mp4"], 0, 1, width=32, height=20))
    assert both.shape == (20, 32)
    # area downscaling of a frame keeps its mean
    full = next(iter_frames(clips["mp4"], 10, 11, pix_fmt="rgb24"))
    assert abs(float(small[0].mean()) - float(full.mean())) < 3.0


def test_iter_frames_rotation_and_bad_ranges(clips):
    info = probe(clips["rot"])
    assert info.rotation_deg in (90, 270)
    f = next(iter_frames(clips["rot"], 0, 1, pix_fmt="rgb24"))
    assert f.shape == (96, 64, 3) and info.display_size == (64, 96)
    with pytest.raises(MediaError, match="only 96 frames"):
        list(iter_frames(clips["mkv"], 90, 100))
    with pytest.raises(ValueError):
        list(iter_frames(clips["mkv"], 5, 2))
    with pytest.raises(ValueError):
        list(iter_frames(clips["mkv"], 0, 2, pix_fmt="yuv420p"))


def test_iter_frames_kills_ffmpeg_when_consumer_stops(clips, monkeypatch):
    procs = []
    real_popen = subprocess.Popen

    def spy(*a, **k):
        p = real_popen(*a, **k)
        procs.append(p)
        return p

    monkeypatch.setattr(media.subprocess, "Popen", spy)
    gen = iter_frames(clips["mkv"], pix_fmt="rgb24")
    first = next(gen)
    assert first.shape == (64, 96, 3) and first.flags.writeable
    gen.close()
    decoders = [p for p in procs if "rawvideo" in p.args]
    assert len(decoders) == 1
    assert all(p.poll() is not None for p in procs)   # nothing left running


def test_framewriter_lossless_deterministic_atomic(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 20, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(4, 21, 33), dtype=np.uint8)   # odd sizes too
    paths = []
    for name in ("a.mkv", "b.mkv"):
        with FrameWriter(tmp_path / name, 30, 20, "24000/1001",
                         metadata={"comment": "test"}) as w:
            for f in rgb:
                w.write(f)
        paths.append(tmp_path / name)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    info = probe(paths[0])
    assert (info.video_codec, info.fps, info.n_frames) == ("ffv1", "24000/1001", 5)
    assert np.array_equal(np.stack(list(iter_frames(paths[0], pix_fmt="rgb24"))), rgb)

    with FrameWriter(tmp_path / "g.mkv", 33, 21, 25, pix_fmt_in="gray") as w:
        for f in gray:
            w.write(f)
    assert probe(tmp_path / "g.mkv").pix_fmt == "gray"
    assert np.array_equal(np.stack(list(iter_frames(tmp_path / "g.mkv"))), gray)

    # validation
    with pytest.raises(ValueError, match="shape"):
        with FrameWriter(tmp_path / "bad.mkv", 30, 20, 25) as w:
            w.write(np.zeros((20, 30), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        with FrameWriter(tmp_path / "bad.mkv", 30, 20, 25) as w:
            w.write(np.zeros((20, 30, 3), np.float32))
    # an exception inside the block leaves neither output nor temporary file
    with pytest.raises(RuntimeError):
        with FrameWriter(tmp_path / "boom.mkv", 30, 20, 25) as w:
            w.write(rgb[0])
            raise RuntimeError("consumer failed")
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["a.mkv", "b.mkv", "g.mkv"]


def test_fixity_helpers(clips, tmp_path):
    assert sha256_file(clips["mp4"], chunk_bytes=1000) == \
        hashlib.sha256(clips["mp4"].read_bytes()).hexdigest()
    out = write_framemd5(clips["mkv"], tmp_path / "film.framemd5")
    lines = [ln for ln in out.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 96
    # the same pictures in two containers (H.264 decoded to yuv420p, stored losslessly as FFV1)
    other = write_framemd5(clips["mp4"], tmp_path / "film2.framemd5")
    md5s = lambda p: [ln.rsplit(",", 1)[1].strip() for ln in p.read_text().splitlines()
                      if ln and not ln.startswith("#")]
    assert md5s(out) == md5s(other)
    with pytest.raises(MediaError, match="not found"):
        sha256_file(tmp_path / "nope")


def test_write_png_roundtrip(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    p = write_png(tmp_path / "x.png", img)
    assert np.array_equal(next(iter_frames(p, pix_fmt="rgb24")), img)
    assert write_png(tmp_path / "y.png", img).read_bytes() == p.read_bytes()
