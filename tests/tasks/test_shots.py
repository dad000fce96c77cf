"""Tests for reel.tasks.shots (shot detection) on synthetic clips."""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.shots import (
    SHOT_DETECTORS,
    Boundary,
    Shot,
    boundaries_to_shots,
)

W, H = 160, 90


def _sources() -> list[np.ndarray]:
    return [
        data.camera(),
        rgb_to_gray(data.astronaut()),
        rgb_to_gray(data.coffee()),
        data.brick(),
        rgb_to_gray(data.chelsea()),
    ]


def _scene(img: np.ndarray, n: int, seed: int, speed_px: float) -> list[np.ndarray]:
    """``n`` frames of a camera panning over ``img`` at ``speed_px`` per frame, random direction."""
    rng = np.random.default_rng(seed)
    s = 220 / min(img.shape)
    img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    ang = rng.uniform(0, 2 * np.pi)
    vx, vy = speed_px * np.cos(ang), speed_px * np.sin(ang)
    x0 = (img.shape[1] - W) / 2 - vx * n / 2
    y0 = (img.shape[0] - H) / 2 - vy * n / 2
    out = []
    for t in range(n):
        M = np.float32([[1, 0, -(x0 + vx * t)], [0, 1, -(y0 + vy * t)]])
        out.append(cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def _clip(lengths, order, seed=0, speed_px=3.0):
    srcs = _sources()
    frames: list[np.ndarray] = []
    for i, (n, o) in enumerate(zip(lengths, order)):
        frames += _scene(srcs[o], n, seed + i, speed_px)
    return frames, [int(c) for c in np.cumsum(lengths)[:-1]]


def _damage(frames, seed, flash_at=(), gain=0.2, dust_fraction=0.4, grain=3.0):
    """Per-frame gain flicker (±gain), grain, bright flash frames, dust specks on some frames."""
    rng = np.random.default_rng(seed)
    out = []
    for t, f in enumerate(frames):
        g = f.astype(np.float32) * rng.uniform(1 - gain, 1 + gain)
        g += rng.normal(0, grain, g.shape).astype(np.float32)
        if t in flash_at:
            g = g * 2.5 + 80
        if rng.random() < dust_fraction:
            for _ in range(int(rng.integers(3, 10))):
                centre = (int(rng.integers(0, W)), int(rng.integers(0, H)))
                cv2.circle(g, centre, int(rng.integers(1, 4)), float(rng.choice([0, 255])), -1)
        out.append(np.clip(g, 0, 255).astype(np.uint8))
    return out


def _assert_tiles(shots, n):
    assert shots[0].start == 0 and shots[-1].stop == n
    for a, b in zip(shots, shots[1:]):
        assert a.stop == b.start
    assert shots[0].transition == "start"
    assert all(s.transition == "cut" for s in shots[1:])
    assert all(0.0 <= s.confidence <= 1.0 for s in shots)


@pytest.mark.parametrize("seed,speed_px", [(0, 1.5), (1, 4.0), (2, 6.0)])
def test_cuts_found_at_exact_frames(seed, speed_px):
    order = np.random.default_rng(seed).permutation(5)[:4]
    frames, cuts = _clip((20, 25, 18, 22), order, seed=10 * seed, speed_px=speed_px)
    shots = SHOT_DETECTORS.create("archival").detect(frames, n_frames=len(frames))
    _assert_tiles(shots, len(frames))
    assert [s.start for s in shots[1:]] == cuts
    assert all(s.confidence > 0.1 for s in shots[1:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flicker_flash_and_dust_give_no_false_cuts(seed):
    order = np.random.default_rng(seed).permutation(5)[:4]
    frames, cuts = _clip((20, 25, 18, 22), order, seed=10 * seed, speed_px=4.0)
    damaged = _damage(frames, seed=seed + 1, flash_at=(30,))
    shots = SHOT_DETECTORS.create("archival").detect(damaged)
    _assert_tiles(shots, len(frames))
    assert [s.start for s in shots[1:]] == cuts
    # With min_shot_frames=1 the flash (frame 30) still does not split the shot.
    loose = SHOT_DETECTORS.create("archival", min_shot_frames=1).detect(damaged)
    assert [s.start for s in loose[1:]] == cuts
    # The baseline is fooled by the same flicker.
    baseline = SHOT_DETECTORS.create("histogram", min_shot_frames=1).detect(damaged)
    assert len(baseline) > len(shots)


def test_two_frame_flash_rejected():
    frames, cuts = _clip((30, 30), (0, 2), seed=5)
    damaged = _damage(frames, seed=9, flash_at=(10, 11), dust_fraction=0.0)
    shots = SHOT_DETECTORS.create("archival", min_shot_frames=1).detect(damaged)
    assert [s.start for s in shots[1:]] == cuts


def test_min_shot_frames_merges_short_shots():
    frames, cuts = _clip((20, 4, 20), (0, 1, 2), seed=3)
    assert cuts == [20, 24]
    loose = SHOT_DETECTORS.create("archival", min_shot_frames=3).detect(frames)
    assert [s.start for s in loose[1:]] == [20, 24]
    strict = SHOT_DETECTORS.create("archival", min_shot_frames=8).detect(frames)
    _assert_tiles(strict, len(frames))
    assert len(strict) == 2 and all(s.n_frames >= 8 for s in strict)
    assert strict[1].start in (20, 24)


def test_static_and_degenerate_inputs():
    still = [data.camera()[::4, ::4]] * 30
    det = SHOT_DETECTORS.create("archival")
    assert det.detect(still) == [Shot(0, 30, "start", 1.0)]
    assert det.detect([]) == []
    assert det.detect(still[:1]) == [Shot(0, 1, "start", 1.0)]
    with pytest.raises(ValueError):
        det.detect(still, n_frames=31)
    # Flat black frames then a picture: one cut, no division by zero.
    black = [np.zeros((H, W), np.uint8)] * 10
    shots = det.detect(black + _scene(data.camera(), 10, 0, 2.0))
    assert [s.start for s in shots] == [0, 10]


def test_deterministic_and_describe():
    frames, _ = _clip((15, 15), (1, 3), seed=4)
    d1 = SHOT_DETECTORS.create("archival").detect(_damage(frames, seed=1))
    d2 = SHOT_DETECTORS.create("archival").detect(_damage(frames, seed=1))
    assert d1 == d2
    desc = SHOT_DETECTORS.create("archival", min_shot_frames=5).describe()
    assert desc["engine"] == "archival" and desc["params"]["min_shot_frames"] == 5
    assert set(SHOT_DETECTORS.names()) >= {"archival", "histogram"}
    with pytest.raises(ValueError):
        SHOT_DETECTORS.create("archival", weights={"colour": 1.0})


def test_boundaries_to_shots_drops_weaker_boundary():
    cuts = [Boundary(10, 0.9, 0.3), Boundary(13, 0.4, 0.3), Boundary(30, 0.8, 0.3)]
    shots = boundaries_to_shots(cuts, 40, min_shot_frames=5)
    assert [(s.start, s.stop) for s in shots] == [(0, 10), (10, 30), (30, 40)]
    # Shots at the ends can only merge inwards.
    shots = boundaries_to_shots([Boundary(2, 0.9, 0.3), Boundary(37, 0.9, 0.3)], 40, 5)
    assert [(s.start, s.stop) for s in shots] == [(0, 40)]
    assert boundaries_to_shots([], 0, 5) == []
    assert shots[0].confidence == 1.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_detect_shots_file(tmp_path):
    media = pytest.importorskip("reel.tasks.media")
    if not hasattr(media, "iter_frames"):
        pytest.skip("reel.tasks.media.iter_frames not available")
    from reel.tasks.shots import detect_shots

    # 1.2 s of testsrc2 then 1.2 s of smptebars at 25 fps: one cut at frame 30.
    out = tmp_path / "two.mkv"
    cmd = [
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1.2",
        "-f", "lavfi", "-i", "smptebars=size=320x180:rate=25:duration=1.2",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(out),
    ]
    subprocess.run(cmd, check=True)
    shots = detect_shots(out, min_shot_frames=8)
    _assert_tiles(shots, 60)
    assert [s.start for s in shots] == [0, 30]


def test_pair_components_do_not_modify_features():
    det = SHOT_DETECTORS.create("archival")
    frames = _scene(data.camera(), 3, 0, 3.0)
    fa, fb = det.frame_features(frames[0]), det.frame_features(frames[2])
    before = {k: v.copy() for k, v in fa.items()}
    first = det.pair_components(fa, fb)
    assert det.pair_components(fa, fb) == first
    assert all(np.array_equal(before[k], fa[k]) for k in before)
    assert all(0.0 <= v <= 1.0 for v in first.values())
