"""Deliverables: preservation master, ProRes mezzanine, H.264 access copy, conformance.

``reassemble_master`` streams the restored shot intermediates, in order and one frame at a time,
into a single FFV1 (level 3, intra-only, sliced with CRCs) Matroska master at the source's exact
frame rate, with the source's start timecode and its audio streams copied bit for bit. It writes
a ``<master>.framemd5`` sidecar (per-frame MD5 of the decoded master) and proves with it that
the master holds exactly the frames it was fed (lossless). ``make_mezzanine`` encodes a ProRes
422 HQ MOV with PCM audio from the master, ``make_access`` an H.264/AAC MP4 viewing copy, and
``check_conformance`` runs MediaConch (implementation checks + a policy) on the master.

Every video deliverable is verified after writing (frame count by decoding, exact frame rate,
start timecode, frame size, number of audio streams; the master also its audio MD5s) and a
mismatch raises :class:`DeliverableError` leaving nothing behind. Files are written under a
temporary name and renamed, and are deterministic (bitexact muxing, fixed encoder threads):
rerunning on the same inputs gives byte-identical files.

Example
-------
>>> from reel.tasks.media import probe
>>> info = probe("film.mp4")                                          # doctest: +SKIP
>>> meta = {"comment": "colour is AI-derived by reel 0.1.0"}
>>> done = deliver_item(shots, "film.mp4", "out", info=info, stem="film", metadata=meta)
...                                                                   # doctest: +SKIP
>>> [f.kind for f in done.files]                                      # doctest: +SKIP
['master', 'framemd5', 'mezzanine', 'access']
>>> check_conformance(done.path_of("master"), "deploy/mediaconch/reel-ffv1-master.xml").passed
...                                                                   # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import media
from .media import (
    BITEXACT_FLAGS,
    INTERLACED_FIELD_ORDERS,
    MediaError,
    MediaInfo,
    ffmpeg_base,
    fps_string,
)

__all__ = [
    "DeliverableError",
    "master_pix_fmt",
    "reassemble_master",
    "make_mezzanine",
    "make_access",
    "framemd5_sidecar",
    "audio_md5s",
    "ConformanceResult",
    "check_conformance",
    "DeliveredFile",
    "DeliveredItem",
    "DELIVERABLE_KINDS",
    "deliver_item",
    "deliver_master",
    "deliver_copies",
    "deliver_master_task",
    "deliver_copies_task",
    "check_conformance_task",
]

#: x264's output depends on its thread count; a fixed count keeps access copies byte-identical
#: across machines with different numbers of cores.
X264_THREADS = 4
#: Colour matrix used to convert the RGB master to the YUV of the mezzanine and access copy
#: (and tagged in them).
ACCESS_COLOUR = "bt709"
#: ProRes 422 HQ (prores_ks profile 3) in 10-bit 4:2:2.
PRORES_PROFILE = 3
MEZZANINE_PIX_FMT = "yuv422p10le"
#: The video deliverables ``deliver_item`` makes by default, in order.
DELIVERABLE_KINDS: tuple[str, ...] = ("master", "mezzanine", "access")

_SCALE_FLAGS = "accurate_rnd+full_chroma_int+bitexact"


class DeliverableError(Exception):
    """A deliverable could not be made or failed verification (nothing was left behind)."""


def framemd5_sidecar(master: str | os.PathLike) -> Path:
    """Path of the framemd5 sidecar written next to a master: ``<master>.framemd5``."""
    master = Path(master)
    return master.with_name(master.name + ".framemd5")


def master_pix_fmt(bit_depth: int) -> str:
    """FFV1 pixel format of the master for a source of ``bit_depth`` bits per sample.

    8-bit sources: ``bgr0`` (FFmpeg 5.1's lossless 8-bit RGB FFV1 format; decodes to the same
    values as gbrp/rgb24). Deeper sources: ``gbrp10le``/``gbrp12le``/``gbrp16le`` so the master
    is not truncated to 8 bits. Restored colour is computed at 8 bits per channel; it is scaled
    up by bit replication (``v << 2 | v >> 6`` for 10 bits: 0 → 0, 255 → 1023), so the extra
    bits carry no extra precision.

    >>> master_pix_fmt(8), master_pix_fmt(10), master_pix_fmt(12), master_pix_fmt(16)
    ('bgr0', 'gbrp10le', 'gbrp12le', 'gbrp16le')
    """
    return media._master_rgb_pix_fmt(int(bit_depth))


def native_frame(rgb_u8: np.ndarray, pix_fmt: str) -> bytes:
    """The raw bytes of an RGB uint8 ``(H, W, 3)`` frame in the master's pixel format.

    ``bgr0``: packed B, G, R, 0. ``gbrpNNle``: planes G, B, R of little-endian uint16 holding
    the 8-bit values scaled up by bit replication. These are exactly the bytes ffmpeg's
    framemd5 hashes for a decoded master frame, which is how the master is proven lossless.

    >>> native_frame(np.full((1, 1, 3), 255, np.uint8), "gbrp10le")
    b'\\xff\\x03\\xff\\x03\\xff\\x03'
    """
    h, w, _ = rgb_u8.shape
    if pix_fmt == "bgr0":
        out = np.zeros((h, w, 4), np.uint8)
        out[..., 0] = rgb_u8[..., 2]
        out[..., 1] = rgb_u8[..., 1]
        out[..., 2] = rgb_u8[..., 0]
        return out.tobytes()
    depth = {"gbrp10le": 10, "gbrp12le": 12, "gbrp16le": 16}.get(pix_fmt)
    if depth is None:
        raise ValueError(f"unsupported master pixel format {pix_fmt!r}")
    shift = depth - 8
    v = rgb_u8.astype(np.uint16)
    v = (v << shift) | (v >> (8 - shift))
    return np.stack([v[..., 1], v[..., 2], v[..., 0]]).astype("<u2").tobytes()


def _metadata_args(metadata: Mapping[str, str] | None) -> list[str]:
    args: list[str] = []
    for k, v in sorted((metadata or {}).items()):
        if not k or "=" in k:
            raise ValueError(f"invalid metadata key {k!r}")
        args += ["-metadata", f"{k}={v}"]
    return args


def _audio_language_args(audio_info: MediaInfo) -> list[str]:
    args: list[str] = []
    for j, a in enumerate(audio_info.audio_streams):
        if a.get("language"):
            args += [f"-metadata:s:a:{j}", f"language={a['language']}"]
    return args


def _framemd5_hashes(path: Path) -> list[str]:
    hashes = []
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                hashes.append(line.rsplit(",", 1)[1].strip())
    return hashes


def _stderr_text(fh) -> str:
    fh.seek(0)
    text = fh.read().decode("utf-8", "replace").strip()
    return text[-2000:] if text else "no message"


def _even_size(width: int, height: int) -> tuple[int, int]:
    return width + width % 2, height + height % 2


# --------------------------------------------------------------------------------------------
# audio checks
# --------------------------------------------------------------------------------------------

#: PCM codec that represents a decoder's sample format exactly (for hashing decoded samples).
_EXACT_PCM = {"u8": "pcm_u8", "s16": "pcm_s16le", "s32": "pcm_s32le", "s64": "pcm_s64le",
              "flt": "pcm_f32le", "dbl": "pcm_f64le"}


def audio_md5s(path: str | os.PathLike, *, decoded: bool = True,
               sample_fmts: Sequence[str | None] | None = None) -> list[str]:
    """MD5 of every audio stream of ``path`` (one ffmpeg pass, ``streamhash`` muxer).

    ``decoded=True`` hashes the decoded samples, each stream in a PCM format that holds its
    decoder's sample format exactly (``sample_fmts``, e.g. from ``MediaInfo.audio_streams``;
    probed when None). ``decoded=False`` hashes the compressed packets' payloads (``-c copy``),
    which is what survives a remux bit for bit even when container-level delays differ.

    >>> audio_md5s("film.mkv")                                   # doctest: +SKIP
    ['1f0c…', '9a4e…']
    """
    path = Path(path)
    if sample_fmts is None:
        sample_fmts = [a.get("sample_fmt") for a in media._video_meta(path).audio]
    if not sample_fmts:
        return []
    cmd = ffmpeg_base() + ["-i", str(path), "-map", "0:a", "-vn", "-sn", "-dn"]
    if decoded:
        for j, fmt in enumerate(sample_fmts):
            cmd += [f"-c:a:{j}", _EXACT_PCM.get((fmt or "s16").rstrip("p"), "pcm_s32le")]
    else:
        cmd += ["-c:a", "copy"]
    cmd += ["-f", "streamhash", "-hash", "md5", "-"]
    out = media.run_ffmpeg(cmd, what=f"hashing the audio of {path}",
                           hint="The audio could not be read to the end; the file may be damaged.")
    hashes = []
    for line in out.decode("ascii", "replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) == 3 and parts[1] == "a" and parts[2].startswith("MD5="):
            hashes.append(parts[2][4:])
    return hashes


def _check_master_audio(source: Path, master: Path, audio_info: MediaInfo,
                        name: str) -> list[dict[str, Any]]:
    """Prove the master's audio streams are the source's, bit for bit; return the evidence."""
    if not audio_info.audio_streams:
        return []
    fmts = [a.get("sample_fmt") for a in audio_info.audio_streams]
    try:
        src_dec = audio_md5s(source, sample_fmts=fmts)
        out_dec = audio_md5s(master, sample_fmts=fmts)
        src_pkt = out_pkt = None
        if src_dec != out_dec:
            src_pkt = audio_md5s(source, decoded=False)
            out_pkt = audio_md5s(master, decoded=False)
    except MediaError as exc:
        raise DeliverableError(f"checking the audio of {name} failed: {exc}") from exc
    evidence = []
    for j, a in enumerate(audio_info.audio_streams):
        if j < len(src_dec) and j < len(out_dec) and src_dec[j] == out_dec[j]:
            evidence.append({"stream": j, "codec": a.get("codec"), "md5": out_dec[j],
                             "compared": "decoded samples"})
        elif src_pkt is not None and out_pkt is not None and j < len(src_pkt) \
                and j < len(out_pkt) and src_pkt[j] == out_pkt[j]:
            evidence.append({
                "stream": j, "codec": a.get("codec"), "md5": out_pkt[j],
                "compared": "packets",
                "note": "packet payloads identical; decoded samples differ by the encoder "
                        "priming/delay that the source container hid (e.g. AAC in MP4 edit "
                        "lists) and Matroska does not store"})
        else:
            raise DeliverableError(
                f"audio stream {j} of {name} is not bit-identical to the source's (neither "
                f"decoded samples nor packets match); the deliverable was not kept.")
    return evidence


# --------------------------------------------------------------------------------------------
# the master
# --------------------------------------------------------------------------------------------


def reassemble_master(shot_paths: Sequence[str | os.PathLike], source: str | os.PathLike,
                      out_path: str | os.PathLike, *, info: MediaInfo,
                      metadata: Mapping[str, str] | None = None,
                      audio_info: MediaInfo | None = None) -> Path:
    """Concatenate restored shots into the FFV1 preservation master (+ framemd5 sidecar).

    Parameters
    ----------
    shot_paths : shot intermediates in film order; together they must hold exactly
        ``info.n_frames`` frames of the source's display size.
    source : the original film; its audio streams (if any) are copied unchanged.
    out_path : the master (``.mkv``). The sidecar goes to :func:`framemd5_sidecar` (out_path).
    info : probe of what the stages decoded (the source, or its normalised intermediate):
        exact frame rate, frame count, size, bit depth, field order and start timecode.
    metadata : container tags, e.g. ``{"comment": "colour is AI-derived by reel 0.1.0"}``.
    audio_info : probe of ``source`` for its audio streams (default: ``info``).

    Returns
    -------
    Path
        ``out_path``. FFV1 level 3, ``-g 1``, 4 slices with CRCs, RGB in
        :func:`master_pix_fmt` (``info.bit_depth``), the source's field-order flag.

    Raises
    ------
    DeliverableError
        Wrong frame size or count, frames that do not decode back identically, wrong frame
        rate or timecode, audio that is not bit-identical, or an ffmpeg failure. Neither the
        master nor the sidecar is left behind.

    Notes
    -----
    Audio packets are copied bit for bit and checked: decoded-sample MD5s must match the
    source's, or, when they cannot (AAC from MP4, whose edit list hides the encoder-priming
    samples that FFmpeg 5.1's Matroska muxer cannot store: the master's decoders then also
    output the priming samples, sync is kept), the packet-payload MD5s must match.
    """
    return _make_master(shot_paths, source, out_path, info=info, metadata=metadata,
                        audio_info=audio_info)[0]


def _make_master(shot_paths, source, out_path, *, info: MediaInfo,
                 metadata: Mapping[str, str] | None,
                 audio_info: MediaInfo | None) -> tuple[Path, dict[str, Any]]:
    t0 = time.perf_counter()
    out_path = Path(out_path)
    source = Path(source)
    audio_info = audio_info or info
    shot_paths = [Path(p) for p in shot_paths]
    if not shot_paths:
        raise DeliverableError("no shot intermediates given; nothing to reassemble.")
    width, height = info.display_size
    fps = fps_string(info.fps)
    pix_fmt = master_pix_fmt(info.bit_depth)
    sidecar = framemd5_sidecar(out_path)
    tmp = media._temp_sibling(out_path, ".part.mkv")
    tmp_md5 = media._temp_sibling(sidecar, ".part")

    cmd = ffmpeg_base() + ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{width}x{height}",
                           "-framerate", fps, "-i", "pipe:0"]
    if audio_info.has_audio:
        cmd += ["-i", str(source), "-map", "0:v", "-map", "1:a", "-c:a", "copy"]
    else:
        cmd += ["-map", "0:v"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", *media._FFV1_ARGS,
            "-pix_fmt", pix_fmt, "-fps_mode", "passthrough", *BITEXACT_FLAGS]
    if info.field_order in INTERLACED_FIELD_ORDERS:
        cmd += ["-field_order", info.field_order]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += _audio_language_args(audio_info) + _metadata_args(metadata)
    cmd += ["-f", "matroska", str(tmp)]

    ok = False
    try:
        fed = _encode_from_shots(cmd, shot_paths, (height, width, 3), pix_fmt, out_path)
        if len(fed) != info.n_frames:
            raise DeliverableError(
                f"the shots of {out_path.name} hold {len(fed)} frames but the source has "
                f"{info.n_frames}; re-run the shots whose frame ranges are incomplete.")
        try:
            media.write_framemd5(tmp, tmp_md5)
            meta = media._video_meta(tmp)
        except MediaError as exc:
            raise DeliverableError(f"verifying {out_path.name} failed: {exc}") from exc
        decoded = _framemd5_hashes(tmp_md5)
        _verify(out_path, len(decoded), meta.fps, len(meta.audio), info,
                timecode=media._timecode_of(meta), size=meta.decoded_size, audio_info=audio_info)
        bad = next((i for i, (a, b) in enumerate(zip(fed, decoded)) if a != b), None)
        if bad is not None:
            raise DeliverableError(
                f"frame {bad} of {out_path.name} does not decode to the frame it was made from "
                f"(framemd5 mismatch); the master is not lossless and was not kept.")
        audio = _check_master_audio(source, tmp, audio_info, out_path.name)
        os.replace(tmp_md5, sidecar)
        os.replace(tmp, out_path)
        ok = True
    finally:
        tmp.unlink(missing_ok=True)
        tmp_md5.unlink(missing_ok=True)
        if not ok and not out_path.exists():
            sidecar.unlink(missing_ok=True)  # a sidecar never describes a missing master
    return out_path, {
        "container": "matroska", "video_codec": "ffv1", "ffv1_level": 3, "gop": 1,
        "slices": 4, "slice_crc": True, "pix_fmt": pix_fmt,
        "bit_depth": int(pix_fmt[4:6]) if pix_fmt.startswith("gbrp") else 8,
        "precision_note": (None if pix_fmt == "bgr0" else
                           "restored colour has 8-bit precision, scaled up by bit replication"),
        "size": [width, height], "fps": fps, "n_frames": len(fed), "timecode": info.timecode,
        "field_order": info.field_order if info.field_order in INTERLACED_FIELD_ORDERS else None,
        "lossless_check": "framemd5 of the decoded master equals the MD5s of the frames fed "
                          "from the restored shots, frame by frame",
        "audio": audio, "seconds": round(time.perf_counter() - t0, 3),
    }


def _verify(out_path: Path, n_frames: int, fps: Fraction | None, n_audio: int,
            info: MediaInfo, *, timecode: str | None = None, size: tuple[int, int] | None = None,
            audio_info: MediaInfo | None = None, check_timecode: bool = True,
            even: bool = False) -> None:
    audio_info = audio_info or info
    if n_frames != info.n_frames:
        raise DeliverableError(f"{out_path.name} decodes to {n_frames} frames but the source "
                               f"has {info.n_frames}; the deliverable was not kept.")
    if fps is None or fps != Fraction(info.fps):
        raise DeliverableError(f"{out_path.name} has frame rate {fps} but the source has "
                               f"{info.fps}; the deliverable was not kept.")
    if n_audio != len(audio_info.audio_streams):
        raise DeliverableError(f"{out_path.name} has {n_audio} audio streams but the source "
                               f"has {len(audio_info.audio_streams)}; the deliverable was not "
                               f"kept.")
    if check_timecode and (timecode or None) != (info.timecode or None):
        raise DeliverableError(f"{out_path.name} starts at timecode {timecode} but the source "
                               f"at {info.timecode}; the deliverable was not kept.")
    if size is not None:
        want = _even_size(*info.display_size) if even else tuple(info.display_size)
        if tuple(size) != tuple(want):
            raise DeliverableError(f"{out_path.name} is {size[0]}x{size[1]} but should be "
                                   f"{want[0]}x{want[1]} (source {info.display_size[0]}x"
                                   f"{info.display_size[1]}); the deliverable was not kept.")


def _encode_from_shots(cmd: list[str], shot_paths: list[Path], shape: tuple[int, int, int],
                       pix_fmt: str, out_path: Path) -> list[str]:
    """Feed every shot's frames (in ``pix_fmt``) to the encoder; return their MD5s in order."""
    md5s: list[str] = []
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err)
        assert proc.stdin is not None
        done = False
        try:
            for shot in shot_paths:
                for frame in media.iter_frames(shot, pix_fmt="rgb24"):
                    if frame.shape != shape:
                        raise DeliverableError(
                            f"shot {shot} has frames of {frame.shape[1]}x{frame.shape[0]} but "
                            f"the master is {shape[1]}x{shape[0]}; re-render that shot at the "
                            f"source size.")
                    data = native_frame(frame, pix_fmt)
                    try:
                        proc.stdin.write(data)
                    except (BrokenPipeError, OSError) as exc:
                        proc.wait()
                        raise DeliverableError(
                            f"the encoder for {out_path.name} stopped: {_stderr_text(err)}"
                        ) from exc
                    md5s.append(hashlib.md5(data).hexdigest())
            proc.stdin.close()
            rc = proc.wait()
            done = True
            if rc != 0:
                raise DeliverableError(f"encoding {out_path.name} failed (exit code {rc}): "
                                       f"{_stderr_text(err)}. If the source's audio codec "
                                       f"cannot be stored in Matroska, convert it first.")
        except MediaError as exc:
            raise DeliverableError(f"reading the shots for {out_path.name} failed: {exc}") \
                from exc
        finally:
            if not done:
                try:
                    proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
    return md5s


