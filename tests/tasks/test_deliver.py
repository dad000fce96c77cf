"""Tests of reel.tasks.deliver: reassembly of shot intermediates into the master, access copy."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fractions import Fraction

from reel.tasks.deliver import (
    DeliverableError,
    check_conformance,
    deliver_item,
    framemd5_sidecar,
    make_access,
    make_mezzanine,
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


# --------------------------------------------------------------------------------------------
# issue 3: mezzanine, lossless proof, audio identity, 10-bit masters, conformance, full set
# --------------------------------------------------------------------------------------------

import json  # noqa: E402
import shutil  # noqa: E402

from reel.tasks import deliver as dl  # noqa: E402
from reel.tasks.media import count_frames  # noqa: E402

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "mediaconch" / "reel-ffv1-master.xml"
needs_mediaconch = pytest.mark.skipif(shutil.which("mediaconch") is None,
                                      reason="mediaconch is not installed (make test installs it)")


def stream_info(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "stream=codec_name,codec_type,profile,pix_fmt,width,height,field_order,"
                          "color_space:stream_tags=language", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def format_tags(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of",
                          "json", str(path)], capture_output=True, text=True, check=True).stdout
    return {k.lower(): v for k, v in json.loads(out)["format"].get("tags", {}).items()}


def shots_from(src: Path, d: Path, cuts: list[int], info) -> list[Path]:
    """Shot intermediates of ``src`` split at ``cuts``, each changed visibly (see restore)."""
    bounds = [0, *cuts, info.n_frames]
    w, h = info.display_size
    paths = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        p = d / f"shot-{i:04d}.mkv"
        with FrameWriter(p, w, h, info.fps) as fw:
            for f in iter_frames(src, a, b, pix_fmt="rgb24"):
                fw.write(restore(f, i % 2))
        paths.append(p)
    return paths


def test_master_proves_losslessness_and_audio_identity(film, tmp_path):
    master, detail = dl._make_master(film["shots"], film["src"], tmp_path / "m.mkv",
                                     info=film["info"], metadata=META, audio_info=None)
    assert detail["pix_fmt"] == "bgr0" and detail["bit_depth"] == 8
    assert detail["n_frames"] == 48 and detail["timecode"] == "01:00:00:00"
    assert "framemd5" in detail["lossless_check"]
    assert [a["compared"] for a in detail["audio"]] == ["decoded samples"]
    assert detail["audio"][0]["md5"] == dl.audio_md5s(film["src"])[0]
    # the framemd5 sidecar lists exactly the MD5s of the frames fed in (bgr0 bytes)
    hashes = dl._framemd5_hashes(framemd5_sidecar(master))
    import hashlib
    assert hashes == [hashlib.md5(dl.native_frame(f, "bgr0")).hexdigest()
                      for f in film["frames"]]


def test_master_from_aac_in_mp4_compares_packets(tmp_path):
    src = tmp_path / "aac.mp4"
    make_film(src, "aac")
    info = probe(src)
    shots = shots_from(src, tmp_path, [CUT], info)
    master, detail = dl._make_master(shots, src, tmp_path / "m.mkv", info=info, metadata=META,
                                     audio_info=None)
    ev = detail["audio"][0]
    assert ev["compared"] == "packets" and "priming" in ev["note"]
    assert dl.audio_md5s(master, decoded=False) == dl.audio_md5s(src, decoded=False)


def test_master_rejects_audio_that_differs(film, tmp_path, monkeypatch):
    real = dl.audio_md5s

    def corrupt(path, **kw):
        out = real(path, **kw)
        return ["0" * 32 for _ in out] if Path(path).suffix == ".mkv" else out

    monkeypatch.setattr(dl, "audio_md5s", corrupt)
    with pytest.raises(DeliverableError, match="not bit-identical"):
        reassemble_master(film["shots"], film["src"], tmp_path / "m.mkv", info=film["info"])
    assert list(tmp_path.iterdir()) == []


def test_master_rejects_a_wrong_timecode(film, tmp_path):
    wrong = dataclasses.replace(film["info"], timecode="02:00:00:00")
    master = reassemble_master(film["shots"], film["src"], tmp_path / "m.mkv", info=film["info"])
    with pytest.raises(DeliverableError, match="timecode"):
        dl._verify(master, 48, Fraction(24000, 1001), 1, wrong, timecode="01:00:00:00")


def test_mezzanine_prores_hq_pcm_exact_and_deterministic(film):
    out = film["dir"] / "film.mezzanine.mov"
    make_mezzanine(film["master"], out, source=film["src"], info=film["info"], metadata=META)
    v, a, *_ = stream_info(out)
    assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("prores", "HQ", "yuv422p10le")
    assert v["color_space"] == "bt709"
    assert (v["width"], v["height"]) == (80, 48)
    assert a["codec_name"] == "pcm_s16le"        # 16-bit source stays 16-bit
    m = probe(out)
    assert m.container.startswith("mov") and m.fps == "24000/1001" and not m.is_vfr
    assert count_frames(out) == 48 and m.timecode == "01:00:00:00"
    assert format_tags(out)["comment"] == META["comment"]
    # PCM from PCM: the decoded samples are the source's
    assert dl.audio_md5s(out) == dl.audio_md5s(film["src"])
    # close to the master (10-bit 4:2:2 ProRes HQ)
    got = np.stack(list(iter_frames(out, pix_fmt="rgb24"))).astype(np.float32)
    mse = float(np.mean((got - film["frames"].astype(np.float32)) ** 2))
    assert 10 * np.log10(255.0 ** 2 / mse) > 32.0
    again = film["dir"] / "again.mezzanine.mov"
    make_mezzanine(film["master"], again, source=film["src"], info=film["info"], metadata=META)
    assert again.read_bytes() == out.read_bytes()


def test_mezzanine_24bit_for_deep_or_lossy_audio(tmp_path):
    src = tmp_path / "s24.mkv"
    make_film(src, "pcm_s24le")
    info = probe(src)
    shots = shots_from(src, tmp_path, [CUT], info)
    master = reassemble_master(shots, src, tmp_path / "m.mkv", info=info, metadata=META)
    out = make_mezzanine(master, tmp_path / "z.mov", source=src, info=info, metadata=META)
    assert [s["codec_name"] for s in stream_info(out) if s["codec_type"] == "audio"] == \
        ["pcm_s24le"]
    assert dl.audio_md5s(out) == dl.audio_md5s(src)


def test_ten_bit_source_gets_a_ten_bit_master(tmp_path):
    src = tmp_path / "tenbit.mov"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1",
           "-f", "lavfi", "-i", "sine=sample_rate=48000:duration=1",
           "-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
           "-c:a", "pcm_s24le", "-timecode", "10:00:00:00", str(src))
    info = probe(src)
    assert info.bit_depth == 10
    shots = shots_from(src, tmp_path, [10], info)
    done = deliver_item(shots, src, tmp_path / "out", info=info, stem="tenbit", metadata=META)
    master = done.path_of("master")
    v = stream_info(master)[0]
    assert v["pix_fmt"] == "gbrp10le"
    m = [f for f in done.files if f.kind == "master"][0]
    assert m.detail["bit_depth"] == 10 and "8-bit precision" in m.detail["precision_note"]
    # the 10-bit values are the 8-bit restored values scaled up by bit replication
    raw = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(master), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gbrp10le", "-"], capture_output=True,
                         check=True).stdout
    planes = np.frombuffer(raw, "<u2").reshape(3, 48, 64)      # G, B, R
    first = next(iter_frames(shots[0], pix_fmt="rgb24")).astype(np.uint16)
    want = (first << 2) | (first >> 6)
    assert np.array_equal(planes[0], want[..., 1]) and np.array_equal(planes[2], want[..., 0])
    assert probe(master).timecode == "10:00:00:00"


def test_deliver_item_makes_the_full_verified_set(film, tmp_path):
    done = deliver_item(film["shots"], film["src"], tmp_path / "out", info=film["info"],
                        stem="film", metadata=META)
    kinds = [f.kind for f in done.files]
    assert kinds == ["master", "framemd5", "mezzanine", "access"]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["film.access.mp4", "film.master.mkv", "film.master.mkv.framemd5",
                     "film.mezzanine.mov"]                     # no temporary files left
    for f in done.files:
        assert f.sha256 == sha256(f.path) and f.fps == "24000/1001"
        if f.kind != "framemd5":
            assert f.n_frames == 48 == count_frames(f.path)
            assert format_tags(f.path)["comment"] == META["comment"]
            assert f.detail["tool"].startswith("ffmpeg ")
    assert [i["sha256"] for i in done.inputs] == [sha256(p) for p in film["shots"]]
    only = deliver_item(film["shots"], film["src"], tmp_path / "o2", info=film["info"],
                        stem="film", metadata=META, kinds=("master",))
    assert [f.kind for f in only.files] == ["master", "framemd5"]
    with pytest.raises(ValueError, match="unknown deliverable"):
        deliver_item(film["shots"], film["src"], tmp_path / "o3", info=film["info"],
                     stem="film", kinds=("dvd",))
    # the flow makes the master, then the copies from it (conformance runs in between): the
    # same files, byte for byte, as deliver_item's
    from reel.tasks.deliver import deliver_copies, deliver_master

    m = deliver_master(film["shots"], film["src"], tmp_path / "o4", info=film["info"],
                       stem="film", metadata=META)
    assert [f.kind for f in m.files] == ["master", "framemd5"] and m.inputs == done.inputs
    split = deliver_copies(m, film["src"], tmp_path / "o4", info=film["info"], stem="film",
                           metadata=META)
    assert [(f.kind, f.sha256) for f in split.files] == [(f.kind, f.sha256) for f in done.files]
    assert split.inputs == done.inputs


def sha256(path: Path) -> str:
    from reel.tasks.media import sha256_file

    return sha256_file(path)


@needs_mediaconch
def test_conformance_of_the_master(film, tmp_path):
    r = check_conformance(film["master"], POLICY)
    assert r.checked and r.passed, r.summary
    assert r.policy_name == "reel FFV1/Matroska preservation master" and r.rules_run >= 10
    assert r.implementation["fail_count"] == 0 and r.tool.startswith("MediaConch")
    assert r.summary.startswith("pass")
    # a non-conforming FFV1 file: long GOP, no slice CRC, no disclosure
    bad = tmp_path / "bad.mkv"
    ffmpeg("-i", str(film["master"]), "-map", "0:v", "-c:v", "ffv1", "-level", "1", "-g", "12",
           "-map_metadata", "-1", str(bad))
    r = check_conformance(bad, POLICY)
    assert r.checked and r.passed is False and r.summary.startswith("fail")
    failed = {x["name"] for x in r.failed_rules}
    assert {"FFV1 GOP size is 1 (intra only)", "FFV1 slices carry CRCs",
            "Disclosure of AI-derived colour in the comment tag"} <= failed
    # rewriting a file at the same path must not give MediaConch's cached (stale) verdict
    shutil.copyfile(film["master"], bad)
    assert check_conformance(bad, POLICY).passed
    detail = json.loads(json.dumps(r.to_detail()))
    assert detail["passed"] is False and detail["failed_rules"]


def test_conformance_not_checked_without_tool_or_policy(film, tmp_path, monkeypatch):
    r = check_conformance(film["master"], tmp_path / "missing.xml")
    assert not r.checked and r.passed is None and "not found" in r.summary
    monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    r = check_conformance(film["master"], POLICY)
    assert not r.checked and "not installed" in r.summary
