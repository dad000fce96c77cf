"""Deliverables: the lossless preservation master and the H.264 access copy.

``reassemble_master`` streams the restored shot intermediates, in order and one frame at a time,
into a single FFV1 (level 3, intra-only, sliced with CRCs) Matroska master at the source's exact
frame rate, with the source's start timecode and its audio streams copied bit for bit. It writes
a ``<master>.framemd5`` sidecar (per-frame MD5 of the decoded master) for fixity checks.
``make_access`` encodes an H.264/AAC MP4 viewing copy from the master.

Both verify what they wrote (frame count and frame rate against the source's
:class:`~reel.tasks.media.MediaInfo`) and raise :class:`DeliverableError` leaving nothing
behind; both write under a temporary name and rename, and both are deterministic (bitexact
muxing, fixed encoder threads): rerunning on the same inputs gives byte-identical files.

Example
-------
>>> from reel.tasks.media import probe
>>> info = probe("film.mp4")                                          # doctest: +SKIP
>>> master = reassemble_master(shots, "film.mp4", "out/film.master.mkv", info=info,
...                            metadata={"comment": "colour is AI-derived by reel 0.1.0"})
...                                                                   # doctest: +SKIP
>>> framemd5_sidecar(master).exists()                                 # doctest: +SKIP
True
>>> make_access(master, "out/film.access.mp4", source="film.mp4", info=info,
...             metadata={"comment": "colour is AI-derived by reel 0.1.0"})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Sequence

from . import media
from .media import BITEXACT_FLAGS, MediaError, MediaInfo, ffmpeg_base, fps_string

__all__ = ["DeliverableError", "reassemble_master", "make_access", "framemd5_sidecar"]

#: x264's output depends on its thread count; a fixed count keeps access copies byte-identical
#: across machines with different numbers of cores.
X264_THREADS = 4
#: Colour matrix used to convert the RGB master to the access copy's YUV (and tagged in it).
ACCESS_COLOUR = "bt709"


class DeliverableError(Exception):
    """A deliverable could not be made or failed verification (nothing was left behind)."""


def framemd5_sidecar(master: str | os.PathLike) -> Path:
    """Path of the framemd5 sidecar written next to a master: ``<master>.framemd5``."""
    master = Path(master)
    return master.with_name(master.name + ".framemd5")


def _metadata_args(metadata: Mapping[str, str] | None) -> list[str]:
    args: list[str] = []
    for k, v in sorted((metadata or {}).items()):
        if not k or "=" in k:
            raise ValueError(f"invalid metadata key {k!r}")
        args += ["-metadata", f"{k}={v}"]
    return args


def _framemd5_frame_count(path: Path) -> int:
    n = 0
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            if line and not line.startswith("#") and line.strip():
                n += 1
    return n


def _stderr_text(fh) -> str:
    fh.seek(0)
    text = fh.read().decode("utf-8", "replace").strip()
    return text[-2000:] if text else "no message"


def reassemble_master(shot_paths: Sequence[str | os.PathLike], source: str | os.PathLike,
                      out_path: str | os.PathLike, *, info: MediaInfo,
                      metadata: Mapping[str, str] | None = None) -> Path:
    """Concatenate restored shots into the FFV1 preservation master (+ framemd5 sidecar).

    Parameters
    ----------
    shot_paths : shot intermediates in film order; together they must hold exactly
        ``info.n_frames`` frames of the source's display size.
    source : the original film; its audio streams (if any) are copied unchanged.
    out_path : the master (``.mkv``). The sidecar goes to :func:`framemd5_sidecar` (out_path).
    info : ``probe(source)``; gives the exact frame rate, frame count and start timecode.
    metadata : container tags, e.g. ``{"comment": "colour is AI-derived by reel 0.1.0"}``.

    Returns
    -------
    Path
        ``out_path``. FFV1 level 3, ``-g 1``, 4 slices with CRCs, RGB 8-bit (``bgr0``, FFmpeg
        5.1's lossless 8-bit RGB FFV1 format; decodes to the same values as gbrp/rgb24).

    Raises
    ------
    DeliverableError
        Wrong frame size or count, wrong frame rate, missing audio, or an ffmpeg failure.
        Neither the master nor the sidecar is left behind.

    Notes
    -----
    Audio packets are copied bit for bit (PCM/FLAC sources decode identically). For AAC from
    MP4, whose edit list hides the 1024 encoder-priming samples, FFmpeg 5.1's Matroska muxer
    cannot store that delay: the master's video then starts 1024 samples after the audio
    (sync is kept) and decoders also output the priming samples.
    """
    out_path = Path(out_path)
    source = Path(source)
    shot_paths = [Path(p) for p in shot_paths]
    if not shot_paths:
        raise DeliverableError("no shot intermediates given; nothing to reassemble.")
    width, height = info.display_size
    fps = fps_string(info.fps)
    sidecar = framemd5_sidecar(out_path)
    tmp = media._temp_sibling(out_path, ".part.mkv")
    tmp_md5 = media._temp_sibling(sidecar, ".part")

    cmd = ffmpeg_base() + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                           "-framerate", fps, "-i", "pipe:0"]
    if info.has_audio:
        cmd += ["-i", str(source), "-map", "0:v", "-map", "1:a", "-c:a", "copy"]
    else:
        cmd += ["-map", "0:v"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", *media._FFV1_ARGS,
            "-pix_fmt", "bgr0", "-fps_mode", "passthrough", *BITEXACT_FLAGS]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += _metadata_args(metadata)
    cmd += ["-f", "matroska", str(tmp)]

    ok = False
    try:
        n_written = _encode_from_shots(cmd, shot_paths, (height, width, 3), out_path)
        if n_written != info.n_frames:
            raise DeliverableError(
                f"the shots of {out_path.name} hold {n_written} frames but the source has "
                f"{info.n_frames}; re-run the shots whose frame ranges are incomplete.")
        try:
            media.write_framemd5(tmp, tmp_md5)
            n_master = _framemd5_frame_count(tmp_md5)
            meta = media._video_meta(tmp)
        except MediaError as exc:
            raise DeliverableError(f"verifying {out_path.name} failed: {exc}") from exc
        _verify(out_path, n_master, meta.fps, len(meta.audio), info)
        os.replace(tmp_md5, sidecar)
        os.replace(tmp, out_path)
        ok = True
    finally:
        tmp.unlink(missing_ok=True)
        tmp_md5.unlink(missing_ok=True)
        if not ok:
            # a sidecar must never describe a master that is not there
            if not out_path.exists():
                sidecar.unlink(missing_ok=True)
    return out_path


def _verify(out_path: Path, n_frames: int, fps: Fraction | None, n_audio: int,
            info: MediaInfo) -> None:
    if n_frames != info.n_frames:
        raise DeliverableError(f"{out_path.name} decodes to {n_frames} frames but the source "
                               f"has {info.n_frames}; the deliverable was not kept.")
    if fps is None or fps != Fraction(info.fps):
        raise DeliverableError(f"{out_path.name} has frame rate {fps} but the source has "
                               f"{info.fps}; the deliverable was not kept.")
    if n_audio != len(info.audio_streams):
        raise DeliverableError(f"{out_path.name} has {n_audio} audio streams but the source "
                               f"has {len(info.audio_streams)}; the deliverable was not kept.")


def _encode_from_shots(cmd: list[str], shot_paths: list[Path], shape: tuple[int, int, int],
                       out_path: Path) -> int:
    """Run the encoder ``cmd`` fed with rgb24 frames of every shot; return frames written."""
    n = 0
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
                    try:
                        proc.stdin.write(frame.tobytes())
                    except (BrokenPipeError, OSError) as exc:
                        proc.wait()
                        raise DeliverableError(
                            f"the encoder for {out_path.name} stopped: {_stderr_text(err)}"
                        ) from exc
                    n += 1
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
    return n


def make_access(master: str | os.PathLike, out_path: str | os.PathLike, *,
                source: str | os.PathLike | None = None, info: MediaInfo,
                metadata: Mapping[str, str] | None = None) -> Path:
    """Encode the H.264/AAC MP4 access copy of a master.

    libx264 (``-preset medium -crf 18``, ``yuv420p``, BT.709 matrix and tags, fixed
    :data:`X264_THREADS`), ``+faststart``, the source's frame rate (exact rational) and
    timecode, audio as AAC 192 kb/s per stream from ``source`` (or from the master, which holds
    a lossless copy of the source audio, when ``source`` is None). Odd frame sizes are padded
    by one pixel (black) to the even size 4:2:0 needs.

    Returns ``out_path``; raises :class:`DeliverableError` (leaving nothing) when the copy's
    frame count or frame rate differs from ``info`` or ffmpeg fails.
    """
    master = Path(master)
    out_path = Path(out_path)
    audio_from = Path(source) if source is not None else master
    fps = fps_string(info.fps)
    try:
        master_fps = media._video_meta(master).fps
    except MediaError as exc:
        raise DeliverableError(f"cannot read the master {master}: {exc}") from exc
    if master_fps != Fraction(info.fps):
        raise DeliverableError(f"the master {master.name} runs at {master_fps} fps but the "
                               f"source at {info.fps}; rebuild the master before making the "
                               f"access copy.")
    tmp = media._temp_sibling(out_path, ".part.mp4")
    vf = ("pad=ceil(iw/2)*2:ceil(ih/2)*2,"
          f"scale=out_color_matrix={ACCESS_COLOUR}:out_range=tv:"
          "flags=accurate_rnd+full_chroma_int+bitexact,format=yuv420p")
    cmd = ffmpeg_base() + [*media._DECODE_FLAGS, "-r", fps, "-i", str(master)]
    if info.has_audio:
        cmd += ["-i", str(audio_from), "-map", "0:v:0", "-map", "1:a",
                "-c:a", "aac", "-b:a", "192k"]
    else:
        cmd += ["-map", "0:v:0"]
    cmd += ["-map_metadata", "-1", "-map_chapters", "-1", "-vf", vf,
            "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p",
            "-threads:v", str(X264_THREADS), "-colorspace", ACCESS_COLOUR,
            "-color_primaries", ACCESS_COLOUR, "-color_trc", ACCESS_COLOUR,
            "-color_range", "tv", "-fps_mode", "passthrough",
            "-movflags", "+faststart+use_metadata_tags", *BITEXACT_FLAGS]
    if info.timecode:
        cmd += ["-timecode", info.timecode]
    cmd += _metadata_args(metadata)
    cmd += ["-f", "mp4", str(tmp)]
    try:
        try:
            media.run_ffmpeg(cmd, what=f"encoding the access copy {out_path.name}",
                             hint="Check that the master is complete and readable.")
            got = media.probe(tmp)
        except MediaError as exc:
            raise DeliverableError(str(exc)) from exc
        _verify(out_path, got.n_frames, Fraction(got.fps), len(got.audio_streams), info)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


# --------------------------------------------------------------------------------------------
# One item's deliverable set, and its thin Prefect task
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveredFile:
    kind: str  # master | access | framemd5
    path: Path
    sha256: str
    n_frames: int | None
    fps: str | None
    codec: str | None


@dataclass(frozen=True)
class DeliveredItem:
    files: list[DeliveredFile]

    def path_of(self, kind: str) -> Path:
        return next(f.path for f in self.files if f.kind == kind)


def deliver_item(shot_paths: Sequence[str | os.PathLike], source: str | os.PathLike,
                 out_dir: str | os.PathLike, *, info: MediaInfo, stem: str,
                 metadata: Mapping[str, str] | None = None) -> DeliveredItem:
    """Master (FFV1/MKV + framemd5 sidecar) and access copy (H.264/MP4) of one item.

    Files are ``<out_dir>/<stem>.master.mkv``, ``….master.mkv.framemd5`` and
    ``<stem>.access.mp4``; both videos are verified against ``info`` (frame count, rate).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    master = reassemble_master(shot_paths, source, out_dir / f"{stem}.master.mkv", info=info,
                               metadata=metadata)
    access = make_access(master, out_dir / f"{stem}.access.mp4", source=source, info=info,
                         metadata=metadata)
    sidecar = framemd5_sidecar(master)
    fps = fps_string(info.fps)
    return DeliveredItem(files=[
        DeliveredFile("master", master, media.sha256_file(master), info.n_frames, fps, "ffv1"),
        DeliveredFile("framemd5", sidecar, media.sha256_file(sidecar), info.n_frames, fps, None),
        DeliveredFile("access", access, media.sha256_file(access), info.n_frames, fps, "h264"),
    ])


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="deliver", cache_policy=NO_CACHE)(deliver_item)


deliver_item_task = _thin_task()