# --------------------------------------------------------------------------------------------
# mezzanine and access copy (both encoded from the master)
# --------------------------------------------------------------------------------------------


def _pcm_for(stream: Mapping[str, Any]) -> str:
    """PCM codec of the mezzanine for a source audio stream: 16-bit sources stay 16-bit,
    everything deeper (24/32-bit PCM, float decoders such as AAC's) becomes 24-bit."""
    bits = int(stream.get("bits_per_sample") or 0)
    return "pcm_s16le" if 0 < bits <= 16 else "pcm_s24le"


def _from_master_input(master: Path, info: MediaInfo) -> list[str]:
    fps = fps_string(info.fps)
    try:
        master_fps = media._video_meta(master).fps
    except MediaError as exc:
        raise DeliverableError(f"cannot read the master {master}: {exc}") from exc
    if master_fps != Fraction(info.fps):
        raise DeliverableError(f"the master {master.name} runs at {master_fps} fps but the "
                               f"source at {info.fps}; rebuild the master first.")
    return [*media._DECODE_FLAGS, "-r", fps, "-i", str(master)]


def _yuv_filter(info: MediaInfo, pix_fmt: str) -> tuple[str, tuple[int, int] | None]:
    """Pad to an even size (black, right/bottom), flag fields, convert RGB to BT.709 YUV."""
    w, h = info.display_size
    pw, ph = _even_size(w, h)
    parts = []
    if (pw, ph) != (w, h):
        parts.append(f"pad={pw}:{ph}:0:0:black")
    if info.field_order in INTERLACED_FIELD_ORDERS and pix_fmt == MEZZANINE_PIX_FMT:
        parts.append("setfield=" + ("tff" if info.field_order in ("tt", "bt") else "bff"))
    parts.append(f"scale=out_color_matrix={ACCESS_COLOUR}:out_range=tv:flags={_SCALE_FLAGS}")
    parts.append(f"format={pix_fmt}")
    # tag the frames themselves: prores_ks writes the frame's (not the stream's) colour
    # description into its frame headers, and FFmpeg 5.1's scale filter does not set it
    parts.append(f"setparams=range=tv:color_primaries={ACCESS_COLOUR}:"
                 f"color_trc={ACCESS_COLOUR}:colorspace={ACCESS_COLOUR}")
    return ",".join(parts), ((pw, ph) if (pw, ph) != (w, h) else None)


