"""Tests of reel.tasks.media on small lavfi-generated clips."""

from __future__ import annotations

import hashlib
import json
import os
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
    # FFV1 with every frame a key frame (as reel writes masters and intermediates)
    out["intra"] = d / "intra.mkv"
    ffmpeg("-i", str(out["mp4"]), "-map", "0:v", "-c:v", "ffv1", "-g", "1", str(out["intra"]))
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
                                   "channels": 1, "channel_layout": "mono",
                                   "sample_fmt": "fltp", "bits_per_sample": 32,
                                   "language": "und"}]
    assert info.duration_s == pytest.approx(4.004, abs=0.01)
    d = json.loads(json.dumps(info.to_dict()))
    assert d["fps"] == "24000/1001" and d["n_frames"] == 96 and d["has_audio"] is True


def test_probe_counts_frames_when_container_has_no_count(clips):
    info = probe(clips["mkv"])
    assert info.video_codec == "ffv1"
    assert info.n_frames == 96 == count_frames(clips["mkv"])
    assert info.fps == "24000/1001"
    assert not info.has_audio


def test_video_format_gives_size_and_rate_without_counting(clips, monkeypatch):
    """What shot stages ask for: no full decode of a container without a frame count."""
    from reel.tasks import media

    expected = {k: (probe(clips[k]).display_size, probe(clips[k]).fps) for k in ("mkv", "rot")}

    def no_counting(*args, **kwargs):
        raise AssertionError("video_format must not count frames")

    monkeypatch.setattr(media, "count_frames", no_counting)
    for k, (size, fps) in expected.items():
        fmt = media.video_format(clips[k])
        assert (fmt.display_size, fmt.fps) == (size, fps)
    assert media.video_format(clips["rot"]).display_size == (64, 96)
    with pytest.raises(MediaError, match="no video stream"):
        media.video_format(clips["audio_only"])


def test_stream_facts_are_probed_once_per_file_version(tmp_path, monkeypatch):
    """Every decode needs the stream facts; a file is probed again only after it changed."""
    calls = []
    real = media.run_ffmpeg

    def counting(args, **kwargs):
        calls.append(args[0])
        return real(args, **kwargs)

    monkeypatch.setattr(media, "run_ffmpeg", counting)
    film = tmp_path / "shot.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.4", "-c:v", "ffv1",
           str(film))
    first = media._video_meta(film)
    n = len(calls)
    assert n == 2  # streams + first decoded frame
    first.stream["width"] = 1  # a caller's copy: changing it must not reach the next caller
    assert len(list(iter_frames(film, 2, 5))) == 3
    again = media._video_meta(film)
    assert len(calls) == n and again.stream["width"] == 64 and again.display_size == (64, 48)
    # written again under the same name (reel renames a finished temporary file into place)
    tmp = tmp_path / "shot.part.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=80x48:rate=25:duration=0.4", "-c:v", "ffv1",
           str(tmp))
    os.replace(tmp, film)
    assert media._video_meta(film).display_size == (80, 48) and len(calls) == n + 2
    assert next(iter_frames(film, 0, 1)).shape == (48, 80)


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


