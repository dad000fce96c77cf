"""Media I/O for reel: probing, fixity, frame-exact decoding and lossless intermediates.

Every read and write of audio/video goes through the ``ffmpeg``/``ffprobe`` command-line tools,
wrapped here (and in :mod:`reel.tasks.deliver`) only, so the backend can be swapped later. All
calls use ``-loglevel error -nostdin``, read exact frame sizes from pipes, close their pipes and
check return codes; failures raise :class:`MediaError` with what went wrong and what to do.

Frame conventions: ``uint8`` arrays, gray ``(H, W)`` or RGB ``(H, W, 3)``. Frame ranges are
half-open ``[start, stop)`` in *source frame numbers*: the index of a frame in a full decode of
the first video stream (every decoded frame, in presentation order, none dropped or duplicated).
Frames are delivered in display orientation (ffmpeg's autorotate applies the rotation metadata).
Sample aspect ratio is ignored (pixels are returned as stored).

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> from reel.tasks.media import FrameWriter, iter_frames, probe
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with FrameWriter(d / "ramp.mkv", 32, 16, "25/1", pix_fmt_in="gray") as w:
...     for i in range(3):
...         w.write(np.full((16, 32), 10 * i, np.uint8))
>>> info = probe(d / "ramp.mkv")
>>> (info.width, info.height, info.fps, info.n_frames)
(32, 16, '25/1', 3)
>>> [int(f[0, 0]) for f in iter_frames(d / "ramp.mkv", 1, 3)]
[10, 20]
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

__all__ = [
    "MediaError",
    "MediaInfo",
    "probe",
    "VideoFormat",
    "video_format",
    "sha256_file",
    "write_framemd5",
    "iter_frames",
    "count_frames",
    "FrameWriter",
    "write_png",
    "file_identity",
    "fps_fraction",
    "fps_string",
    "ffmpeg_base",
    "run_ffmpeg",
    "ffmpeg_version",
    "detect_interlace",
    "cfr_rate",
    "source_notes",
    "normalise_video",
    "prepare_source",
    "DecodeSource",
    "FixityError",
    "FixityResult",
    "check_fixity",
    "verify_fixity",
]

#: ffmpeg flags that make muxers/encoders write no version strings, dates or random ids, so the
#: same frames give the same bytes.
BITEXACT_FLAGS: tuple[str, ...] = ("-fflags", "+bitexact", "-flags:v", "+bitexact",
                                   "-flags:a", "+bitexact")

#: swscale flags for every pixel-format conversion done while decoding (``bitexact`` makes the
#: result independent of the CPU's SIMD paths).
_SWS_FLAGS = "accurate_rnd+full_chroma_int+bitexact"

#: Input seeking (for speed) is used only when the first wanted frame lies at least this many
#: seconds into the film, the stream is constant-frame-rate and the container is one of
#: :data:`_SEEKABLE_FORMATS`. Module-level so tests can lower it.
_SEEK_MIN_S = 20.0
#: How far before the first wanted frame the demuxer is asked to seek (it then lands on the
#: key frame at or before that point and frames are picked by timestamp).
_SEEK_MARGIN_S = 5.0
#: The same two for intra-only streams (every frame a key frame: FFV1 masters written with
#: ``-g 1``, ProRes, DPX-like codecs). The demuxer then lands on the wanted frame itself, so a
#: margin of a few frames (against timestamp rounding) is enough and seeking pays off from
#: the first second: without it a shot starting at t decodes t x fps frames it throws away.
_INTRA_SEEK_MIN_S = 0.5
_INTRA_SEEK_MARGIN_S = 0.25
#: A stream counts as intra-only when its first this-many video packets are all key frames
#: (read from the container's packet flags, nothing decoded).
_INTRA_PROBE_PACKETS = 48
_SEEKABLE_FORMATS = ("matroska", "mov")

#: Decoder flags for every decode: exact cropping (without ``unaligned`` FFmpeg 5.1 widens
#: e.g. Theora pictures with an odd left offset to an aligned crop).
_DECODE_FLAGS: tuple[str, ...] = ("-flags", "unaligned")

_FFV1_ARGS = ("-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "4", "-slicecrc", "1")
#: UT Video, median prediction: lossless and intra-only like FFV1, 8-bit planar RGB (``gbrp``).
_UTVIDEO_ARGS = ("-c:v", "utvideo", "-pred", "median")

#: Codec of the per-shot work files (colorized, harmonized, edited shots: written once, decoded
#: two or three times by the later stages and the master). UT Video is lossless like FFV1 and,
#: on 320 x 136 RGB frames with FFmpeg 5.1, 4.3x faster to encode and 3.6x faster to decode
#: (0.18 / 0.22 s against 0.77 / 0.80 s for 244 frames, one thread) at 10 % more bytes. The
#: preservation master and the deflickered source (gray, which UT Video cannot store) stay FFV1.
WORK_CODEC = "utvideo"


class MediaError(RuntimeError):
    """An ffmpeg/ffprobe operation failed; the message says what happened and what to do."""


# ------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise MediaError(f"{name} was not found on PATH; install FFmpeg (e.g. `apt-get install "
                         f"ffmpeg`) so that `{name}` can be run.")
    return exe


def ffmpeg_base() -> list[str]:
    """The start of every ffmpeg command line: quiet, no stdin, overwrite allowed."""
    return [_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]


def _ffprobe_base() -> list[str]:
    return [_tool("ffprobe"), "-hide_banner", "-loglevel", "error"]


def _tail(text: bytes | str, n_chars: int = 2000) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= n_chars else "..." + text[-n_chars:]


def run_ffmpeg(args: list[str], *, what: str, hint: str = "") -> bytes:
    """Run a complete ffmpeg/ffprobe command line; return stdout, raise MediaError on failure.

    ``args`` must start with the executable (use :func:`ffmpeg_base`). ``what`` names the
    operation for the error message; ``hint`` says what the user can do about it.
    """
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        msg = f"{what} failed (exit code {proc.returncode}): {_tail(proc.stderr) or 'no message'}"
        if hint:
            msg += f". {hint}"
        raise MediaError(msg)
    return proc.stdout


def fps_fraction(fps: str | Fraction | int | float) -> Fraction:
    """Parse a frame rate ("24000/1001", "25", Fraction, int, float) into an exact Fraction.

    Floats are snapped to the nearest ``n/1001`` NTSC rate when within 1e-3 (23.976 ->
    24000/1001), otherwise to the nearest fraction with denominator <= 1001.

    >>> fps_fraction("24000/1001"), fps_fraction(29.97), fps_fraction(25)
    (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(25, 1))
    """
    if isinstance(fps, Fraction):
        f = fps
    elif isinstance(fps, int):
        f = Fraction(fps)
    elif isinstance(fps, float):
        ntsc = Fraction(round(fps * 1.001 * 1000), 1001)
        f = ntsc if abs(float(ntsc) - fps) < 1e-3 and ntsc.numerator % 1000 == 0 \
            else Fraction(fps).limit_denominator(1001)
    elif isinstance(fps, str):
        try:
            f = Fraction(fps.strip())
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"not a frame rate: {fps!r}") from exc
    else:
        raise TypeError(f"frame rate must be str, Fraction, int or float, got {type(fps)}")
    if f <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    return f


def fps_string(fps: str | Fraction | int | float) -> str:
    """Canonical ffprobe-style rational string: ``"24000/1001"``, ``"25/1"``."""
    f = fps_fraction(fps)
    return f"{f.numerator}/{f.denominator}"


def _rational_or_none(s: str | None) -> Fraction | None:
    if not s:
        return None
    try:
        f = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return f if f > 0 else None


def _float_or_none(s: Any) -> float | None:
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _tag(tags: Mapping[str, str] | None, key: str) -> str | None:
    for k, v in (tags or {}).items():
        if k.lower() == key.lower():
            return v
    return None


@lru_cache(maxsize=1)
def _pixel_format_depths() -> dict[str, int]:
    out = run_ffmpeg(_ffprobe_base() + ["-show_pixel_formats", "-of", "json"],
                     what="listing ffprobe pixel formats")
    depths: dict[str, int] = {}
    for pf in json.loads(out).get("pixel_formats", []):
        comps = pf.get("components") or []
        if comps:
            depths[pf["name"]] = max(int(c.get("bit_depth", 0)) for c in comps)
    return depths


# ------------------------------------------------------------------------------------------
# probing
# ------------------------------------------------------------------------------------------


#: ffprobe ``field_order`` values of interlaced video (``tt``/``bb``: coded and displayed in the
#: same order; ``tb``/``bt``: coded in one order, displayed in the other).
INTERLACED_FIELD_ORDERS = ("tt", "bb", "tb", "bt")


@dataclass
class MediaInfo:
    """What reel needs to know about a film (first video stream + all audio streams).

    ``fps`` is the exact ``r_frame_rate`` rational string ("24000/1001"), never rounded;
    ``avg_fps`` the container's average rate (falls back to ``fps`` when the container does not
    report one). ``width``/``height`` are the stored (coded display) size; frames from
    :func:`iter_frames` are in display orientation, i.e. swapped when ``rotation_deg`` is 90 or
    270. ``rotation_deg`` is clockwise, in {0, 90, 180, 270}.

    ``n_frames`` is exact: the container's count when it is present, consistent with the
    duration and (for a deep probe) with the number of video packets, otherwise counted by
    decoding (``frame_count_source`` says which; ``header_n_frames`` keeps a container count
    that was found wrong). A deep probe (``probe(path, deep=True)``) also measures the timing of
    every video packet (``frame_timing``: is the frame rate really constant?) and runs ffmpeg's
    ``idet`` interlace detector on the first frames (``interlace``).
    """

    path: Path
    container: str
    video_codec: str
    width: int
    height: int
    fps: str
    avg_fps: str
    n_frames: int
    duration_s: float
    pix_fmt: str
    bit_depth: int
    field_order: str | None = None
    rotation_deg: int = 0
    timecode: str | None = None
    audio_streams: list[dict[str, Any]] = field(default_factory=list)
    #: absolute index of the video stream described here
    video_stream_index: int = 0
    #: "header" (container count, checked) or "decoded" (counted by decoding every frame)
    frame_count_source: str = "header"
    #: the container's frame count when decoding found a different one, else None
    header_n_frames: int | None = None
    #: deep probe: {"n_packets", "min_interval_s", "median_interval_s", "max_interval_s",
    #: "constant"} of the video packets' presentation times; None for a shallow probe
    frame_timing: dict[str, Any] | None = None
    #: deep probe: ffmpeg idet counts on the first frames and a verdict
    #: ("progressive", "tff", "bff" or "undetermined"); None for a shallow probe
    interlace: dict[str, Any] | None = None

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)

    @property
    def is_vfr(self) -> bool:
        """True when the frame rate is not constant.

        A deep probe measures it (packet presentation times); otherwise it is True when the
        average frame rate differs from the nominal (r_frame_rate) one.
        """
        if self.frame_timing is not None and self.frame_timing.get("constant") is not None:
            return not self.frame_timing["constant"]
        return Fraction(self.avg_fps) != Fraction(self.fps)

    @property
    def is_interlaced(self) -> bool:
        """True when the stream is flagged interlaced or ``idet`` finds interlaced fields."""
        return self.scan_order is not None

    @property
    def scan_order(self) -> str | None:
        """"tff" or "bff" for interlaced video (the stream's flag first, then idet), else None."""
        if self.field_order in ("tt", "bt"):
            return "tff"
        if self.field_order in ("bb", "tb"):
            return "bff"
        verdict = (self.interlace or {}).get("verdict")
        return verdict if verdict in ("tff", "bff") else None

    @property
    def fps_float(self) -> float:
        return float(Fraction(self.fps))

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) of decoded frames after rotation."""
        if self.rotation_deg in (90, 270):
            return self.height, self.width
        return self.width, self.height

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (path as str, properties included)."""
        return {
            "path": str(self.path),
            "container": self.container,
            "video_codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "avg_fps": self.avg_fps,
            "n_frames": self.n_frames,
            "duration_s": self.duration_s,
            "pix_fmt": self.pix_fmt,
            "bit_depth": self.bit_depth,
            "field_order": self.field_order,
            "rotation_deg": self.rotation_deg,
            "timecode": self.timecode,
            "audio_streams": [dict(a) for a in self.audio_streams],
            "video_stream_index": self.video_stream_index,
            "frame_count_source": self.frame_count_source,
            "header_n_frames": self.header_n_frames,
            "frame_timing": dict(self.frame_timing) if self.frame_timing is not None else None,
            "interlace": dict(self.interlace) if self.interlace is not None else None,
            "has_audio": self.has_audio,
            "is_vfr": self.is_vfr,
            "is_interlaced": self.is_interlaced,
            "scan_order": self.scan_order,
            "fps_float": self.fps_float,
        }


