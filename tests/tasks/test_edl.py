"""Tests for reel.tasks.edl: timecode, CMX3600 EDL and CSV writers/parsers."""

from __future__ import annotations

import re

import pytest

from reel.tasks.edl import (
    ShotRow,
    csv_text,
    edl_text,
    frames_to_timecode,
    nominal_rate,
    parse_csv,
    parse_edl,
    timecode_to_frames,
    write_csv,
    write_edl,
)
from reel.tasks.shots import Shot


def test_nominal_rates():
    assert nominal_rate("24000/1001") == 24
    assert nominal_rate("25/1") == 25
    assert nominal_rate("30000/1001") == 30
    assert nominal_rate(24) == 24


@pytest.mark.parametrize("fps,base", [("24000/1001", 24), ("25/1", 25), ("24/1", 24)])
def test_non_drop_frame_is_exact_frame_counting(fps, base):
    for f in list(range(0, 5000, 37)) + [base * 3600 - 1, base * 3600, base * 3600 * 10 + 7]:
        tc = frames_to_timecode(f, fps)
        assert re.fullmatch(r"\d\d:\d\d:\d\d:\d\d", tc)
        hh, mm, ss, ff = map(int, tc.split(":"))
        assert ((hh * 60 + mm) * 60 + ss) * base + ff == f
        assert timecode_to_frames(tc, fps) == f
    # 23.976 fps: one timecode hour is 86400 frames, i.e. 3603.6 s of real time (NDF drifts)
    assert frames_to_timecode(86400, "24000/1001") == "01:00:00:00"
    assert frames_to_timecode(90000, "25/1") == "01:00:00:00"


def test_drop_frame_29_97():
    fps = "30000/1001"
    assert frames_to_timecode(1799, fps, drop_frame=True) == "00:00:59;29"
    assert frames_to_timecode(1800, fps, drop_frame=True) == "00:01:00;02"  # ;00 and ;01 skipped
    assert frames_to_timecode(17982, fps, drop_frame=True) == "00:10:00;00"  # not at tenth minute
    assert frames_to_timecode(107892, fps, drop_frame=True) == "01:00:00;00"  # 1 h real time
    for f in range(0, 120000, 13):
        assert timecode_to_frames(frames_to_timecode(f, fps, drop_frame=True), fps) == f
    with pytest.raises(ValueError):
        timecode_to_frames("00:01:00;00", fps)  # does not exist
    with pytest.raises(ValueError):
        frames_to_timecode(10, "25/1", drop_frame=True)  # no drop-frame at 25 fps
    with pytest.raises(ValueError):
        timecode_to_frames("00:00:00:25", "25/1")  # frame field out of range


def _rows():
    return [ShotRow(0, 0, 30, "start", 1.0, "detected", 11), ShotRow(1, 30, 76, "dissolve", 0.83, "manual", 12),
            ShotRow(2, 76, 250, "splice", 0.5, "detected", 13)]


@pytest.mark.parametrize("fps", ["24000/1001", "25/1"])
def test_edl_is_parsable_and_frame_accurate(fps, tmp_path):
    path = write_edl(tmp_path / "a.edl", _rows(), fps=fps, title="reel test", clip_name="film.mkv",
                     start_timecode="10:00:00:00")
    raw = path.read_bytes()
    assert b"\r\n" in raw and raw.isascii()
    text = raw.decode()
    lines = text.splitlines()
    assert lines[0] == "TITLE: reel test" and lines[1] == "FCM: NON-DROP FRAME"
    events = [ln for ln in lines if re.match(r"^\d{3}  ", ln)]
    assert len(events) == 3
    for ln in events:  # CMX3600 columns
        assert re.fullmatch(r"\d{3}  AX       V     C        (\d\d:\d\d:\d\d:\d\d ){3}\d\d:\d\d:\d\d:\d\d", ln)
    edl = parse_edl(text, fps=fps)
    assert edl.title == "reel test" and not edl.drop_frame
    base = 10 * 3600 * nominal_rate(fps)
    assert [(e.src_in - base, e.src_out - base) for e in edl.events] == [(0, 30), (30, 76), (76, 250)]
    rec0 = 3600 * nominal_rate(fps)
    assert [(e.rec_in - rec0, e.rec_out - rec0) for e in edl.events] == [(0, 30), (30, 76), (76, 250)]
    assert edl.events[1].comments[0] == "FROM CLIP NAME: film.mkv"
    assert "dissolve confidence 0.8300 origin manual id 12" in edl.events[1].comments[1]
    # the out point is exclusive: shot 1 ends where shot 2 starts
    assert edl.events[0].src_out == edl.events[1].src_in


def test_edl_drop_frame_when_the_film_has_drop_frame_timecode():
    text = edl_text(_rows(), fps="30000/1001", title="t", clip_name="c.mov",
                    start_timecode="01:00:00;00")
    assert "FCM: DROP FRAME" in text and ";" in text.splitlines()[3]
    edl = parse_edl(text, fps="30000/1001")
    start = timecode_to_frames("01:00:00;00", "30000/1001")
    assert [e.src_in - start for e in edl.events] == [0, 30, 76]
    # asked for NDF explicitly
    assert "FCM: NON-DROP FRAME" in edl_text(_rows(), fps="30000/1001", title="t", clip_name="c",
                                             drop_frame=False)


def test_edl_from_shots_and_errors():
    text = edl_text([Shot(0, 10, "start", 1.0), Shot(10, 20, "cut", 0.7)], fps=25, title="x",
                    clip_name="x.mp4", reel="my reel!")
    assert "MYREEL" in text
    assert [(e.src_in, e.src_out) for e in parse_edl(text, fps=25).events] == [(0, 10), (10, 20)]
    with pytest.raises(ValueError):
        parse_edl("TITLE: x\nnot an event line\n", fps=25)
    with pytest.raises(ValueError):
        edl_text([ShotRow(0, 5, 5, "start", 1.0)], fps=25, title="x", clip_name="x")


def test_csv_round_trip_and_times(tmp_path):
    path = write_csv(tmp_path / "s.csv", _rows(), fps="24000/1001")
    text = path.read_text()
    header, first, second, _ = text.splitlines()
    assert header.startswith("shot_index,shot_id,start_frame,stop_frame,n_frames,start_timecode")
    assert second.split(",")[5:8] == ["00:00:01:06", "00:00:03:04", "00:00:01:22"]
    assert second.split(",")[8] == f"{30 * 1001 / 24000:.6f}"  # exact 23.976 time
    back = parse_csv(text)
    assert back == _rows()
    assert "00:00:01:05" in csv_text(_rows(), fps=25)