def test_intra_only_streams_seek_from_the_first_second(clips):
    # FFmpeg's default FFV1 GOP is 12 frames and the H.264 clip has B-frames: cautious margins
    assert not media._video_meta(clips["mp4"]).intra_only
    assert not media._video_meta(clips["mkv"]).intra_only
    meta = media._video_meta(clips["intra"])
    assert meta.intra_only
    assert media._seek_plan(meta, 10) is None          # 0.42 s in: decoded from the start
    plan = media._seek_plan(meta, 60)                   # 2.5 s in: seeks, default constants
    assert plan is not None and plan[0] == pytest.approx(plan[1] + 60 / plan[2] - 0.25)
    assert media._seek_plan(media._video_meta(clips["mkv"]), 60) is None
    full = np.stack(list(iter_frames(clips["intra"], pix_fmt="rgb24")))
    ref = np.stack(list(iter_frames(clips["mp4"], pix_fmt="rgb24")))
    assert np.array_equal(full, ref)                    # lossless copy of the same pictures
    for a, b in [(12, 13), (13, 40), (30, 76), (60, 61), (50, None), (95, 96)]:
        got = np.stack(list(iter_frames(clips["intra"], a, b, pix_fmt="rgb24")))
        assert np.array_equal(got, full[a:b]), (a, b)
    small = np.stack(list(iter_frames(clips["intra"], 0, None, width=48)))
    assert np.array_equal(np.stack(list(iter_frames(clips["intra"], 40, 70, width=48))),
                          small[40:70])


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

    # the shot work files' codec: lossless RGB too, same bytes for the same frames, any threads
    assert media.WORK_CODEC == "utvideo"
    for name in ("u1.mkv", "u2.mkv"):
        with FrameWriter(tmp_path / name, 30, 20, "24000/1001", codec=media.WORK_CODEC) as w:
            for f in rgb:
                w.write(f)
    assert (tmp_path / "u1.mkv").read_bytes() == (tmp_path / "u2.mkv").read_bytes()
    info = probe(tmp_path / "u1.mkv")
    assert (info.video_codec, info.pix_fmt, info.n_frames) == ("utvideo", "gbrp", 5)
    assert media._video_meta(tmp_path / "u1.mkv").intra_only
    assert np.array_equal(np.stack(list(iter_frames(tmp_path / "u1.mkv", pix_fmt="rgb24"))), rgb)
    assert np.array_equal(np.stack(list(iter_frames(tmp_path / "u1.mkv", 2, 4, pix_fmt="rgb24"))),
                          rgb[2:4])
    with pytest.raises(ValueError, match="gray frames with codec='ffv1'"):
        FrameWriter(tmp_path / "ug.mkv", 30, 20, 25, pix_fmt_in="gray", codec="utvideo")
    with pytest.raises(ValueError, match="codec must be"):
        FrameWriter(tmp_path / "x.mkv", 30, 20, 25, codec="h264")

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
    assert leftovers == ["a.mkv", "b.mkv", "g.mkv", "u1.mkv", "u2.mkv"]


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


# --------------------------------------------------------------------------------------------
# issue 3: probe details, fixity, frame-exact streaming on a real film, bounded memory
# --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def test_probe_keeps_16fps_and_ntsc_rates_exact(tmp_path):
    for rate, ext in (("16", "mkv"), ("16", "mp4"), ("24000/1001", "mov"), ("30000/1001", "mp4")):
        p = tmp_path / f"r{rate.replace('/', '_')}.{ext}"
        ffmpeg("-f", "lavfi", "-i", f"testsrc=size=64x48:rate={rate}:duration=2", "-c:v",
               "libx264", "-pix_fmt", "yuv420p", str(p))
        info = probe(p, deep=True)
        want = rate if "/" in rate else f"{rate}/1"
        assert info.fps == want and info.avg_fps == want, (p, info.fps)
        assert not info.is_vfr and info.frame_timing["constant"] is True
        assert info.n_frames == round(2 * Fraction(rate))
        assert info.duration_s == pytest.approx(info.n_frames / float(Fraction(rate)), abs=0.05)


def test_probe_drop_frame_timecode_and_several_audio_streams(tmp_path):
    p = tmp_path / "df.mov"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=30000/1001:duration=1",
           "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1",
           "-f", "lavfi", "-i", "sine=frequency=600:sample_rate=44100:duration=1",
           "-map", "0", "-map", "1", "-map", "2", "-c:v", "ffv1", "-c:a:0", "pcm_s24le",
           "-c:a:1", "pcm_s16le", "-timecode", "00:59:59;28", str(p))
    info = probe(p)
    assert info.timecode == "00:59:59;28"
    assert [(a["codec"], a["sample_rate"], a["bits_per_sample"]) for a in info.audio_streams] \
        == [("pcm_s24le", 48000, 24), ("pcm_s16le", 44100, 16)]


