"""Odd sources, handled and recorded: odd frame sizes, rotation metadata, variable frame rate,
interlacing (idet; bwdif when asked), no audio, several audio streams.

Every source is generated with ffmpeg in the test; "restored" shots are the source's frames
with a visible per-shot change, so the deliverables can be checked pixel for pixel.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks import deliver as dl
from reel.tasks import media
from reel.tasks.media import FrameWriter, iter_frames, prepare_source, probe, sha256_file

META = {"comment": "colour is AI-derived by reel 0.1.0"}


def ffmpeg(*args: str, input: bytes | None = None) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, input=input)


def streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_type,codec_name,width,height,field_order:"
                          "stream_tags=language:stream_side_data=rotation", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def conditions(info, **kw) -> list[str]:
    return [n["detail"]["condition"] for n in media.source_notes(info, **kw)]


def make_shots(src: Path, d: Path, info, cuts=()) -> tuple[list[Path], list[np.ndarray]]:
    """Shot intermediates of the decoded ``src`` (display orientation), inverted per shot."""
    bounds = [0, *cuts, info.n_frames]
    w, h = info.display_size
    paths, frames = [], []
    d.mkdir(parents=True, exist_ok=True)
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        p = d / f"shot-{i:04d}.mkv"
        with FrameWriter(p, w, h, info.fps) as fw:
            for f in iter_frames(src, a, b, pix_fmt="rgb24"):
                r = 255 - f if i % 2 == 0 else f[..., ::-1].copy()
                fw.write(r)
                frames.append(r)
        paths.append(p)
    return paths, frames


def pan_frames(n: int, step_px: int, w: int = 320, h: int = 240) -> bytes:
    img = cv2.resize(data.astronaut(), (w + step_px * n, h + 20))
    return b"".join(np.ascontiguousarray(img[10:10 + h, i * step_px:i * step_px + w]).tobytes()
                    for i in range(n))


def test_odd_frame_size_master_exact_copies_padded(tmp_path):
    src = tmp_path / "odd.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=641x359:rate=25:duration=0.4",
           "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=0.4",
           "-c:v", "ffv1", "-pix_fmt", "bgr0", "-c:a", "pcm_s16le",
           "-timecode", "00:00:10:00", str(src))
    info = probe(src, deep=True)
    assert (info.width, info.height, info.n_frames) == (641, 359, 10)
    assert conditions(info) == ["odd frame size"]
    note = media.source_notes(info)[0]
    assert note["outcome"] == "warning" and "642x360" in note["detail"]["action"]
    shots, frames = make_shots(src, tmp_path / "shots", info, cuts=(4,))
    done = dl.deliver_item(shots, src, tmp_path / "out", info=info, stem="odd", metadata=META)
    master = done.path_of("master")
    assert (streams(master)[0]["width"], streams(master)[0]["height"]) == (641, 359)
    assert np.array_equal(np.stack(list(iter_frames(master, pix_fmt="rgb24"))),
                          np.stack(frames))
    for kind in ("mezzanine", "access"):
        f = next(x for x in done.files if x.kind == kind)
        assert f.detail["padded_to"] == [642, 360] and f.detail["size"] == [642, 360]
        v = streams(f.path)[0]
        assert (v["width"], v["height"]) == (642, 360)
        last = next(iter_frames(f.path, 0, 1, pix_fmt="rgb24"))
        assert np.median(last[:, -1]) < 20 and np.median(last[-1, :]) < 20   # black padding
        assert probe(f.path).timecode == "00:00:10:00"


def test_rotation_metadata_gives_upright_deliverables(tmp_path):
    stored = tmp_path / "stored.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=0.6", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(stored))
    src = tmp_path / "phone.mp4"
    ffmpeg("-i", str(stored), "-c", "copy", "-metadata:s:v", "rotate=90", str(src))
    info = probe(src, deep=True)
    # FFmpeg 5.1 turns the legacy tag into a display matrix of +90 degrees counter-clockwise
    # (ffprobe "rotation": 90), i.e. 270 degrees clockwise in reel's convention
    assert info.rotation_deg == 270 and info.display_size == (64, 96)
    assert "rotation metadata" in conditions(info)
    upright = next(iter_frames(src, 0, 1, pix_fmt="rgb24"))
    stored0 = next(iter_frames(stored, 0, 1, pix_fmt="rgb24"))
    assert upright.shape == (96, 64, 3)
    assert np.array_equal(upright, np.rot90(stored0, k=1))    # 90 ccw = 270 clockwise
    shots, frames = make_shots(src, tmp_path / "shots", info)
    done = dl.deliver_item(shots, src, tmp_path / "out", info=info, stem="phone",
                           metadata=META, kinds=("master", "access"))
    for f in (done.path_of("master"), done.path_of("access")):
        v = streams(f)[0]
        assert (v["width"], v["height"]) == (64, 96) and not v.get("side_data_list")
        assert probe(f).rotation_deg == 0
    assert np.array_equal(next(iter_frames(done.path_of("master"), 0, 1, pix_fmt="rgb24")),
                          frames[0])


def test_variable_frame_rate_becomes_constant_and_original_stays_untouched(tmp_path):
    src = tmp_path / "vfr.mp4"
    # 25 fps with every 5th frame dropped (timestamps kept: 40/80 ms gaps) + AAC audio
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=4",
           "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=4",
           "-vf", "select='not(eq(mod(n\\,5)\\,2))'", "-fps_mode", "vfr",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-timecode", "01:02:03:04", str(src))
    os.chmod(src, 0o444)
    before = (src.stat().st_mtime_ns, sha256_file(src))
    info = probe(src, deep=True)
    assert info.is_vfr and info.n_frames == 80
    work = tmp_path / "work"
    ds = prepare_source(src, work, info=info)
    assert ds.normalised and ds.path.parent == work and ds.path != src
    assert ds.info.fps == "25/1" and ds.info.n_frames == 100
    assert not probe(ds.path, deep=True).is_vfr
    assert ds.info.timecode == "01:02:03:04" and ds.original is info
    kinds = [(n["event_type"], n["outcome"]) for n in ds.notes]
    assert ("metadata extraction", "warning") in kinds and ("normalization", "warning") in kinds
    norm = next(n for n in ds.notes if n["event_type"] == "normalization")["detail"]
    assert norm["reason"] == "variable frame rate"
    assert norm["source"]["sha256"] == before[1] and norm["output"]["sha256"] == ds.sha256
    assert norm["output"]["n_frames"] == 100 and norm["reused"] is False
    # frames were duplicated where the source had gaps (frame 2 of each 5 is a copy of 1)
    f1, f2, f3 = list(iter_frames(ds.path, 1, 4, pix_fmt="rgb24"))
    assert np.array_equal(f1, f2) and not np.array_equal(f2, f3)
    again = prepare_source(src, work, info=info)
    assert again.sha256 == ds.sha256 and \
        next(n for n in again.notes if n["event_type"] == "normalization")["detail"]["reused"]
    # the deliverables follow the constant-rate decode source, audio from the original
    shots, _ = make_shots(ds.path, tmp_path / "shots", ds.info, cuts=(50,))
    done = dl.deliver_item(shots, src, tmp_path / "out", info=ds.info, stem="vfr",
                           metadata=META, audio_info=ds.original, kinds=("master",))
    m = probe(done.path_of("master"), deep=True)
    assert m.fps == "25/1" and m.n_frames == 100 and not m.is_vfr
    assert m.timecode == "01:02:03:04"
    ev = next(f for f in done.files if f.kind == "master").detail["audio"][0]
    assert ev["compared"] == "packets"      # AAC from MP4: packet payloads identical
    assert (src.stat().st_mtime_ns, sha256_file(src)) == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["out", "shots", "vfr.mp4", "work"]


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory) -> Path:
    """A photo panning at 50 fps woven into 25 fps frames, flagged top field first."""
    src = tmp_path_factory.mktemp("interlaced") / "tape.mkv"
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "320x240", "-r", "50", "-i", "-",
           "-vf", "tinterlace=mode=interleave_top,setfield=tff", "-c:v", "ffv1",
           "-pix_fmt", "yuv422p", "-field_order", "tt", str(src), input=pan_frames(40, 2))
    return src


def test_interlaced_kept_woven_by_default_and_flagged(interlaced, tmp_path):
    info = probe(interlaced, deep=True)
    assert info.field_order == "tt" and info.interlace["verdict"] == "tff" and info.n_frames == 20
    ds = prepare_source(interlaced, tmp_path / "work", info=info)
    assert not ds.normalised and ds.path == interlaced
    note = next(n for n in ds.notes if n["detail"]["condition"] == "interlaced")
    assert note["outcome"] == "warning" and "processing.deinterlace" in note["detail"]["action"]
    assert note["detail"]["idet"]["tff"] >= 15
    shots, _ = make_shots(interlaced, tmp_path / "shots", info)
    done = dl.deliver_item(shots, interlaced, tmp_path / "out", info=info, stem="tape",
                           metadata=META, kinds=("master", "mezzanine"))
    assert streams(done.path_of("master"))[0]["field_order"] in ("tt", "tb")
    assert streams(done.path_of("mezzanine"))[0]["field_order"] == "tt"


def test_interlaced_deinterlaced_with_bwdif_when_asked(interlaced, tmp_path):
    info = probe(interlaced, deep=True)
    ds = prepare_source(interlaced, tmp_path / "work", info=info, deinterlace=True)
    assert ds.normalised and ds.info.n_frames == info.n_frames == 20     # one frame per frame
    assert ds.info.fps == "25/1" and ds.info.field_order in (None, "progressive")
    norm = next(n for n in ds.notes if n["event_type"] == "normalization")
    assert norm["outcome"] == "success" and norm["detail"]["reason"] == "deinterlace"
    assert "bwdif" in norm["detail"]["action"]
    assert probe(ds.path, deep=True).interlace["verdict"] != "tff"
    # deinterlacing removes the combing: rows differ much less from their neighbours
    def comb(frame):
        g = frame.astype(np.float32).mean(axis=2)
        return float(np.abs(g[1:-1] - (g[:-2] + g[2:]) / 2).mean())
    woven = next(iter_frames(interlaced, 10, 11, pix_fmt="rgb24"))
    clean = next(iter_frames(ds.path, 10, 11, pix_fmt="rgb24"))
    assert comb(clean) < 0.6 * comb(woven)


def test_no_audio_and_several_audio_streams(tmp_path):
    silent = tmp_path / "silent.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=0.5", "-c:v", "ffv1",
           str(silent))
    info = probe(silent)
    assert not info.has_audio and conditions(info) == ["no audio"]
    shots, _ = make_shots(silent, tmp_path / "s1", info)
    done = dl.deliver_item(shots, silent, tmp_path / "o1", info=info, stem="silent",
                           metadata=META, kinds=("master", "access"))
    for f in done.files:
        if f.kind != "framemd5":
            assert [s["codec_type"] for s in streams(f.path)
                    if s["codec_type"] != "data"] == ["video"]

    multi = tmp_path / "multi.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=0.5",
           "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=0.5",
           "-f", "lavfi", "-i", "sine=frequency=500:sample_rate=48000:duration=0.5",
           "-f", "lavfi", "-i", "sine=frequency=700:sample_rate=44100:duration=0.5",
           "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-c:v", "ffv1",
           "-c:a:0", "pcm_s16le", "-c:a:1", "flac", "-c:a:2", "aac",
           "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
           "-metadata:s:a:2", "language=deu", str(multi))
    info = probe(multi)
    assert len(info.audio_streams) == 3 and "several audio streams" in conditions(info)
    shots, _ = make_shots(multi, tmp_path / "s2", info, cuts=(6,))
    done = dl.deliver_item(shots, multi, tmp_path / "o2", info=info, stem="multi",
                           metadata=META)
    master = done.path_of("master")
    audio = [s for s in streams(master) if s["codec_type"] == "audio"]
    assert [a["codec_name"] for a in audio] == ["pcm_s16le", "flac", "aac"]
    assert [a["tags"]["language"] for a in audio] == ["eng", "fra", "deu"]
    evidence = next(f for f in done.files if f.kind == "master").detail["audio"]
    assert [e["stream"] for e in evidence] == [0, 1, 2]
    assert dl.audio_md5s(master) == dl.audio_md5s(multi)      # decoded samples identical
    mezz = [s["codec_name"] for s in streams(done.path_of("mezzanine"))
            if s["codec_type"] == "audio"]
    assert mezz == ["pcm_s16le", "pcm_s16le", "pcm_s24le"]   # flac is 16-bit, AAC is float
    acc = [s["codec_name"] for s in streams(done.path_of("access"))
           if s["codec_type"] == "audio"]
    assert acc == ["aac", "aac", "aac"]
