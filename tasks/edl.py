"""Shot lists an editor can open: CMX3600 EDL and CSV, with frame-accurate timecode.

Timecode
--------
``HH:MM:SS:FF`` counts frames at the *nominal* integer rate of the film: 24 for 24 and
24000/1001 fps, 25 for 25, 30 for 30000/1001, 60 for 60000/1001. reel writes
**non-drop-frame** timecode by default (``FCM: NON-DROP FRAME``), for every rate: at 24000/1001
(23.976) and 25 fps there is no drop-frame timecode at all, so frame ``n`` is simply
``n // 24`` seconds and ``n % 24`` frames. Drop-frame timecode (``HH:MM:SS;FF``, SMPTE 12M:
frame numbers 0 and 1 (30000/1001) or 0-3 (60000/1001) skipped at every minute except each
tenth) is written only when asked for (``drop_frame=True``) or when the film's own start
timecode is drop-frame, and only at 30000/1001 or 60000/1001. Parsing reads both (a ``;`` or
``.`` before the frames means drop-frame).

EDL
---
One event per shot, all cuts (``C``): the shots are pieces of one source film whose
transitions are already in the picture, so an EDL dissolve would apply a second one. Source
in/out are the shot's frames on the film's timecode (``start_timecode``, 00:00:00:00 unless
the film carries one); record in/out run continuously from ``record_start`` (01:00:00:00).
Out points are exclusive, as CMX3600 requires. Each event carries comments:
``* FROM CLIP NAME: <file>`` and ``* REEL SHOT <index>: <transition> confidence <c> origin
<origin>``.

Example
-------
>>> rows = [ShotRow(0, 0, 30, "start", 1.0), ShotRow(1, 30, 76, "dissolve", 0.8)]
>>> text = edl_text(rows, fps="25/1", title="bikes", clip_name="bikes.mp4")
>>> print(text.splitlines()[3])
001  AX       V     C        00:00:00:00 00:00:01:05 01:00:00:00 01:00:01:05
>>> [(e.src_in, e.src_out) for e in parse_edl(text, fps="25/1").events]
[(0, 30), (30, 76)]
>>> frames_to_timecode(86400, "24000/1001")
'01:00:00:00'
>>> frames_to_timecode(17982, "30000/1001", drop_frame=True)
'00:10:00;00'
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from reel.tasks.media import fps_fraction

__all__ = [
    "CSV_COLUMNS",
    "EDL",
    "EDLEvent",
    "ShotRow",
    "csv_text",
    "edl_text",
    "frames_to_timecode",
    "nominal_rate",
    "parse_csv",
    "parse_edl",
    "timecode_to_frames",
    "write_csv",
    "write_edl",
]

_DF_RATES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}
_TC_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class ShotRow:
    """One shot as exported: frames ``[start, stop)`` and how its first boundary was found."""

    index: int
    start: int
    stop: int
    transition: str
    confidence: float
    origin: str = "detected"
    shot_id: int | None = None

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


def _rows(shots: Iterable[Any]) -> list[ShotRow]:
    """ShotRow objects from ShotRow or Shot-like objects (``start``, ``stop``, ...)."""
    out = []
    for i, s in enumerate(shots):
        if isinstance(s, ShotRow):
            out.append(s)
        else:
            out.append(ShotRow(int(getattr(s, "index", i)), int(s.start), int(s.stop),
                               str(getattr(s, "transition", "cut")),
                               float(getattr(s, "confidence", 1.0)),
                               str(getattr(s, "origin", "detected")), getattr(s, "shot_id", None)))
    for r in out:
        if r.stop <= r.start or r.start < 0:
            raise ValueError(f"invalid shot range [{r.start}, {r.stop})")
    return out


# --------------------------------------------------------------------------- timecode
def nominal_rate(fps: str | Fraction | int | float) -> int:
    """Integer frame count per timecode second: 24000/1001 -> 24, 25 -> 25, 30000/1001 -> 30."""
    f = fps_fraction(fps)
    if f <= 0:
        raise ValueError(f"invalid frame rate {fps!r}")
    return int(round(f))


def _drop_per_minute(fps: str | Fraction | int | float) -> int:
    d = _DF_RATES.get(fps_fraction(fps))
    if d is None:
        raise ValueError(f"drop-frame timecode exists only at 30000/1001 and 60000/1001, not {fps}")
    return d


def frames_to_timecode(frame: int, fps: str | Fraction | int | float, *,
                       drop_frame: bool = False) -> str:
    """Timecode of frame number ``frame`` (0 = 00:00:00:00) at ``fps``.

    >>> frames_to_timecode(1799, "30000/1001", drop_frame=True)
    '00:00:59;29'
    >>> frames_to_timecode(1800, "30000/1001", drop_frame=True)
    '00:01:00;02'
    >>> frames_to_timecode(1800, "30000/1001")
    '00:01:00:00'
    """
    frame = int(frame)
    if frame < 0:
        raise ValueError("timecode of a negative frame number")
    base = nominal_rate(fps)
    sep = ":"
    if drop_frame:
        d = _drop_per_minute(fps)
        per_min = 60 * base - d
        per_10min = 10 * 60 * base - 9 * d
        tens, rem = divmod(frame, per_10min)
        frame += 9 * d * tens
        if rem >= d:
            frame += d * ((rem - d) // per_min)
        sep = ";"
    ff = frame % base
    total_s = frame // base
    hh, rest = divmod(total_s, 3600)
    mm, ss = divmod(rest, 60)
    width = 3 if base > 100 else 2
    return f"{hh % 24:02d}:{mm:02d}:{ss:02d}{sep}{ff:0{width}d}"


def timecode_to_frames(tc: str, fps: str | Fraction | int | float, *,
                       drop_frame: bool | None = None) -> int:
    """Frame number of a timecode (inverse of :func:`frames_to_timecode`).

    ``drop_frame=None`` reads it from the separator before the frames (``;`` or ``.`` =
    drop-frame).

    >>> timecode_to_frames("00:01:00;02", "30000/1001")
    1800
    >>> timecode_to_frames("01:00:00:00", "24000/1001")
    86400
    """
    m = _TC_RE.match(tc.strip())
    if not m:
        raise ValueError(f"not a timecode: {tc!r}")
    hh, mm, ss, sep, ff = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    base = nominal_rate(fps)
    if mm > 59 or ss > 59 or ff >= base:
        raise ValueError(f"timecode {tc!r} out of range at {base} frames per second")
    df = sep in ";.," if drop_frame is None else bool(drop_frame)
    frames = (hh * 3600 + mm * 60 + ss) * base + ff
    if df:
        d = _drop_per_minute(fps)
        minutes = hh * 60 + mm
        if ss == 0 and ff < d and mm % 10 != 0:
            raise ValueError(f"{tc!r} does not exist in drop-frame timecode")
        frames -= d * (minutes - minutes // 10)
    return frames


# --------------------------------------------------------------------------- EDL
@dataclass
class EDLEvent:
    """One EDL event; in/out points as frame numbers (out exclusive)."""

    number: int
    reel: str
    track: str
    transition: str
    src_in: int
    src_out: int
    rec_in: int
    rec_out: int
    comments: list[str] = field(default_factory=list)


@dataclass
class EDL:
    title: str
    drop_frame: bool
    events: list[EDLEvent]


def _is_df_tc(tc: str | None) -> bool:
    return bool(tc) and bool(_TC_RE.match(tc.strip())) and _TC_RE.match(tc.strip())[4] in ";.,"


def edl_text(shots: Iterable[Any], *, fps: str | Fraction | int | float, title: str,
             clip_name: str, reel: str = "AX", start_timecode: str | None = None,
             record_start: str = "01:00:00:00", drop_frame: bool | None = None) -> str:
    """CMX3600 EDL of a shot list (see the module docstring).

    Parameters
    ----------
    shots : ShotRow (or Shot-like) objects, in order
    fps : the film's exact frame rate, e.g. ``"24000/1001"``
    title : EDL title (up to 70 characters are kept)
    clip_name : source file name, written as ``* FROM CLIP NAME``
    reel : reel name (up to 8 characters of A-Z, 0-9, _)
    start_timecode : the film's first-frame timecode (default 00:00:00:00)
    record_start : timecode of the first record frame
    drop_frame : ``None`` = drop-frame only when ``start_timecode`` is drop-frame
    """
    rows = _rows(shots)
    df = _is_df_tc(start_timecode) if drop_frame is None else bool(drop_frame)
    if df:
        _drop_per_minute(fps)
    src0 = timecode_to_frames(start_timecode, fps, drop_frame=df) if start_timecode else 0
    rec0 = timecode_to_frames(record_start, fps, drop_frame=df)
    reel_name = re.sub(r"[^A-Z0-9_]", "", reel.upper())[:8] or "AX"
    tc = lambda f: frames_to_timecode(f, fps, drop_frame=df)  # noqa: E731
    lines = [f"TITLE: {title[:70]}", f"FCM: {'DROP FRAME' if df else 'NON-DROP FRAME'}", ""]
    rec = rec0
    for n, r in enumerate(rows, start=1):
        if n > 999:
            raise ValueError("CMX3600 holds at most 999 events")
        lines.append(f"{n:03d}  {reel_name:<8} V     C        "
                     f"{tc(src0 + r.start)} {tc(src0 + r.stop)} {tc(rec)} {tc(rec + r.n_frames)}")
        lines.append(f"* FROM CLIP NAME: {clip_name}")
        lines.append(f"* REEL SHOT {r.index}: {r.transition} confidence {r.confidence:.4f} "
                     f"origin {r.origin}" + (f" id {r.shot_id}" if r.shot_id is not None else ""))
        lines.append("")
        rec += r.n_frames
    return "\n".join(lines)


def write_edl(path: str | os.PathLike, shots: Iterable[Any], **kwargs: Any) -> Path:
    """Write :func:`edl_text` to ``path`` (ASCII, CRLF line ends as editing systems expect)."""
    path = Path(path)
    path.write_bytes(edl_text(shots, **kwargs).replace("\n", "\r\n").encode("ascii", "replace"))
    return path


_EVENT_RE = re.compile(
    r"^(\d{3,6})\s+(\S+)\s+(\S+)\s+(C|D|W\d{3}|K[BO]?)\s+(?:(\d{3})\s+)?"
    r"(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def parse_edl(text: str, *, fps: str | Fraction | int | float) -> EDL:
    """Read a CMX3600 EDL (events, comments); timecodes become frame numbers at ``fps``."""
    title = ""
    df = False
    events: list[EDLEvent] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("TITLE:"):
            title = line[6:].strip()
        elif line.startswith("FCM:"):
            df = "NON" not in line.upper()
        elif line.startswith("*"):
            if events:
                events[-1].comments.append(line[1:].strip())
        else:
            m = _EVENT_RE.match(line.strip())
            if not m:
                raise ValueError(f"not a CMX3600 event line: {line!r}")
            conv = lambda s: timecode_to_frames(s, fps, drop_frame=df or None)  # noqa: E731
            events.append(EDLEvent(int(m[1]), m[2], m[3], m[4], conv(m[6]), conv(m[7]),
                                   conv(m[8]), conv(m[9])))
    return EDL(title=title, drop_frame=df, events=events)


# --------------------------------------------------------------------------- CSV
CSV_COLUMNS = ["shot_index", "shot_id", "start_frame", "stop_frame", "n_frames", "start_timecode",
               "stop_timecode", "duration_timecode", "start_seconds", "duration_seconds",
               "transition", "confidence", "origin"]


def csv_text(shots: Iterable[Any], *, fps: str | Fraction | int | float,
             start_timecode: str | None = None, drop_frame: bool | None = None) -> str:
    """CSV of a shot list, one row per shot (:data:`CSV_COLUMNS`; stop is exclusive).

    Seconds are exact frame times (``frame / fps``, 6 decimals); timecodes as in the EDL.

    >>> print(csv_text([ShotRow(0, 0, 24, "start", 1.0)], fps="24000/1001").splitlines()[1])
    0,,0,24,24,00:00:00:00,00:00:01:00,00:00:01:00,0.000000,1.001000,start,1.0000,detected
    """
    rows = _rows(shots)
    f = fps_fraction(fps)
    df = _is_df_tc(start_timecode) if drop_frame is None else bool(drop_frame)
    src0 = timecode_to_frames(start_timecode, fps, drop_frame=df) if start_timecode else 0
    tc = lambda n: frames_to_timecode(n, fps, drop_frame=df)  # noqa: E731
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.index, "" if r.shot_id is None else r.shot_id, r.start, r.stop, r.n_frames,
                    tc(src0 + r.start), tc(src0 + r.stop), tc(r.n_frames),
                    f"{float(r.start / f):.6f}", f"{float(r.n_frames / f):.6f}", r.transition,
                    f"{r.confidence:.4f}", r.origin])
    return buf.getvalue()


def write_csv(path: str | os.PathLike, shots: Iterable[Any], **kwargs: Any) -> Path:
    path = Path(path)
    path.write_text(csv_text(shots, **kwargs), encoding="utf-8")
    return path


def parse_csv(text: str) -> list[ShotRow]:
    """Shot rows back from :func:`csv_text` output (frame columns are authoritative)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        out.append(ShotRow(int(row["shot_index"]), int(row["start_frame"]), int(row["stop_frame"]),
                           row["transition"], float(row["confidence"]), row["origin"],
                           int(row["shot_id"]) if row.get("shot_id") else None))
    return out