def _colour_tags() -> list[str]:
    return ["-colorspace", ACCESS_COLOUR, "-color_primaries", ACCESS_COLOUR,
            "-color_trc", ACCESS_COLOUR, "-color_range", "tv"]


def _finish_copy(cmd: list[str], tmp: Path, out_path: Path, info: MediaInfo,
                 audio_info: MediaInfo, what: str) -> tuple[int, int]:
    """Run an encoder command writing ``tmp``, verify it, move it to ``out_path``."""
    try:
        try:
            media.run_ffmpeg(cmd, what=f"encoding the {what} {out_path.name}",
                             hint="Check that the master is complete and readable.")
            meta = media._video_meta(tmp)
            n = media.count_frames(tmp, _stream_index=meta.index)
        except MediaError as exc:
            raise DeliverableError(str(exc)) from exc
        _verify(out_path, n, meta.fps, len(meta.audio), info, timecode=media._timecode_of(meta),
                size=meta.decoded_size, audio_info=audio_info, even=True)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return meta.decoded_size


def make_mezzanine(master: str | os.PathLike, out_path: str | os.PathLike, *,
                   source: str | os.PathLike | None = None, info: MediaInfo,
                   metadata: Mapping[str, str] | None = None,
                   audio_info: MediaInfo | None = None) -> Path:
    """Encode the ProRes 422 HQ mezzanine (MOV, PCM audio) of a master.

    ``prores_ks`` profile 3 (HQ), ``yuv422p10le`` converted from the master's RGB with the
    BT.709 matrix (tagged), the source's exact frame rate, start timecode and field order
    (interlaced sources are coded as interlaced), every audio stream of ``source`` (or of the
    master, which holds a lossless copy, when None) decoded to PCM: ``pcm_s16le`` for 16-bit
    sources, ``pcm_s24le`` otherwise. Odd frame sizes are padded (black) to even ones.

    Returns ``out_path``; raises :class:`DeliverableError` (leaving nothing) when the copy's
    frame count, rate, timecode, size or audio streams differ from ``info`` or ffmpeg fails.

    >>> make_mezzanine("film.master.mkv", "film.mezzanine.mov", source="film.mp4",
    ...                info=probe("film.mp4"))                          # doctest: +SKIP
    PosixPath('film.mezzanine.mov')
    """
    return _make_mezzanine(master, out_path, source=source, info=info, metadata=metadata,
                           audio_info=audio_info)[0]