@dataclass(frozen=True)
class _VideoMeta:
    """Cheap facts about the first video stream (no frame counting)."""

    path: Path
    container: str
    stream: dict[str, Any]
    fmt: dict[str, Any]
    audio: list[dict[str, Any]]
    rotation_deg: int
    streams: tuple[dict[str, Any], ...] = ()
    #: size of the decoded frames (before rotation) and timestamp of the first frame
    decoded_size: tuple[int, int] = (0, 0)
    first_frame_s: float | None = None
    #: every one of the first :data:`_INTRA_PROBE_PACKETS` video packets is a key frame
    intra_only: bool = False

    @property
    def index(self) -> int:
        return int(self.stream["index"])

    @property
    def fps(self) -> Fraction | None:
        return _rational_or_none(self.stream.get("r_frame_rate"))

    @property
    def avg_fps(self) -> Fraction | None:
        return _rational_or_none(self.stream.get("avg_frame_rate"))

    @property
    def display_size(self) -> tuple[int, int]:
        w, h = self.decoded_size
        return (h, w) if self.rotation_deg in (90, 270) else (w, h)


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"media file not found: {path}. Check the path (and that the film was "
                         f"copied in completely).")
    if not path.is_file():
        raise MediaError(f"not a regular file: {path}. Give the path of a video file.")
    return path


def _rotation_of(stream: dict[str, Any]) -> int:
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            try:
                ccw = float(sd["rotation"])  # ffprobe reports the display matrix counter-clockwise
            except (TypeError, ValueError):
                continue
            return int(round(-ccw / 90.0)) * 90 % 360
    rot = _tag(stream.get("tags"), "rotate")  # legacy tag, clockwise
    if rot is not None:
        try:
            return int(round(float(rot) / 90.0)) * 90 % 360
        except ValueError:
            pass
    return 0


#: bits per sample of decoded audio sample formats (planar or not)
_SAMPLE_FMT_BITS = {"u8": 8, "s16": 16, "s32": 32, "s64": 64, "flt": 32, "dbl": 64}


def _audio_facts(stream: dict[str, Any]) -> dict[str, Any]:
    """What reel keeps about an audio stream (JSON-safe)."""
    sample_fmt = str(stream.get("sample_fmt") or "")
    bits = 0
    for key in ("bits_per_raw_sample", "bits_per_sample"):
        try:
            bits = int(stream.get(key) or 0)
        except (TypeError, ValueError):
            bits = 0
        if bits:
            break
    if not bits:
        bits = _SAMPLE_FMT_BITS.get(sample_fmt.rstrip("p"), 0)
    return {"index": int(stream["index"]), "codec": stream.get("codec_name"),
            "sample_rate": int(stream.get("sample_rate") or 0),
            "channels": int(stream.get("channels") or 0),
            "channel_layout": stream.get("channel_layout"),
            "sample_fmt": sample_fmt or None, "bits_per_sample": bits,
            "language": _tag(stream.get("tags"), "language")}