def test_probe_counts_frames_when_container_count_is_wrong(tmp_path):
    """An AVI whose stream header claims 500 frames (and a matching duration) holds 48."""
    import struct

    good = tmp_path / "good.avi"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=16:duration=3", "-c:v", "mpeg4",
           str(good))
    data = bytearray(good.read_bytes())
    strh = data.find(b"strh")
    assert data[strh + 8:strh + 12] == b"vids"
    assert struct.unpack("<I", data[strh + 40:strh + 44]) == (48,)   # dwLength
    data[strh + 40:strh + 44] = struct.pack("<I", 500)
    avih = data.find(b"avih")
    data[avih + 24:avih + 28] = struct.pack("<I", 500)              # dwTotalFrames
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    shallow = probe(bad)
    assert shallow.n_frames == 500          # header and duration agree: looks plausible
    deep = probe(bad, deep=True)            # packet count disagrees: counted by decoding
    assert deep.n_frames == 48 == count_frames(bad)
    assert deep.frame_count_source == "decoded" and deep.header_n_frames == 500
    assert deep.duration_s == pytest.approx(3.0) and deep.fps == "16/1"
    conditions = [n["detail"]["condition"] for n in media.source_notes(deep)]
    assert "wrong container frame count" in conditions and "no audio" in conditions


def test_probe_ten_bit_sources(tmp_path):
    for codec, pix, ext in (("ffv1", "yuv422p10le", "mkv"), ("prores_ks", "yuv422p10le", "mov"),
                            ("ffv1", "gbrp12le", "mkv")):
        p = tmp_path / f"{codec}-{pix}.{ext}"
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=0.4", "-c:v", codec,
               "-pix_fmt", pix, str(p))
        info = probe(p)
        assert info.pix_fmt == pix and info.bit_depth == int(pix[-4:-2]), (p, info.bit_depth)


def test_deep_probe_measures_vfr_and_interlacing(tmp_path):
    vfr = tmp_path / "vfr.mp4"     # every 5th frame dropped, timestamps kept: 20 of 25 fps
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=4", "-vf",
           "select='not(eq(mod(n\\,5)\\,2))'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(vfr))
    info = probe(vfr, deep=True)
    assert info.fps == "25/1" and info.avg_fps == "20/1" and info.n_frames == 80
    t = info.frame_timing
    assert t["n_packets"] == 80 and t["constant"] is False
    assert t["min_interval_s"] == pytest.approx(0.04) and t["max_interval_s"] == pytest.approx(0.08)
    assert info.is_vfr and media.cfr_rate(info) == Fraction(25)

    # a photo panning at 50 fps woven into 25 fps top-field-first frames, without any flag:
    # idet alone must find it (idet judges real picture content well, tiny test patterns not)
    inter = tmp_path / "inter.mkv"
    write_pan(inter, 60, 1, "50", vf="tinterlace=mode=interleave_top,setfield=prog")
    info = probe(inter, deep=True)
    assert info.field_order in (None, "progressive") and info.n_frames == 30
    assert info.interlace["verdict"] == "tff" and info.interlace["tff"] >= 25
    assert info.is_interlaced and info.scan_order == "tff"
    prog = tmp_path / "prog.mkv"
    write_pan(prog, 30, 2, "25")
    info = probe(prog, deep=True)
    assert info.interlace["verdict"] == "progressive" and not info.is_interlaced
    assert info.frame_timing["constant"] is True and not info.is_vfr


def write_pan(path: Path, n: int, step_px: int, rate: str, vf: str | None = None,
              extra: tuple[str, ...] = ()) -> Path:
    """A colour photo (skimage astronaut) panning by ``step_px`` per frame, FFV1."""
    import cv2
    from skimage import data

    img = cv2.resize(data.astronaut(), (320 + step_px * n, 260))
    frames = b"".join(np.ascontiguousarray(img[10:250, i * step_px:i * step_px + 320]).tobytes()
                      for i in range(n))
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", "320x240", "-r", rate, "-i", "-"]
    cmd += (["-vf", vf] if vf else []) + ["-c:v", "ffv1", *extra, str(path)]
    subprocess.run(cmd, input=frames, check=True)
    return path