def _make_mezzanine(master, out_path, *, source, info: MediaInfo, metadata,
                    audio_info: MediaInfo | None) -> tuple[Path, dict[str, Any]]:
    t0 = time.perf_counter()
    master, out_path = Path(master), Path(out_path)
    audio_info = audio_info or info
    audio_from = Path(source) if source is not None else master
    vf, padded = _yuv_filter(info, MEZZANINE_PIX_FMT)
    cmd = ffmpeg_base() + _from_master_input(master, info)
    pcm = [_pcm_for(a) for a in audio_info.audio_streams]
    if pcm:
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a"]
        for j, codec in enumerate(pcm):
            cmd += [f"-c:a:{j}", codec]
    else:
        cmd += ["-map", "0:v:0"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-vf", vf,
            "-c:v", "prores_ks", "-profile:v", str(PRORES_PROFILE), "-pix_fmt", MEZZANINE_PIX_FMT,
            *_colour_tags(), "-fps_mode", "passthrough", *BITEXACT_FLAGS]
    if info.field_order in INTERLACED_FIELD_ORDERS:
        cmd += ["-flags:v", "+ildct+bitexact", "-field_order", info.field_order]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += _audio_language_args(audio_info) + _metadata_args(metadata)
    tmp = media._temp_sibling(out_path, ".part.mov")
    cmd += ["-f", "mov", str(tmp)]
    size = _finish_copy(cmd, tmp, out_path, info, audio_info, "mezzanine")
    return out_path, {
        "container": "mov", "video_codec": "prores", "profile": "422 HQ (prores_ks profile 3)",
        "pix_fmt": MEZZANINE_PIX_FMT, "colour_matrix": ACCESS_COLOUR, "size": list(size),
        "padded_to": list(padded) if padded else None, "fps": fps_string(info.fps),
        "n_frames": info.n_frames, "timecode": info.timecode,
        "field_order": info.field_order if info.field_order in INTERLACED_FIELD_ORDERS else None,
        "audio_codecs": pcm, "seconds": round(time.perf_counter() - t0, 3),
    }