#: _video_meta results by file identity (see _video_meta); small, bounded, thread-safe
_META_CACHE: "OrderedDict[tuple, _VideoMeta]" = OrderedDict()
_META_CACHE_LOCK = threading.Lock()
_META_CACHE_SIZE = 256


def file_identity(path: str | os.PathLike) -> tuple:
    """What identifies one version of a file: its path as given, device, inode, size, and
    modification and status-change times in ns. reel writes media to a temporary sibling and
    renames it into place (a new inode), so a rewritten file never keeps its identity."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _video_meta(path: Path) -> _VideoMeta:
    """Stream facts of ``path`` from two ffprobe calls, remembered per file version.

    Every frame-range decode (:func:`iter_frames`) needs them, and the stages of a shot decode
    the same source and intermediates several times: two ffprobe start-ups per decode cost
    about 1 s per shot. A result is reused only while the file's identity
    (:func:`file_identity`) is unchanged; each caller gets its own copy (the stream dicts are
    mutable).
    """
    path = _check_file(path)
    key = file_identity(path)
    with _META_CACHE_LOCK:
        hit = _META_CACHE.get(key)
        if hit is not None:
            _META_CACHE.move_to_end(key)
            return copy.deepcopy(hit)
    meta = _probe_video_meta(path)
    with _META_CACHE_LOCK:
        _META_CACHE[key] = meta
        while len(_META_CACHE) > _META_CACHE_SIZE:
            _META_CACHE.popitem(last=False)
    return copy.deepcopy(meta)


def _probe_video_meta(path: Path) -> _VideoMeta:
    # the first packets' key-frame flags come along (no decoding): see _starts_intra_only
    out = run_ffmpeg(_ffprobe_base() + ["-show_format", "-show_streams", "-show_entries",
                                        "packet=stream_index,flags", "-read_intervals",
                                        f"%+#{2 * _INTRA_PROBE_PACKETS}", "-of", "json",
                                        str(path)],
                     what=f"probing {path}",
                     hint="The file is not readable media (wrong file, truncated copy or an "
                          "unsupported format); check it with `ffprobe`.")
    data = json.loads(out or b"{}")
    streams = data.get("streams") or []
    for st in streams:  # counted over the packets read above only: not a fact of the stream
        st.pop("nb_read_packets", None)
    videos = [s for s in streams if s.get("codec_type") == "video"
              and not (s.get("disposition") or {}).get("attached_pic")]
    if not videos:
        raise MediaError(f"{path} has no video stream (streams: "
                         f"{[s.get('codec_type') for s in streams]}). Give a video file.")
    v = videos[0]
    if not v.get("width") or not v.get("height"):
        raise MediaError(f"{path}: the video stream has no frame size; the file may be damaged.")
    audio = [_audio_facts(s) for s in streams if s.get("codec_type") == "audio"]
    fmt = data.get("format") or {}
    # The decoder's real output size can differ from the stream header (e.g. Theora with an odd
    # picture offset); read the first frame with the same decoder flags iter_frames uses.
    out = run_ffmpeg(_ffprobe_base() + [*_DECODE_FLAGS, "-select_streams", str(v["index"]),
                                        "-read_intervals", "%+#1", "-show_entries",
                                        "frame=width,height,best_effort_timestamp_time,pts_time",
                                        "-of", "json", str(path)],
                     what=f"decoding the first frame of {path}",
                     hint="The video stream could not be decoded; the file may be damaged.")
    frames = json.loads(out or b"{}").get("frames") or []
    if not frames or not frames[0].get("width"):
        raise MediaError(f"{path}: no video frame could be decoded; the file may be damaged "
                         f"or empty.")
    f0 = frames[0]
    return _VideoMeta(path=path, container=str(fmt.get("format_name", "")), stream=v,
                      fmt=fmt, audio=audio, rotation_deg=_rotation_of(v),
                      streams=tuple(streams),
                      decoded_size=(int(f0["width"]), int(f0["height"])),
                      first_frame_s=_float_or_none(f0.get("best_effort_timestamp_time")
                                                   or f0.get("pts_time")),
                      intra_only=_starts_intra_only(data.get("packets") or [], int(v["index"])))


def _starts_intra_only(packets: list[dict[str, Any]], index: int) -> bool:
    """Whether the first video packets of stream ``index`` among ``packets`` (ffprobe's
    ``stream_index`` and ``flags``; at least two, at most :data:`_INTRA_PROBE_PACKETS`) are all
    key frames. A stream whose packets were not listed counts as not intra-only, which only
    keeps the cautious seek margins."""
    flags = [str(p.get("flags", "")) for p in packets
             if p.get("stream_index") == index][:_INTRA_PROBE_PACKETS]
    return len(flags) >= 2 and all(f.startswith("K") for f in flags)


def _timecode_of(meta: _VideoMeta) -> str | None:
    """Start timecode: container tag, video stream tag, or any other stream's (e.g. tmcd)."""
    timecode = _tag(meta.fmt.get("tags"), "timecode") or _tag(meta.stream.get("tags"), "timecode")
    if timecode is None:
        for other in meta.streams:
            timecode = _tag(other.get("tags"), "timecode")
            if timecode:
                break
    return timecode


def _plausible_nb_frames(meta: _VideoMeta) -> int | None:
    s = meta.stream
    try:
        nb = int(s.get("nb_frames"))
    except (TypeError, ValueError):
        return None
    if nb <= 0:
        return None
    rate = meta.avg_fps or meta.fps
    dur = _float_or_none(s.get("duration")) or _float_or_none(meta.fmt.get("duration"))
    if rate is None or dur is None:
        return None
    expected = dur * float(rate)
    return nb if abs(nb - expected) <= 1.0 + 0.002 * nb else None


def _frame_rate(meta: _VideoMeta) -> Fraction:
    fps = meta.fps if meta.fps is not None else meta.avg_fps
    if fps is None:
        raise MediaError(f"{meta.path}: the video stream reports no frame rate; remux it with "
                         f"an explicit rate (ffmpeg -r) before restoring.")
    return fps


@dataclass(frozen=True)
class VideoFormat:
    """Frame size and rate of a film's first video stream (see :func:`video_format`).

    ``display_size`` is (width, height) of the frames :func:`iter_frames` yields; ``fps`` the
    exact ``r_frame_rate`` string, as in :class:`MediaInfo`.
    """

    path: Path
    display_size: tuple[int, int]
    fps: str


def video_format(path: str | os.PathLike) -> VideoFormat:
    """Frame size and rate of the first video stream: one ffprobe call, no frame counting.

    What a shot stage needs to decode a frame range and write frames of the same size and
    rate. :func:`probe` also gives the exact frame count, which for a container without one
    (Matroska from ffmpeg, reel's own intermediates) means decoding the whole film: per shot
    of a long film that would cost a full decode each time.

    Example
    -------
    >>> fmt = video_format("film.mkv")          # doctest: +SKIP
    >>> fmt.display_size, fmt.fps               # doctest: +SKIP
    ((720, 576), '25/1')
    """
    meta = _video_meta(Path(path))
    return VideoFormat(path=meta.path, display_size=meta.display_size,
                       fps=fps_string(_frame_rate(meta)))