def test_check_fixity_is_read_only_and_fails_loudly(clips, tmp_path):
    src = tmp_path / "film.mp4"
    src.write_bytes(clips["mp4"].read_bytes())
    os.chmod(src, 0o444)
    before = (src.stat().st_mtime_ns, sha256_file(src))
    res = media.check_fixity(src, expected_sha256=before[1])
    assert res.sha256 == before[1] and res.info.frame_timing is not None
    list(iter_frames(src, 10, 12))
    write_framemd5(src, tmp_path / "x.framemd5")
    assert (src.stat().st_mtime_ns, sha256_file(src)) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".film")]  # no temp files
    with pytest.raises(media.FixityError, match="fixity failure"):
        media.check_fixity(src, expected_sha256="0" * 64)
    with pytest.raises(media.FixityError, match="after the run"):
        media.verify_fixity(src, "f" * 64)


def _bikes() -> Path:
    p = REPO / "var" / "samples" / "bikes.mp4"
    if not p.is_file():
        from reel.tasks import samples

        try:
            samples.fetch_samples(p.parent)    # cached there for later runs
        except samples.SampleError as exc:
            pytest.skip(f"bikes.mp4 is not cached and could not be fetched: {exc}")
    return p


def test_bikes_frames_30_to_75_equal_a_full_decode():
    bikes = _bikes()
    assert probe(bikes).n_frames == 250
    for pix_fmt in ("rgb24", "gray"):
        full_slice = [f for i, f in enumerate(iter_frames(bikes, pix_fmt=pix_fmt))
                      if 30 <= i <= 75]
        ranged = list(iter_frames(bikes, 30, 76, pix_fmt=pix_fmt))
        assert len(ranged) == len(full_slice) == 46
        for k, (a, b) in enumerate(zip(ranged, full_slice)):
            assert a.dtype == np.uint8 and np.array_equal(a, b), (pix_fmt, 30 + k)
        # neighbours differ: an off-by-one would be caught (30 and 76 are cuts)
        before = next(iter_frames(bikes, 29, 30, pix_fmt=pix_fmt))
        assert not np.array_equal(before, ranged[0])


_PEAK_SCRIPT = r"""
import json, resource, sys
from reel.tasks.media import iter_frames
n = 0
checksum = 0
for f in iter_frames(sys.argv[1], pix_fmt="rgb24"):
    n += 1
    checksum ^= int(f[::64, ::64].sum())
with open("/proc/self/status") as fh:
    hwm = next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:"))
print(json.dumps({"frames": n, "python_peak_kb": hwm,
                  "children_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _decode_peak(path: Path) -> dict:
    import sys

    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.mark.slow
def test_decoding_1_and_10_minutes_uses_the_same_peak_memory(tmp_path):
    """Peak RSS of a process that streams every frame (and of its ffmpeg child) does not grow
    with the length of the film: 1 min and 10 min of 320x240 video within +-20 %."""
    peaks = {}
    for minutes in (1, 10):
        p = tmp_path / f"{minutes}min.mkv"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={60 * minutes}",
               "-c:v", "mpeg4", "-q:v", "8", "-g", "250", str(p))
        peaks[minutes] = _decode_peak(p)
        assert peaks[minutes]["frames"] == 1500 * minutes
    print("peak memory (kB):", peaks)
    for key in ("python_peak_kb", "children_peak_kb"):
        one, ten = peaks[1][key], peaks[10][key]
        assert abs(ten - one) <= 0.2 * one, (key, one, ten)
    total = {m: p["python_peak_kb"] + p["children_peak_kb"] for m, p in peaks.items()}
    assert abs(total[10] - total[1]) <= 0.2 * total[1]