def make_access(master: str | os.PathLike, out_path: str | os.PathLike, *,
                source: str | os.PathLike | None = None, info: MediaInfo,
                metadata: Mapping[str, str] | None = None,
                audio_info: MediaInfo | None = None) -> Path:
    """Encode the H.264/AAC MP4 access copy of a master.

    libx264 (``-preset medium -crf 18``, ``yuv420p``, BT.709 matrix and tags, fixed
    :data:`X264_THREADS`), ``+faststart``, the source's frame rate (exact rational) and
    timecode, audio as AAC 192 kb/s per stream from ``source`` (or from the master, which holds
    a lossless copy of the source audio, when ``source`` is None). Odd frame sizes are padded
    by one pixel (black, right/bottom) to the even size 4:2:0 needs. Interlaced material is
    encoded as progressive frames (the access copy is for viewing).

    Returns ``out_path``; raises :class:`DeliverableError` (leaving nothing) when the copy's
    frame count, rate, timecode, size or audio streams differ from ``info`` or ffmpeg fails.
    """
    return _make_access(master, out_path, source=source, info=info, metadata=metadata,
                        audio_info=audio_info)[0]


def _make_access(master, out_path, *, source, info: MediaInfo, metadata,
                 audio_info: MediaInfo | None) -> tuple[Path, dict[str, Any]]:
    t0 = time.perf_counter()
    master, out_path = Path(master), Path(out_path)
    audio_info = audio_info or info
    audio_from = Path(source) if source is not None else master
    vf, padded = _yuv_filter(info, "yuv420p")
    cmd = ffmpeg_base() + _from_master_input(master, info)
    if audio_info.has_audio:
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a",
                "-c:a", "aac", "-b:a", "192k"]
    else:
        cmd += ["-map", "0:v:0"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-vf", vf,
            "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p",
            "-threads:v", str(X264_THREADS), *_colour_tags(), "-fps_mode", "passthrough",
            "-movflags", "+faststart+use_metadata_tags", *BITEXACT_FLAGS]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += _audio_language_args(audio_info) + _metadata_args(metadata)
    tmp = media._temp_sibling(out_path, ".part.mp4")
    cmd += ["-f", "mp4", str(tmp)]
    size = _finish_copy(cmd, tmp, out_path, info, audio_info, "access copy")
    return out_path, {
        "container": "mp4", "video_codec": "h264", "preset": "medium", "crf": 18,
        "pix_fmt": "yuv420p", "colour_matrix": ACCESS_COLOUR, "size": list(size),
        "padded_to": list(padded) if padded else None, "fps": fps_string(info.fps),
        "n_frames": info.n_frames, "timecode": info.timecode,
        "audio_codecs": ["aac"] * len(audio_info.audio_streams),
        "seconds": round(time.perf_counter() - t0, 3),
    }