def probe(path: str | os.PathLike, *, deep: bool = False,
          idet_frames: int = 500) -> MediaInfo:
    """Describe a film: container, first video stream, audio streams, exact frame count.

    Parameters
    ----------
    path : the film (only read).
    deep : also read every video packet's timestamp (one demuxing pass, no decoding) to check
        the container's frame count against the packet count and to measure whether the frame
        rate is really constant, and run ffmpeg's ``idet`` interlace detector on the first
        ``idet_frames`` frames. The restore flow probes originals deeply; ``reel probe`` too.
    idet_frames : how many frames ``idet`` looks at (deep probes only).

    The frame count is the container's ``nb_frames`` when present and consistent with the
    duration (and, deep, with the packet count), otherwise it is counted by decoding (slow for
    long films, always exact). When the container's count was wrong, ``header_n_frames`` keeps
    it and ``duration_s`` is recomputed from the counted frames.

    Raises
    ------
    MediaError
        Missing file, not media, or no video stream.

    Example
    -------
    >>> info = probe("film.mp4", deep=True)          # doctest: +SKIP
    >>> info.fps, info.n_frames, info.has_audio, info.is_vfr   # doctest: +SKIP
    ('24000/1001', 168, True, False)
    """
    meta = _video_meta(Path(path))
    s = meta.stream
    fps = _frame_rate(meta)
    avg = meta.avg_fps or fps
    try:
        raw_nb: int | None = int(s.get("nb_frames"))
    except (TypeError, ValueError):
        raw_nb = None
    header = _plausible_nb_frames(meta)
    interlace = None
    if deep:  # idet decodes on its own: it runs while the packets are read (and counted)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reel-idet")
        interlace = pool.submit(detect_interlace, meta.path, max_frames=idet_frames,
                                _stream_index=meta.index)
        pool.shutdown(wait=False)
    timing = _packet_timing(meta) if deep else None
    if header is not None and (timing is None or timing["n_packets"] == header):
        n_frames, count_source = header, "header"
    else:
        n_frames, count_source = count_frames(meta.path, _stream_index=meta.index), "decoded"
    header_wrong = raw_nb if raw_nb is not None and raw_nb > 0 and raw_nb != n_frames else None
    duration = _float_or_none(s.get("duration")) or _float_or_none(meta.fmt.get("duration"))
    if duration is None or header_wrong is not None:
        duration = n_frames / float(fps)
    pix_fmt = str(s.get("pix_fmt") or "")
    try:
        bit_depth = int(s.get("bits_per_raw_sample"))
    except (TypeError, ValueError):
        bit_depth = _pixel_format_depths().get(pix_fmt, 8)
    timecode = _timecode_of(meta)
    fo = s.get("field_order")
    return MediaInfo(
        path=meta.path,
        container=meta.container,
        video_codec=str(s.get("codec_name") or "unknown"),
        width=meta.decoded_size[0],
        height=meta.decoded_size[1],
        fps=fps_string(fps),
        avg_fps=fps_string(avg),
        n_frames=int(n_frames),
        duration_s=float(duration),
        pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        field_order=str(fo) if fo and fo != "unknown" else None,
        rotation_deg=meta.rotation_deg,
        timecode=timecode,
        audio_streams=meta.audio,
        video_stream_index=meta.index,
        frame_count_source=count_source,
        header_n_frames=header_wrong,
        frame_timing=timing,
        interlace=interlace.result() if interlace is not None else None,
    )


def _packet_timing(meta: _VideoMeta) -> dict[str, Any]:
    """Count the video packets and measure the spacing of their presentation times.

    One demuxing pass (no decoding). ``constant`` is True when every interval between
    consecutive presentation times (sorted, so B-frame reordering does not matter) lies within
    two time-base ticks plus a microsecond of every other one (Matroska's millisecond
    timestamps make a 24000/1001 film alternate 41/42 ms), False otherwise, and None when the
    container gives no usable timestamps (fewer than three, or missing ones).
    """
    out = run_ffmpeg(_ffprobe_base() + ["-select_streams", str(meta.index), "-show_entries",
                                        "packet=pts", "-of", "csv=p=0", str(meta.path)],
                     what=f"reading the packet timestamps of {meta.path}",
                     hint="The container could not be read to the end; the file may be "
                          "truncated.")
    lines = [ln.strip().rstrip(",") for ln in out.decode("ascii", "replace").splitlines()
             if ln.strip()]
    timing: dict[str, Any] = {"n_packets": len(lines), "min_interval_s": None,
                              "median_interval_s": None, "max_interval_s": None,
                              "constant": None}
    tb = _rational_or_none(meta.stream.get("time_base"))
    try:
        pts = sorted(int(x) for x in lines)
    except ValueError:          # "N/A" timestamps
        return timing
    if tb is None or len(pts) < 3:
        return timing
    diffs = np.diff(np.asarray(pts, dtype=np.int64))
    tick = float(tb)
    lo, med, hi = int(diffs.min()), float(np.median(diffs)), int(diffs.max())
    timing.update(min_interval_s=lo * tick, median_interval_s=med * tick,
                  max_interval_s=hi * tick, constant=bool(lo > 0 and (hi - lo) <= 2))
    return timing