# --------------------------------------------------------------------------------------------
# conformance (MediaConch)
# --------------------------------------------------------------------------------------------

_MC_NS = {"mc": "https://mediaarea.net/mediaconch"}


@dataclass(frozen=True)
class ConformanceResult:
    """MediaConch's verdict on a file: implementation checks and a policy.

    ``checked`` is False (and ``passed`` None) when ``mediaconch`` is not installed or the
    policy file is missing; ``summary`` says so. ``failed_rules`` lists the policy rules that
    failed (``name``, ``requested``, ``actual``); ``implementation`` the implementation
    checker's counts and failing check ids.
    """

    checked: bool
    passed: bool | None
    summary: str
    tool: str | None = None
    policy_name: str | None = None
    policy_path: str | None = None
    policy_sha256: str | None = None
    rules_run: int = 0
    failed_rules: list[dict[str, str]] = field(default_factory=list)
    implementation: dict[str, Any] | None = None
    seconds: float = 0.0

    def to_detail(self) -> dict[str, Any]:
        """JSON-safe dict for the catalog (events.detail)."""
        return {"checked": self.checked, "passed": self.passed, "summary": self.summary,
                "tool": self.tool, "policy_name": self.policy_name,
                "policy_path": self.policy_path, "policy_sha256": self.policy_sha256,
                "rules_run": self.rules_run, "failed_rules": list(self.failed_rules),
                "implementation": self.implementation, "seconds": round(self.seconds, 3)}