def detect_interlace(path: str | os.PathLike, *, max_frames: int = 500,
                     _stream_index: int | None = None) -> dict[str, Any]:
    """Run ffmpeg's ``idet`` filter on the first ``max_frames`` frames; counts and a verdict.

    Returns ``{"tff", "bff", "progressive", "undetermined"}`` (idet's multi-frame counts),
    ``"frames"`` (how many were looked at) and ``"verdict"``: ``"tff"``/``"bff"`` when at least
    60 % of the frames look interlaced, more than twice as many as look progressive, and one
    field order has at least four times the votes of the other; ``"progressive"`` when at
    least half look progressive and more than twice as many as look interlaced; otherwise
    ``"undetermined"``. idet judges picture content (combing), so small synthetic test
    patterns can fool it; the stream's own ``field_order`` flag is reported separately by
    :func:`probe`.

    >>> detect_interlace("tape.mkv")["verdict"]          # doctest: +SKIP
    'tff'
    """
    import re

    path = _check_file(Path(path))
    if _stream_index is None:
        _stream_index = _video_meta(path).index
    cmd = [_tool("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "info", *_DECODE_FLAGS,
           "-i", str(path), "-map", f"0:{_stream_index}", "-an", "-sn", "-dn",
           "-vf", "idet", "-frames:v", str(int(max_frames)), "-f", "null", "-"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise MediaError(f"interlace detection on {path} failed (exit code "
                         f"{proc.returncode}): {_tail(text)}. The video may be damaged.")
    m = re.search(r"Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*"
                  r"Progressive:\s*(\d+)\s*Undetermined:\s*(\d+)", text)
    if m is None:
        raise MediaError(f"ffmpeg's idet filter printed no summary for {path}; check that "
                         f"this FFmpeg build has the idet filter.")
    tff, bff, prog, und = (int(g) for g in m.groups())
    total = tff + bff + prog + und
    inter = tff + bff
    if total and inter >= 0.6 * total and inter > 2 * prog and max(tff, bff) >= 4 * min(tff, bff):
        verdict = "tff" if tff > bff else "bff"
    elif total and prog >= 0.5 * total and prog > 2 * inter:
        verdict = "progressive"
    else:
        verdict = "undetermined"
    return {"tff": tff, "bff": bff, "progressive": prog, "undetermined": und,
            "frames": tff + bff + prog + und, "verdict": verdict}


def count_frames(path: str | os.PathLike, *, _stream_index: int | None = None) -> int:
    """Number of frames of the first video stream, counted by decoding it (exact, slow).

    >>> count_frames("film.ogv")          # doctest: +SKIP
    288
    """
    path = _check_file(Path(path))
    if _stream_index is None:
        _stream_index = _video_meta(path).index
    out = run_ffmpeg(_ffprobe_base() + [*_DECODE_FLAGS, "-select_streams", str(_stream_index),
                                        "-count_frames",
                                        "-show_entries", "stream=nb_read_frames", "-of", "json",
                                        str(path)],
                     what=f"counting frames of {path}",
                     hint="The video could not be decoded to the end; the file may be truncated.")
    streams = json.loads(out).get("streams") or []
    try:
        return int(streams[0]["nb_read_frames"])
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise MediaError(f"ffprobe returned no frame count for {path}; the video stream may "
                         f"be undecodable.") from exc


# ------------------------------------------------------------------------------------------
# fixity
# ------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read (read-only) in chunks of ``chunk_bytes``.

    >>> sha256_file(__file__)[:4].isalnum()
    True
    """
    path = _check_file(Path(path))
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def write_framemd5(path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write ffmpeg's per-frame MD5 list of the first video stream (``-f framemd5 -an``).

    Hashes are of the decoded frames in their native pixel format, so two files whose
    framemd5 lists agree (apart from the header) hold the same pictures. Written atomically.
    """
    path = _check_file(Path(path))
    out_path = Path(out_path)
    meta = _video_meta(path)
    tmp = _temp_sibling(out_path)
    try:
        run_ffmpeg(ffmpeg_base() + [*_DECODE_FLAGS, "-i", str(path), "-map",
                                    f"0:{meta.index}", "-an",
                                    "-fps_mode", "passthrough", *BITEXACT_FLAGS,
                                    "-f", "framemd5", str(tmp)],
                   what=f"writing the framemd5 of {path}",
                   hint="The video could not be decoded to the end; the file may be damaged.")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _temp_sibling(path: Path, suffix: str = ".part") -> Path:
    """A fresh, unused temporary name in the same folder as ``path`` (so rename is atomic).

    Only the name is reserved (not created), so the file ffmpeg writes gets the usual
    permissions (0666 minus umask).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        cand = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"
        if not cand.exists():
            return cand


# ------------------------------------------------------------------------------------------
# decoding
# ------------------------------------------------------------------------------------------


def _output_size(src_w: int, src_h: int, width: int | None,
                 height: int | None) -> tuple[int, int]:
    if width is None and height is None:
        return src_w, src_h
    if width is not None and width <= 0 or height is not None and height <= 0:
        raise ValueError(f"width/height must be positive, got {width}x{height}")
    if height is None:
        height = max(2, int(round(src_h * width / src_w / 2.0)) * 2)
    elif width is None:
        width = max(2, int(round(src_w * height / src_h / 2.0)) * 2)
    return int(width), int(height)


def _seek_plan(meta: _VideoMeta, start: int) -> tuple[float, float, float] | None:
    """(seek_to_s, first_frame_time_s, fps) when fast seeking is safe, else None."""
    fps, avg = meta.fps, meta.avg_fps
    if start <= 0 or fps is None or avg is None or fps != avg:
        return None
    if not any(f in meta.container.split(",") for f in _SEEKABLE_FORMATS):
        return None
    min_s, margin_s = ((_INTRA_SEEK_MIN_S, _INTRA_SEEK_MARGIN_S) if meta.intra_only
                       else (_SEEK_MIN_S, _SEEK_MARGIN_S))
    t_start = start / float(fps)
    if t_start < min_s:
        return None
    t0 = meta.first_frame_s
    if t0 is None:
        return None
    seek_to = t0 + t_start - margin_s
    if seek_to <= t0:
        return None
    return seek_to, t0, float(fps)


def iter_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None, *,
                pix_fmt: str = "gray", width: int | None = None,
                height: int | None = None) -> Iterator[np.ndarray]:
    """Decode source frames ``[start, stop)`` one at a time as ``uint8`` arrays.

    Parameters
    ----------
    path : path of a video (or still image) file.
    start, stop : half-open range of source frame numbers; ``stop=None`` means to the end.
    pix_fmt : ``"gray"`` (ffmpeg's own gray conversion, (H, W)) or ``"rgb24"`` ((H, W, 3)).
    width, height : optional output size (area filter). With only one of them the aspect ratio
        is kept and the other side rounded to an even number.

    Frame-exact: a range equals the same slice of a full decode, pixel for pixel. By default
    frames are picked by frame number (``select``) while decoding from the beginning, so the
    cost grows with ``start``; for constant-frame-rate Matroska/MP4 films whose range starts
    more than ``_SEEK_MIN_S`` seconds in, the demuxer seeks to a key frame a few seconds before
    ``start`` and frames are picked by timestamp (frame number = round((t - t0) * fps)). For
    intra-only streams (every packet a key frame, e.g. FFV1 written with ``-g 1``) the same
    seek is used from ``_INTRA_SEEK_MIN_S`` on, landing ``_INTRA_SEEK_MARGIN_S`` early.
    Memory is one frame; the ffmpeg process is killed if the consumer stops early.

    Raises
    ------
    MediaError
        Decoding failed, or the file has fewer frames than ``stop``.

    Example
    -------
    >>> frames = list(iter_frames("film.mkv", 30, 76, pix_fmt="rgb24", width=320))  # doctest: +SKIP
    """
    if pix_fmt not in ("gray", "rgb24"):
        raise ValueError(f"pix_fmt must be 'gray' or 'rgb24', got {pix_fmt!r}")
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"invalid frame range [{start}, {stop})")
    if stop is not None and stop == start:
        return
    meta = _video_meta(Path(path))
    src_w, src_h = meta.display_size
    out_w, out_h = _output_size(src_w, src_h, width, height)
    channels = 3 if pix_fmt == "rgb24" else 1
    shape = (out_h, out_w, 3) if channels == 3 else (out_h, out_w)
    frame_bytes = out_w * out_h * channels

    cmd = ffmpeg_base() + ["-sws_flags", _SWS_FLAGS]
    filters: list[str] = []
    plan = _seek_plan(meta, start)
    if plan is not None:
        seek_to, t0, fps = plan
        cmd += ["-copyts", "-noaccurate_seek", "-ss", f"{seek_to:.6f}"]
        lo = t0 + (start - 0.5) / fps
        sel = f"gte(t\\,{lo:.6f})"
        if stop is not None:
            sel += f"*lt(t\\,{t0 + (stop - 0.5) / fps:.6f})"
        filters.append(f"select='{sel}'")
    elif start > 0:
        filters.append(f"select='gte(n\\,{start})'")
    if (out_w, out_h) != (src_w, src_h):
        filters.append(f"scale={out_w}:{out_h}:flags=area+{_SWS_FLAGS}")
    cmd += [*_DECODE_FLAGS, "-i", str(meta.path), "-map", f"0:{meta.index}", "-an", "-sn",
            "-dn"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    if stop is not None:
        cmd += ["-frames:v", str(stop - start)]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]

    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr)
    n_out = 0
    finished = False
    try:
        assert proc.stdout is not None
        while True:
            frame = np.empty(shape, np.uint8)
            view = memoryview(frame).cast("B")
            got = 0
            while got < frame_bytes:
                n = proc.stdout.readinto(view[got:])
                if not n:
                    break
                got += n
            if got == 0:
                break
            if got < frame_bytes:
                raise MediaError(f"decoding {meta.path}: frame {start + n_out} was cut short "
                                 f"({got} of {frame_bytes} bytes); the file may be truncated.")
            n_out += 1
            yield frame
        proc.stdout.close()
        rc = proc.wait()
        finished = True
        if rc != 0:
            stderr.seek(0)
            raise MediaError(f"decoding {meta.path} failed (exit code {rc}): "
                             f"{_tail(stderr.read()) or 'no message'}. Check the file with "
                             f"ffprobe; it may be damaged.")
        if stop is not None and n_out < stop - start:
            raise MediaError(f"{meta.path} has only {start + n_out} frames but frames "
                             f"[{start}, {stop}) were asked for; check the frame range "
                             f"against probe(...).n_frames.")
    finally:
        if not finished and proc.poll() is None:
            proc.kill()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
        proc.wait()
        stderr.close()


# ------------------------------------------------------------------------------------------
# encoding
# ------------------------------------------------------------------------------------------


class FrameWriter:
    """Write frames to a lossless Matroska intermediate, atomically and deterministically.

    Parameters
    ----------
    path : output ``.mkv`` path. Written under a temporary name in the same folder and renamed
        on a clean exit; the temporary file is removed if an exception leaves the block.
    width, height : frame size in pixels.
    fps : exact frame rate ("24000/1001", Fraction, int).
    pix_fmt_in : ``"rgb24"`` (frames (H, W, 3), stored as RGB) or ``"gray"`` (frames (H, W),
        stored as FFV1 gray).
    metadata : container tags (str -> str).
    codec : ``"ffv1"`` (default) or ``"utvideo"`` (RGB only; :data:`WORK_CODEC`, for shot work
        files that are decoded again soon).

    FFV1: level 3, one frame per GOP, 4 slices with CRCs. Note: FFmpeg 5.1's FFV1 encoder has no
    8-bit planar ``gbrp``; RGB is stored as ``bgr0`` (FFV1's 8-bit RGB colour space, the same
    lossless RCT coding), which decodes back to identical rgb24 / gbrp values. UT Video: median
    prediction, ``gbrp``. Both are intra-only; no creation time or version strings are written
    (bitexact), so the same frames give the same bytes.

    Example
    -------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "shot.mkv"
    >>> with FrameWriter(out, 16, 8, "24000/1001") as w:
    ...     w.write(np.zeros((8, 16, 3), np.uint8))
    >>> w.n_frames, out.exists()
    (1, True)
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int,
                 fps: str | Fraction | int | float, *, pix_fmt_in: str = "rgb24",
                 metadata: Mapping[str, str] | None = None, codec: str = "ffv1") -> None:
        if pix_fmt_in not in ("rgb24", "gray"):
            raise ValueError(f"pix_fmt_in must be 'rgb24' or 'gray', got {pix_fmt_in!r}")
        if codec not in ("ffv1", "utvideo"):
            raise ValueError(f"codec must be 'ffv1' or 'utvideo', got {codec!r}")
        if codec == "utvideo" and pix_fmt_in != "rgb24":
            raise ValueError("UT Video stores RGB and YUV only; write gray frames with "
                             "codec='ffv1'")
        self.codec = codec
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"invalid frame size {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = fps_string(fps)
        self.pix_fmt_in = pix_fmt_in
        self.metadata = dict(metadata or {})
        self.n_frames = 0
        self._shape = ((self.height, self.width, 3) if pix_fmt_in == "rgb24"
                       else (self.height, self.width))
        self._proc: subprocess.Popen | None = None
        self._tmp: Path | None = None
        self._stderr = None

    # lifecycle ----------------------------------------------------------------------------
    def open(self) -> "FrameWriter":
        if self._proc is not None:
            raise MediaError(f"FrameWriter for {self.path} is already open.")
        self._tmp = _temp_sibling(self.path)
        if self.codec == "utvideo":
            codec_args, out_fmt = _UTVIDEO_ARGS, "gbrp"
        else:
            codec_args, out_fmt = _FFV1_ARGS, ("bgr0" if self.pix_fmt_in == "rgb24" else "gray")
        cmd = ffmpeg_base() + [
            "-f", "rawvideo", "-pix_fmt", self.pix_fmt_in, "-s", f"{self.width}x{self.height}",
            "-framerate", self.fps, "-i", "pipe:0",
            "-map", "0:v", "-map_metadata", "-1", *codec_args, "-pix_fmt", out_fmt,
            "-fps_mode", "passthrough", *BITEXACT_FLAGS,
        ]
        for k, v in sorted(self.metadata.items()):
            cmd += ["-metadata", f"{k}={v}"]
        cmd += ["-f", "matroska", str(self._tmp)]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr)
        return self

    def __enter__(self) -> "FrameWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _error_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return _tail(self._stderr.read())

    def write(self, frame: np.ndarray) -> None:
        """Append one frame: uint8, shape (height, width, 3) for rgb24 or (height, width)."""
        if self._proc is None or self._proc.stdin is None:
            raise MediaError(f"FrameWriter for {self.path} is not open; use it in a `with` "
                             f"block or call open().")
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 numpy arrays, got "
                             f"{getattr(frame, 'dtype', type(frame))}")
        if frame.shape != self._shape:
            raise ValueError(f"frame shape {frame.shape} does not match the writer's "
                             f"{self._shape} ({self.pix_fmt_in})")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError) as exc:
            self._proc.wait()
            raise MediaError(f"the ffmpeg encoder for {self.path} stopped: "
                             f"{self._error_text() or exc}. Check free disk space and the "
                             f"output folder.") from exc
        self.n_frames += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        if self._proc is None:
            raise MediaError(f"FrameWriter for {self.path} was never opened.")
        proc, tmp = self._proc, self._tmp
        assert tmp is not None
        try:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            rc = proc.wait()
            if rc != 0:
                raise MediaError(f"encoding {self.path} failed (exit code {rc}): "
                                 f"{self._error_text() or 'no message'}. Check free disk "
                                 f"space and the frame size.")
            if self.n_frames == 0:
                raise MediaError(f"no frames were written to {self.path}; an empty "
                                 f"intermediate is not kept.")
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
            self._cleanup()
        return self.path

    def abort(self) -> None:
        """Stop the encoder and delete the temporary file (nothing is left at ``path``)."""
        if self._proc is not None:
            try:
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._cleanup()

    def __del__(self) -> None:  # a writer dropped without close(): leave no process or temp
        try:
            if self._proc is not None:
                self.abort()
        except Exception:
            pass

    def _cleanup(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
        self._proc, self._tmp, self._stderr = None, None, None


def write_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write one uint8 gray (H, W) or RGB (H, W, 3) frame as a PNG, atomically, bit-exactly.

    Read it back with ``next(iter_frames(path, pix_fmt="rgb24"))``.
    """
    path = Path(path)
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or \
            (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(f"expected uint8 (H, W) or (H, W, 3), got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    pf = "rgb24" if frame.ndim == 3 else "gray"
    tmp = _temp_sibling(path)
    try:
        proc = subprocess.run(
            ffmpeg_base() + ["-f", "rawvideo", "-pix_fmt", pf, "-s", f"{w}x{h}", "-i", "pipe:0",
                             "-frames:v", "1", "-c:v", "png", "-pix_fmt", pf, *BITEXACT_FLAGS,
                             "-f", "image2", "-update", "1", str(tmp)],
            input=np.ascontiguousarray(frame).tobytes(), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise MediaError(f"writing {path} failed (exit code {proc.returncode}): "
                             f"{_tail(proc.stderr)}. Check the output folder.")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Odd sources: what is unusual about an original, and its normalised decode source
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The FFmpeg version string of the ``ffmpeg`` on PATH, e.g. ``"5.1.9-0+deb12u1"``."""
    out = run_ffmpeg([_tool("ffmpeg"), "-hide_banner", "-version"], what="asking ffmpeg's version")
    first = out.decode("utf-8", "replace").splitlines()[0] if out else ""
    parts = first.split()
    return parts[2] if len(parts) > 2 and parts[0] == "ffmpeg" else first.strip()


@lru_cache(maxsize=1)
def _ffv1_pix_fmts() -> tuple[str, ...]:
    out = run_ffmpeg([_tool("ffmpeg"), "-hide_banner", "-h", "encoder=ffv1"],
                     what="listing the FFV1 encoder's pixel formats")
    for line in out.decode("utf-8", "replace").splitlines():
        if "Supported pixel formats:" in line:
            return tuple(line.split(":", 1)[1].split())
    return ("yuv420p", "yuv422p", "yuv444p", "bgr0", "gray")


#: FFV1-storable stand-ins for decoder formats FFV1 cannot store (same samples, no colour
#: matrix involved: only the memory layout or the range flag differ).
_FFV1_EQUIVALENT = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p",
                    "yuvj440p": "yuv440p", "nv12": "yuv420p", "nv21": "yuv420p",
                    "nv16": "yuv422p", "p010le": "yuv420p10le", "p016le": "yuv420p16le",
                    "rgb24": "bgr0", "bgr24": "bgr0", "rgba": "bgra", "argb": "bgra",
                    "rgb48le": "rgb48le", "yuyv422": "yuv422p", "uyvy422": "yuv422p",
                    "v210": "yuv422p10le", "gray8": "gray", "ya8": "ya8", "pal8": "bgr0",
                    "monob": "gray", "monow": "gray"}


def _ffv1_pix_fmt_for(pix_fmt: str, bit_depth: int) -> str:
    """The FFV1 pixel format that stores decoded ``pix_fmt`` frames without loss of samples."""
    supported = _ffv1_pix_fmts()
    if pix_fmt in supported:
        return pix_fmt
    alt = _FFV1_EQUIVALENT.get(pix_fmt)
    if alt in supported:
        return alt
    return "yuv444p" if bit_depth <= 8 else "yuv444p16le"


#: Frame rates a measured rate is snapped to when it lies within 1 % of one of them.
STANDARD_RATES: tuple[Fraction, ...] = tuple(Fraction(r) for r in (
    "16", "18", "20", "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001",
    "60", "100", "120000/1001", "120"))


def cfr_rate(info: MediaInfo) -> Fraction:
    """The constant frame rate a variable-rate film is converted to.

    The median interval between frames (deep probe) gives the rate the film mostly runs at;
    it is snapped to the nearest of :data:`STANDARD_RATES` within 1 %, otherwise kept with a
    denominator of at most 1001. Without packet timing, the nominal rate (``r_frame_rate``)
    when it is at most 120 fps, else the average rate.

    >>> info = MediaInfo(path=Path("x"), container="mov", video_codec="h264", width=2, height=2,
    ...                  fps="25/1", avg_fps="20/1", n_frames=80, duration_s=4.0,
    ...                  pix_fmt="yuv420p", bit_depth=8,
    ...                  frame_timing={"n_packets": 80, "median_interval_s": 0.04,
    ...                                "min_interval_s": 0.04, "max_interval_s": 0.08,
    ...                                "constant": False})
    >>> cfr_rate(info)
    Fraction(25, 1)
    """
    med = (info.frame_timing or {}).get("median_interval_s")
    if med:
        rate = 1.0 / float(med)
    else:
        nominal = Fraction(info.fps)
        rate = float(nominal if nominal <= 120 else Fraction(info.avg_fps))
    best = min(STANDARD_RATES, key=lambda r: abs(float(r) - rate))
    if abs(float(best) - rate) <= 0.01 * rate:
        return best
    return Fraction(rate).limit_denominator(1001)