def _mediaconch(args: list[str], home: Path) -> str:
    # MediaConch caches reports in a database under the user's data folder keyed by path and
    # modification time, and can return a stale report for a rewritten file: --Force and a
    # private, throwaway HOME avoid both that and sharing one database between processes.
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CONFIG_HOME": str(home / "config")}
    proc = subprocess.run([shutil.which("mediaconch") or "mediaconch", "--Force", *args],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, check=False)
    if proc.returncode != 0:
        raise DeliverableError(f"mediaconch {' '.join(args[:-1])} failed (exit code "
                               f"{proc.returncode}): {proc.stderr.decode('utf-8', 'replace')}")
    return proc.stdout.decode("utf-8", "replace")


def check_conformance(path: str | os.PathLike, policy: str | os.PathLike | None) \
        -> ConformanceResult:
    """Run MediaConch's implementation checker and ``policy`` on ``path``.

    ``passed`` is True when the policy passes and the implementation checker reports no
    failure. Without ``mediaconch`` on PATH, or without a policy file, nothing is checked
    (``checked=False``) and the summary says why.

    >>> r = check_conformance("film.master.mkv", "deploy/mediaconch/reel-ffv1-master.xml")
    ...                                                          # doctest: +SKIP
    >>> r.passed, r.summary                                      # doctest: +SKIP
    (True, 'pass: policy "reel FFV1/Matroska preservation master" (11 rules), ...')
    """
    t0 = time.perf_counter()
    path = Path(path)
    if shutil.which("mediaconch") is None:
        return ConformanceResult(False, None, "not checked: mediaconch is not installed "
                                 "(Debian package mediaconch)")
    if policy is None or not Path(policy).is_file():
        return ConformanceResult(False, None, f"not checked: policy file {policy} not found")
    policy = Path(policy).resolve()
    with tempfile.TemporaryDirectory(prefix="reel-mediaconch-") as home:
        home_p = Path(home)
        version = _mediaconch(["--Version"], home_p).strip().splitlines()
        tool = " ".join(version[0].replace("Command Line Interface", "").split()) \
            if version else None
        # The CLI polls its checker every 0.5 s, so each run takes >= 0.5 s of mostly
        # sleeping, and one run cannot give both reports: the two run side by side, each
        # with its own HOME (its own report database).
        homes = [home_p / "policy", home_p / "implementation"]
        for h in homes:
            h.mkdir()
        with ThreadPoolExecutor(2) as pool:
            pol_job = pool.submit(_mediaconch, ["-p", str(policy), "-fx", str(path)], homes[0])
            impl_job = pool.submit(_mediaconch, ["-mc", "-fx", str(path)], homes[1])
            pol_xml, impl_xml = pol_job.result(), impl_job.result()
    try:
        pol_root = ET.fromstring(pol_xml)
        impl_root = ET.fromstring(impl_xml)
    except ET.ParseError as exc:
        raise DeliverableError(f"mediaconch gave a report that is not XML for {path}: {exc}") \
            from exc
    pol = pol_root.find(".//mc:policy", _MC_NS)
    if pol is None:
        raise DeliverableError(f"mediaconch gave no policy result for {path}")
    failed_rules = [{"name": r.get("name", ""), "requested": r.get("requested", ""),
                     "actual": r.get("actual", "")}
                    for r in pol.iter(f"{{{_MC_NS['mc']}}}rule") if r.get("outcome") == "fail"]
    impl = {"checks_run": 0, "fail_count": 0, "warn_count": 0, "failed_checks": []}
    for ic in impl_root.iter(f"{{{_MC_NS['mc']}}}implementationChecks"):
        impl["checks_run"] += int(ic.get("checks_run") or 0)
        impl["fail_count"] += int(ic.get("fail_count") or 0)
        impl["warn_count"] += int(ic.get("warn_count") or 0)
        impl["failed_checks"] += [c.get("icid") for c in ic.iter(f"{{{_MC_NS['mc']}}}check")
                                  if int(c.get("fail_count") or 0) > 0]
    policy_ok = pol.get("outcome") == "pass"
    passed = policy_ok and impl["fail_count"] == 0
    rules_run = int(pol.get("rules_run") or 0)
    summary = (f"{'pass' if passed else 'fail'}: policy \"{pol.get('name')}\" "
               f"({rules_run} rules, {len(failed_rules)} failed"
               + (": " + "; ".join(r["name"] for r in failed_rules) if failed_rules else "")
               + f"), implementation checks {impl['checks_run']} run, "
               f"{impl['fail_count']} failed")
    return ConformanceResult(
        checked=True, passed=passed, summary=summary, tool=tool, policy_name=pol.get("name"),
        policy_path=str(policy), policy_sha256=media.sha256_file(policy), rules_run=rules_run,
        failed_rules=failed_rules, implementation=impl, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# One item's deliverable set, and its thin Prefect tasks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveredFile:
    """One delivered file. ``detail`` holds how it was made and checked (for provenance)."""

    kind: str  # master | framemd5 | mezzanine | access | sidecar | premis
    path: Path
    sha256: str
    n_frames: int | None
    fps: str | None
    codec: str | None
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class DeliveredItem:
    files: list[DeliveredFile]
    #: the restored shot intermediates the master was made from: [{"path", "sha256"}]
    inputs: list[dict[str, str]] = field(default_factory=list)

    def path_of(self, kind: str) -> Path:
        return next(f.path for f in self.files if f.kind == kind)


def deliver_item(shot_paths: Sequence[str | os.PathLike], source: str | os.PathLike,
                 out_dir: str | os.PathLike, *, info: MediaInfo, stem: str,
                 metadata: Mapping[str, str] | None = None,
                 audio_info: MediaInfo | None = None,
                 kinds: Sequence[str] = DELIVERABLE_KINDS) -> DeliveredItem:
    """Master (FFV1/MKV + framemd5 sidecar), mezzanine (ProRes/MOV), access (H.264/MP4).

    Files are ``<out_dir>/<stem>.master.mkv``, ``….master.mkv.framemd5``,
    ``<stem>.mezzanine.mov`` and ``<stem>.access.mp4``; each is verified against ``info``
    (see the module docstring). ``source`` is the original (audio donor, probed as
    ``audio_info``); ``info`` describes the frames the shots hold (the original's probe, or
    its normalised intermediate's). ``kinds`` selects deliverables (the master is always made).
    This is :func:`deliver_master` followed by :func:`deliver_copies`; the restore flow calls
    the two itself, to check the master's conformance while the copies are encoded.
    """
    _check_kinds(kinds)
    master = deliver_master(shot_paths, source, out_dir, info=info, stem=stem,
                            metadata=metadata, audio_info=audio_info)
    return deliver_copies(master, source, out_dir, info=info, stem=stem, metadata=metadata,
                          audio_info=audio_info, kinds=kinds)


def _check_kinds(kinds: Sequence[str]) -> None:
    unknown = set(kinds) - set(DELIVERABLE_KINDS)
    if unknown:
        raise ValueError(f"unknown deliverable kinds {sorted(unknown)}; "
                         f"choose from {DELIVERABLE_KINDS}")


def deliver_master(shot_paths: Sequence[str | os.PathLike], source: str | os.PathLike,
                   out_dir: str | os.PathLike, *, info: MediaInfo, stem: str,
                   metadata: Mapping[str, str] | None = None,
                   audio_info: MediaInfo | None = None) -> DeliveredItem:
    """The master and its framemd5 sidecar of :func:`deliver_item` (same arguments)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    audio_info = audio_info or info
    fps = fps_string(info.fps)
    inputs = [{"path": str(p), "sha256": media.sha256_file(p)} for p in shot_paths]
    master, m_detail = _make_master(shot_paths, source, out_dir / f"{stem}.master.mkv",
                                    info=info, metadata=metadata, audio_info=audio_info)
    sidecar = framemd5_sidecar(master)
    files = [
        DeliveredFile("master", master, media.sha256_file(master), info.n_frames, fps, "ffv1",
                      {**m_detail, **_tool()}),
        DeliveredFile("framemd5", sidecar, media.sha256_file(sidecar), info.n_frames, fps, None,
                      {"of": str(master), "hash": "MD5 per decoded frame, "
                                                  f"{m_detail['pix_fmt']}"}),
    ]
    return DeliveredItem(files=files, inputs=inputs)


def deliver_copies(master: DeliveredItem, source: str | os.PathLike,
                   out_dir: str | os.PathLike, *, info: MediaInfo, stem: str,
                   metadata: Mapping[str, str] | None = None,
                   audio_info: MediaInfo | None = None,
                   kinds: Sequence[str] = DELIVERABLE_KINDS) -> DeliveredItem:
    """The mezzanine and access copy of :func:`deliver_item`, encoded from ``master`` (what
    :func:`deliver_master` returned); returns ``master``'s files followed by the copies."""
    _check_kinds(kinds)
    out_dir = Path(out_dir)
    audio_info = audio_info or info
    fps = fps_string(info.fps)
    master_path = master.path_of("master")
    files = list(master.files)
    if "mezzanine" in kinds:
        mezz, d = _make_mezzanine(master_path, out_dir / f"{stem}.mezzanine.mov", source=source,
                                  info=info, metadata=metadata, audio_info=audio_info)
        files.append(DeliveredFile("mezzanine", mezz, media.sha256_file(mezz), info.n_frames,
                                   fps, "prores", {**d, **_tool()}))
    if "access" in kinds:
        acc, d = _make_access(master_path, out_dir / f"{stem}.access.mp4", source=source,
                              info=info, metadata=metadata, audio_info=audio_info)
        files.append(DeliveredFile("access", acc, media.sha256_file(acc), info.n_frames, fps,
                                   "h264", {**d, **_tool()}))
    return DeliveredItem(files=files, inputs=list(master.inputs))


def _tool() -> dict[str, str]:
    return {"tool": f"ffmpeg {media.ffmpeg_version()}"}


def _thin_tasks():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return (task(name="deliver-master", cache_policy=NO_CACHE)(deliver_master),
            task(name="deliver-copies", cache_policy=NO_CACHE)(deliver_copies),
            task(name="conformance", cache_policy=NO_CACHE)(check_conformance))


deliver_master_task, deliver_copies_task, check_conformance_task = _thin_tasks()