def source_notes(info: MediaInfo, *, deinterlace: bool = False) -> list[dict[str, Any]]:
    """What is unusual about an original and how reel handles it, as event records.

    Each note is ``{"event_type", "outcome", "detail"}`` ready for the catalog's events table
    (``detail["condition"]`` names it): variable frame rate, interlacing, rotation metadata, odd
    frame size, more than 8 bits per sample, a container frame count that was wrong, no audio,
    several audio streams. Ordinary sources give an empty list. Conversions themselves (VFR to
    CFR, deinterlacing) are recorded by :func:`prepare_source`.

    >>> info = MediaInfo(path=Path("x"), container="matroska", video_codec="ffv1", width=641,
    ...                  height=359, fps="25/1", avg_fps="25/1", n_frames=3, duration_s=0.12,
    ...                  pix_fmt="yuv420p", bit_depth=8, audio_streams=[{"index": 1}])
    >>> [n["detail"]["condition"] for n in source_notes(info)]
    ['odd frame size']
    """
    notes: list[dict[str, Any]] = []

    def note(condition: str, outcome: str, action: str, **facts: Any) -> None:
        notes.append({"event_type": "metadata extraction", "outcome": outcome,
                      "detail": {"condition": condition, "action": action, **facts}})

    if info.is_vfr:
        note("variable frame rate", "warning",
             f"converted to a constant {fps_string(cfr_rate(info))} fps intermediate before "
             f"restoration (frames are duplicated or dropped by timestamp)",
             r_frame_rate=info.fps, avg_frame_rate=info.avg_fps, frame_timing=info.frame_timing)
    if info.is_interlaced:
        facts = {"field_order": info.field_order, "idet": info.interlace,
                 "scan_order": info.scan_order}
        if deinterlace:
            note("interlaced", "success", "deinterlaced with bwdif (one frame per frame) before "
                 "restoration, as processing.deinterlace asks", **facts)
        else:
            flagged = info.field_order in INTERLACED_FIELD_ORDERS
            note("interlaced", "warning",
                 "kept interlaced: frames are restored as woven fields"
                 + (f"; the master and mezzanine carry the stream's field order "
                    f"({info.field_order})" if flagged else
                    "; only idet found interlacing, so no field-order flag is set on the "
                    "deliverables")
                 + "; set processing.deinterlace = true to deinterlace with bwdif", **facts)
    if info.rotation_deg:
        note("rotation metadata", "success",
             f"frames are decoded upright (rotated {info.rotation_deg} degrees clockwise); the "
             f"deliverables are stored upright at {info.display_size[0]}x{info.display_size[1]} "
             f"with no rotation flag", rotation_deg=info.rotation_deg)
    w, h = info.display_size
    if w % 2 or h % 2:
        note("odd frame size", "warning",
             f"the master keeps {w}x{h}; the mezzanine (ProRes 4:2:2) and access copy (H.264 "
             f"4:2:0) need even sizes and are padded with black to {w + w % 2}x{h + h % 2} "
             f"(right and bottom)", width=w, height=h)
    if info.bit_depth > 8:
        note("high bit depth", "success",
             f"the source has {info.bit_depth} bits per sample; the master is stored as "
             f"{_master_rgb_pix_fmt(info.bit_depth)} so it is not truncated to 8 bits (restored "
             f"colour is computed at 8-bit precision and scaled up)", bit_depth=info.bit_depth,
             pix_fmt=info.pix_fmt)
    if info.header_n_frames is not None:
        note("wrong container frame count", "warning",
             f"the container says {info.header_n_frames} frames; decoding counted "
             f"{info.n_frames}, which reel uses", header_n_frames=info.header_n_frames,
             n_frames=info.n_frames)
    if not info.audio_streams:
        note("no audio", "success", "the source has no audio stream; the deliverables have none")
    elif len(info.audio_streams) > 1:
        note("several audio streams", "success",
             f"all {len(info.audio_streams)} audio streams are carried: copied losslessly to "
             f"the master, as PCM to the mezzanine, as AAC to the access copy",
             audio_streams=info.audio_streams)
    return notes


def _master_rgb_pix_fmt(bit_depth: int) -> str:
    """FFV1 RGB pixel format of a master for a source with ``bit_depth`` bits per sample."""
    if bit_depth <= 8:
        return "bgr0"
    if bit_depth <= 10:
        return "gbrp10le"
    if bit_depth <= 12:
        return "gbrp12le"
    return "gbrp16le"


def normalise_video(path: str | os.PathLike, out_path: str | os.PathLike, *,
                    info: MediaInfo | None = None, fps: str | Fraction | None = None,
                    deinterlace: bool = False) -> Path:
    """Write a lossless constant-rate (and optionally deinterlaced) copy of a film's video.

    Parameters
    ----------
    path : the original (only read).
    out_path : the intermediate (``.mkv``), written atomically: FFV1 level 3, intra-only,
        sliced with CRCs, in the decoder's own pixel format (so 10-bit stays 10-bit), the
        original's start timecode, no audio (deliverables take audio from the original).
    info : ``probe(path, deep=True)`` (probed when None).
    fps : constant output rate; frames are taken by timestamp (ffmpeg's ``fps`` filter,
        nearest rounding: duplicated over gaps, dropped where frames crowd). None keeps every
        frame as it is (only deinterlacing).
    deinterlace : deinterlace with ``bwdif`` (one output frame per input frame, field order
        from the stream's flag or idet, every frame deinterlaced).

    Frames come out upright (rotation metadata applied). Deterministic (bit-exact FFV1).

    >>> normalise_video("phone.mp4", "work/phone.cfr.mkv", fps="30/1")   # doctest: +SKIP
    PosixPath('work/phone.cfr.mkv')
    """
    path = _check_file(Path(path))
    out_path = Path(out_path)
    if info is None:
        info = probe(path, deep=True)
    filters: list[str] = []
    if deinterlace:
        parity = {"tff": "tff", "bff": "bff"}.get(info.scan_order or "", "auto")
        filters.append(f"bwdif=mode=send_frame:parity={parity}:deint=all")
    if fps is not None:
        filters.append(f"fps=fps={fps_string(fps)}:round=near")
    if not filters:
        raise ValueError("normalise_video needs fps and/or deinterlace; nothing to do")
    pix_fmt = _ffv1_pix_fmt_for(info.pix_fmt, info.bit_depth)
    tmp = _temp_sibling(out_path, ".part.mkv")
    cmd = ffmpeg_base() + ["-sws_flags", _SWS_FLAGS, *_DECODE_FLAGS, "-i", str(path),
                           "-map", f"0:{info.video_stream_index}", "-an", "-sn", "-dn",
                           "-map_metadata", "-1", "-map_chapters", "-1",
                           "-vf", ",".join(filters), *_FFV1_ARGS, "-pix_fmt", pix_fmt,
                           "-fps_mode", "passthrough", *BITEXACT_FLAGS]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += ["-metadata", f"comment=normalised decode source of {path.name}",
            "-f", "matroska", str(tmp)]
    try:
        run_ffmpeg(cmd, what=f"normalising {path}",
                   hint="The video could not be decoded to the end; check it with ffprobe.")
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


#: Bump when :func:`normalise_video`'s output for the same inputs changes (cache key).
_NORMALISE_VERSION = 1


@dataclass
class DecodeSource:
    """The file the restoration stages decode, and what was done to get it.

    ``path`` is the original itself for ordinary films, or a normalised intermediate (constant
    frame rate and/or deinterlaced) for odd ones; the original is never changed. ``info`` is
    the probe of ``path`` (frame count, rate and size the deliverables must match), with the
    original's start timecode. ``original`` is the deep probe of the original (its audio streams
    go to the deliverables). ``notes`` are events for the catalog: one per unusual condition
    (:func:`source_notes`) plus one ``normalization`` event when an intermediate was made.
    """

    path: Path
    info: MediaInfo
    original: MediaInfo
    sha256: str
    normalised: bool
    notes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def prepare_source(path: str | os.PathLike, work_dir: str | os.PathLike, *,
                   info: MediaInfo | None = None, sha256: str | None = None,
                   deinterlace: bool = False) -> DecodeSource:
    """Decide what the stages decode: the original, or a normalised intermediate of it.

    Variable-frame-rate originals are converted to a constant rate (:func:`cfr_rate`);
    interlaced ones are deinterlaced with bwdif only when ``deinterlace`` is True. The
    intermediate goes to ``work_dir/normalised-<sha256 prefix>-<options>.mkv`` and is reused by
    later runs (same original and options give the same bytes). Ordinary originals are used
    as they are.

    Parameters
    ----------
    path : the original (only read).
    work_dir : folder for the intermediate.
    info : ``probe(path, deep=True)``; probed when None.
    sha256 : the original's sha256 (computed when None).
    deinterlace : the setting ``processing.deinterlace``.

    Example
    -------
    >>> src = prepare_source("phone.mp4", "work/item-00001/source")     # doctest: +SKIP
    >>> src.normalised, src.info.fps, [n["detail"]["condition"] for n in src.notes][:1]
    ...                                                                  # doctest: +SKIP
    (True, '30/1', ['variable frame rate'])
    """
    import time

    t0 = time.perf_counter()
    path = _check_file(Path(path))
    if info is None:
        info = probe(path, deep=True)
    if sha256 is None:
        sha256 = sha256_file(path)
    notes = source_notes(info, deinterlace=deinterlace)
    to_cfr = info.is_vfr
    do_deint = deinterlace and info.is_interlaced
    if not (to_cfr or do_deint):
        return DecodeSource(path=path, info=info, original=info, sha256=sha256,
                            normalised=False, notes=notes, seconds=time.perf_counter() - t0)
    rate = cfr_rate(info) if to_cfr else None
    key = hashlib.sha256(json.dumps(
        {"v": _NORMALISE_VERSION, "fps": fps_string(rate) if rate else None,
         "deinterlace": do_deint, "scan_order": info.scan_order}, sort_keys=True).encode()
    ).hexdigest()[:12]
    out = Path(work_dir) / f"normalised-{sha256[:16]}-{key}.mkv"
    reused = out.is_file()
    if not reused:
        normalise_video(path, out, info=info, fps=rate, deinterlace=do_deint)
    norm = probe(out)
    norm.timecode = info.timecode
    out_sha = sha256_file(out)
    filters = []
    if do_deint:
        filters.append("bwdif (send_frame, every frame)")
    if rate is not None:
        filters.append(f"fps={fps_string(rate)} (nearest timestamp)")
    reasons = (["variable frame rate"] if to_cfr else []) + (["deinterlace"] if do_deint else [])
    notes.append({
        "event_type": "normalization", "outcome": "warning" if to_cfr else "success",
        "detail": {
            "reason": " and ".join(reasons),
            "action": f"video re-timed/deinterlaced into a lossless FFV1 intermediate "
                      f"({', '.join(filters)}) that the stages decode instead of the original; "
                      f"the original is unchanged and its audio goes to the deliverables",
            "source": {"path": str(path), "sha256": sha256, "n_frames": info.n_frames,
                       "fps": info.fps, "avg_fps": info.avg_fps,
                       "frame_timing": info.frame_timing},
            "output": {"path": str(out), "sha256": out_sha, "n_frames": norm.n_frames,
                       "fps": norm.fps, "pix_fmt": norm.pix_fmt},
            "reused": reused, "tool": f"ffmpeg {ffmpeg_version()}",
        }})
    return DecodeSource(path=out, info=norm, original=info, sha256=out_sha, normalised=True,
                        notes=notes, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Fixity of originals, and the thin Prefect tasks the flows call
# --------------------------------------------------------------------------------------------


class FixityError(MediaError):
    """The original's checksum differs from the one recorded at ingest."""


@dataclass
class FixityResult:
    """Probe and sha256 of an original, checked against the value recorded at ingest."""

    info: MediaInfo
    sha256: str
    seconds: float


def check_fixity(path: str | os.PathLike, expected_sha256: str | None = None, *,
                 deep: bool = True) -> FixityResult:
    """Verify an original's sha256 (read-only), then probe it; :class:`FixityError` on mismatch.

    ``deep`` (default) probes with packet timing and interlace detection (see :func:`probe`).

    Example
    -------
    >>> check_fixity("film.mkv", expected_sha256="0" * 64)   # doctest: +SKIP
    Traceback (most recent call last):
    FixityError: ...
    """
    import time

    t0 = time.perf_counter()
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise FixityError(
            f"fixity failure: {path} has sha256 {digest}, but {expected_sha256} was recorded at "
            "ingest. The original changed or was replaced; restore it from the archive copy "
            "before running again.")
    info = probe(path, deep=deep)
    return FixityResult(info=info, sha256=digest, seconds=time.perf_counter() - t0)


def verify_fixity(path: str | os.PathLike, expected_sha256: str) -> str:
    """Re-hash an original after a run; raise :class:`FixityError` when it changed."""
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise FixityError(f"fixity failure after the run: {path} now has sha256 {digest}, "
                          f"expected {expected_sha256}. Check what else writes to that storage.")
    return digest


def _thin_tasks():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return (task(name="probe-and-fixity", cache_policy=NO_CACHE)(check_fixity),
            task(name="verify-fixity", cache_policy=NO_CACHE)(verify_fixity),
            task(name="prepare-source", cache_policy=NO_CACHE)(prepare_source))


probe_and_fixity_task, verify_fixity_task, prepare_source_task = _thin_tasks()
