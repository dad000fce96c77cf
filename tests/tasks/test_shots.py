"""Tests for reel.tasks.shots and the engines in reel.tasks.shot_detectors, on synthetic clips.

Clips are made here: a camera panning slowly over still photos (scikit-image), joined by hard
cuts, splices (a frame-line jump), 12-frame dissolves and fades through black, then optionally
damaged as old film (reel.tasks.degrade.OldFilm: flicker, grain, dust, scratches, weave, a
flash frame).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks import degrade
from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.shots import (
    SHOT_DETECTORS,
    Boundary,
    EngineUnavailable,
    Shot,
    boundaries_to_shots,
    detect_shots,
    match_boundaries,
)

W, H = 160, 90


def _sources() -> list[np.ndarray]:
    return [
        data.camera(),
        rgb_to_gray(data.astronaut()),
        rgb_to_gray(data.coffee()),
        rgb_to_gray(data.rocket()),
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


def _concatenation(seed: int, kinds: list[str], length: int = 36, speed_px: float = 0.5,
                   damage: bool = True) -> tuple[list[np.ndarray], list[tuple[int, str]]]:
    """Shots joined by ``kinds`` transitions; returns frames and (true boundary, kind)."""
    srcs = _sources()
    order = np.random.default_rng(seed).permutation(len(srcs))
    segs = [_scene(srcs[order[i % len(srcs)]], length, seed * 10 + i, speed_px)
            for i in range(len(kinds) + 1)]
    frames = list(segs[0])
    truth: list[tuple[int, str]] = []
    misframe: dict[int, int] = {}
    offset = 0
    for k, nxt in zip(kinds, segs[1:]):
        if k in ("cut", "splice"):
            truth.append((len(frames), k))
            if k == "splice":
                offset = 12 if offset == 0 else 0
                misframe[len(frames)] = offset
            frames += nxt
        elif k == "dissolve":
            s = len(frames) - 12
            frames = frames[:-12] + degrade.dissolve(frames[-12:], nxt[:12]) + nxt[12:]
            truth.append((s + 6, k))
        else:  # fade: 6 frames out, 1 black, 6 in
            s = len(frames) - 6
            frames = frames[:-6] + degrade.fade_through_black(frames[-6:], nxt[:6], 1) + nxt[6:]
            truth.append((s + 6, k))
    if damage:
        film = degrade.OldFilm(seed=seed, misframe_rows=misframe, flash_frames=frozenset({length // 2}))
        frames = list(film.apply(frames))
    else:
        cur = 0
        out = []
        for t, f in enumerate(frames):
            cur = misframe.get(t, cur)
            out.append(degrade.misframe(f, cur))
        frames = out
    return frames, truth


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


def _assert_tiles(shots, n, kinds=("cut",)):
    assert shots[0].start == 0 and shots[-1].stop == n
    for a, b in zip(shots, shots[1:]):
        assert a.stop == b.start
    assert shots[0].transition == "start"
    assert all(s.transition in kinds for s in shots[1:])
    assert all(0.0 <= s.confidence <= 1.0 for s in shots)


# --------------------------------------------------------------------------- archival: cuts
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
    # Flat black frames then a picture: one cut, no division by zero, not a fade (film start).
    black = [np.zeros((H, W), np.uint8)] * 10
    shots = det.detect(black + _scene(data.camera(), 10, 0, 2.0))
    assert [(s.start, s.transition) for s in shots] == [(0, "start"), (10, "cut")]


# --------------------------------------------------------------------------- archival: gradual, splices
_KINDS = [["cut", "dissolve", "fade", "splice"], ["dissolve", "cut", "splice", "fade"],
          ["fade", "splice", "dissolve", "cut"]]


@pytest.mark.parametrize("seed,kinds", list(itertools.product([0, 1], _KINDS)))
def test_archival_finds_and_labels_every_transition(seed, kinds):
    """Cuts, splices, 12-frame dissolves and fades through black on a damaged film: every
    boundary within ±1 frame, with its kind; dissolves and fades at their middle."""
    frames, truth = _concatenation(seed, kinds)
    shots = SHOT_DETECTORS.create("archival").detect(frames, n_frames=len(frames))
    _assert_tiles(shots, len(frames), kinds=("cut", "splice", "dissolve", "fade"))
    got = [(s.start, s.transition) for s in shots[1:]]
    assert len(got) == len(truth), (got, truth)
    for (t, kind), (d, label) in zip(truth, got):
        assert abs(t - d) <= 1 and label == kind, (got, truth)


def test_dissolves_of_other_lengths_and_fade_only_on_black():
    det = SHOT_DETECTORS.create("archival")
    srcs = _sources()
    for length in (8, 16):
        a, b = _scene(srcs[0], 40, 1, 0.5), _scene(srcs[1], 40, 2, 0.5)
        frames = a[:-length] + degrade.dissolve(a[-length:], b[:length]) + b[length:]
        shots = det.detect(frames)
        assert [s.transition for s in shots[1:]] == ["dissolve"]
        assert abs(shots[1].start - (40 - length + length // 2)) <= 1
    # a single dark frame (damage) is neither a fade nor a cut
    a = _scene(srcs[2], 60, 3, 0.5)
    a[30] = np.full_like(a[30], 8)
    assert len(det.detect(a)) == 1


def test_splice_needs_a_frame_line_jump():
    """The same two shots: a plain cut, then misframed after the cut (a splice)."""
    srcs = _sources()
    a, b = _scene(srcs[0], 30, 1, 1.0), _scene(srcs[3], 30, 2, 1.0)
    det = SHOT_DETECTORS.create("archival")
    plain = det.detect(a + b)
    assert [(s.start, s.transition) for s in plain[1:]] == [(30, "cut")]
    jumped = det.detect(a + [degrade.misframe(f, 14) for f in b])
    assert [(s.start, s.transition) for s in jumped[1:]] == [(30, "splice")]
    # a frame line that stays where it is (a misframed print) is not a splice
    both = det.detect([degrade.misframe(f, 14) for f in a + b])
    assert [(s.start, s.transition) for s in both[1:]] == [(30, "cut")]
    assert det.frame_line(degrade.misframe(a[0], 14)) == pytest.approx((14 - 1.5) / H, abs=0.03)
    assert np.isnan(det.frame_line(a[0]))
    no_splices = SHOT_DETECTORS.create("archival", splices=False).detect(a + [degrade.misframe(f, 14) for f in b])
    assert no_splices[1].transition == "cut"


def test_gradual_off_and_analysis_series():
    frames, truth = _concatenation(3, ["dissolve", "fade"], damage=False)
    det = SHOT_DETECTORS.create("archival", gradual=False)
    a = det.analyse(frames)
    assert a.n == len(frames) and a.D.shape == (3, a.n) and a.coarse.shape[0] == a.n
    assert np.isnan(a.D[0, 0]) and np.all(np.isfinite(a.D[0, 1:]))
    # the contrast dips in the middle of the dissolve (two pictures superimposed)
    V = SHOT_DETECTORS.create("archival").contrast_dip(a)
    assert V[truth[0][0]] < 0.85 < np.median(V)
    labels = {s.transition for s in det.detect(frames)[1:]}
    assert labels <= {"cut", "splice"}


def test_deterministic_and_describe():
    frames, _ = _clip((15, 15), (1, 3), seed=4)
    d1 = SHOT_DETECTORS.create("archival").detect(_damage(frames, seed=1))
    d2 = SHOT_DETECTORS.create("archival").detect(_damage(frames, seed=1))
    assert d1 == d2
    desc = SHOT_DETECTORS.create("archival", min_shot_frames=5).describe()
    assert desc["engine"] == "archival" and desc["params"]["min_shot_frames"] == 5
    assert set(SHOT_DETECTORS.names()) >= {"archival", "histogram", "pyscenedetect-content",
                                           "pyscenedetect-adaptive", "transnetv2"}
    with pytest.raises(ValueError):
        SHOT_DETECTORS.create("archival", weights={"colour": 1.0})


def test_pair_components_do_not_modify_features():
    det = SHOT_DETECTORS.create("archival")
    frames = _scene(data.camera(), 3, 0, 3.0)
    fa, fb = det.frame_features(frames[0]), det.frame_features(frames[2])
    before = {k: np.copy(v) for k, v in fa.items()}
    first = det.pair_components(fa, fb)
    assert det.pair_components(fa, fb) == first
    assert all(np.array_equal(before[k], fa[k], equal_nan=True) for k in before)
    assert set(first) == {"hist", "layout", "edges"}
    assert all(0.0 <= v <= 1.0 for v in first.values())


# --------------------------------------------------------------------------- shared helpers
def test_boundaries_to_shots_drops_weaker_boundary():
    cuts = [Boundary(10, 0.9, 0.3), Boundary(13, 0.4, 0.3), Boundary(30, 0.8, 0.3)]
    shots = boundaries_to_shots(cuts, 40, min_shot_frames=5)
    assert [(s.start, s.stop) for s in shots] == [(0, 10), (10, 30), (30, 40)]
    # Shots at the ends can only merge inwards.
    shots = boundaries_to_shots([Boundary(2, 0.9, 0.3), Boundary(37, 0.9, 0.3)], 40, 5)
    assert [(s.start, s.stop) for s in shots] == [(0, 40)]
    assert boundaries_to_shots([], 0, 5) == []
    assert shots[0].confidence == 1.0
    # two candidates at one frame: the stronger one (its kind and confidence) is kept
    shots = boundaries_to_shots([Boundary(20, 0.4, 0.3, "cut"), Boundary(20, 0.9, 0.3, "fade", conf=0.8)], 40, 5)
    assert [(s.start, s.transition, s.confidence) for s in shots[1:]] == [(20, "fade", 0.8)]


def test_matcher_tolerance_and_one_to_one():
    m = match_boundaries([30, 77, 140], [30, 76, 137])
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert (m.precision, m.recall, m.f1) == (0.6667, 0.6667, 0.6667)
    # one detection cannot match two true boundaries, nor two detections one
    m = match_boundaries([10], [9, 11])
    assert (m.tp, m.fp, m.fn) == (1, 0, 1)
    m = match_boundaries([9, 10, 11], [10])
    assert (m.tp, m.fp, m.fn) == (1, 2, 0)
    # tolerance
    assert match_boundaries([12], [10], tolerance_frames=1).tp == 0
    assert match_boundaries([12], [10], tolerance_frames=2).tp == 1
    # empty cases
    e = match_boundaries([], [])
    assert (e.precision, e.recall, e.f1) == (1.0, 1.0, 1.0)
    z = match_boundaries([], [5])
    assert (z.precision, z.recall, z.f1) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", range(20))
def test_matcher_is_a_maximum_matching(seed):
    """Greedy sweep = brute-force maximum one-to-one matching within the tolerance."""
    rng = np.random.default_rng(seed)
    det = sorted(set(rng.integers(0, 30, rng.integers(0, 7)).tolist()))
    tru = sorted(set(rng.integers(0, 30, rng.integers(0, 7)).tolist()))
    best = 0
    for perm in itertools.permutations(range(len(det)), min(len(det), len(tru))):
        best = max(best, sum(abs(det[p] - t) <= 1 for p, t in zip(perm, tru)))
    if len(det) < len(tru):  # permutations of the shorter side
        for perm in itertools.permutations(range(len(tru)), len(det)):
            best = max(best, sum(abs(tru[p] - d) <= 1 for p, d in zip(perm, det)))
    m = match_boundaries(det, tru, 1)
    assert m.tp == best
    assert all(abs(t - d) <= 1 for t, d in m.pairs)
    assert len({t for t, _ in m.pairs}) == len({d for _, d in m.pairs}) == m.tp


# --------------------------------------------------------------------------- other engines
def _rgb(frames):
    return [np.repeat(f[..., None], 3, axis=2) for f in frames]


@pytest.mark.parametrize("engine", ["histogram", "pyscenedetect-content", "pyscenedetect-adaptive"])
def test_other_engines_on_a_synthetic_concatenation(engine):
    frames, cuts = _clip((30, 30, 30), (0, 2, 4), seed=2, speed_px=1.0)
    try:
        det = SHOT_DETECTORS.create(engine)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    feed = _rgb(frames) if det.pix_fmt == "rgb24" else frames
    shots = det.detect(feed, n_frames=len(frames))
    _assert_tiles(shots, len(frames))
    assert [s.start for s in shots[1:]] == cuts
    assert det.describe()["engine"] == engine


def test_pyscenedetect_luma_only_automatic_for_gray_frames():
    try:
        auto = SHOT_DETECTORS.create("pyscenedetect-content")
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    frames, cuts = _clip((30, 30), (0, 2), seed=1, speed_px=1.0)
    assert [s.start for s in auto.detect(_rgb(frames))[1:]] == cuts
    # PySceneDetect's plain default divides a gray film's luminance change by three
    plain = SHOT_DETECTORS.create("pyscenedetect-content", luma_only=False, threshold=200.0)
    assert len(plain.detect(_rgb(frames))) == 1


@pytest.mark.slow
def test_transnetv2_in_a_subprocess():
    """The optional TransNet V2 engine (skipped when not installed): runs in its own process,
    leaves this process's torch settings alone and finds the cuts of a clean concatenation."""
    try:
        det = SHOT_DETECTORS.create("transnetv2")
    except EngineUnavailable as exc:
        assert "make install-transnet" in str(exc)
        pytest.skip(str(exc))
    import torch

    frames, cuts = _clip((40, 40, 40), (0, 2, 4), seed=2, speed_px=1.0)
    small = [cv2.resize(f, (48, 27), interpolation=cv2.INTER_AREA) for f in _rgb(frames)]
    before = torch.are_deterministic_algorithms_enabled()
    probs = det.probabilities(small)
    assert probs.shape == (len(frames),) and np.all((probs >= 0) & (probs <= 1))
    assert torch.are_deterministic_algorithms_enabled() == before
    shots = det.detect(small)
    m = match_boundaries([s.start for s in shots[1:]], cuts)
    assert m.recall == 1.0
    assert det.weights_sha256 and len(det.weights_sha256) == 64
    with pytest.raises(ValueError):
        det.probabilities([np.zeros((10, 10, 3), np.uint8)])


# --------------------------------------------------------------------------- file level
def _two_sources(tmp_path, size="320x180", rate=25):
    out = tmp_path / "two.mkv"
    cmd = [
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration=1.2",
        "-f", "lavfi", "-i", f"smptebars=size={size}:rate={rate}:duration=1.2",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
        "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(out),
    ]
    subprocess.run(cmd, check=True)
    return out


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_detect_shots_file(tmp_path):
    # 1.2 s of testsrc2 then 1.2 s of smptebars at 25 fps: one cut at frame 30.
    path = _two_sources(tmp_path)
    shots = detect_shots(path, min_shot_frames=8)
    _assert_tiles(shots, 60)
    assert [s.start for s in shots] == [0, 30]
    try:
        psd = detect_shots(path, engine="pyscenedetect-content")
    except EngineUnavailable:
        return
    assert [s.start for s in psd] == [0, 30]


def test_engine_decode_sizes():
    assert SHOT_DETECTORS.create("archival").decode_size(640, 272) == (160, None)
    assert SHOT_DETECTORS.create("archival").decode_size(120, 90) == (120, None)
    assert SHOT_DETECTORS.create("histogram").decode_size(640, 272, 320) == (320, None)
    try:
        assert SHOT_DETECTORS.create("pyscenedetect-content").decode_size(640, 272) == (256, None)
    except EngineUnavailable:
        pass
    cls = SHOT_DETECTORS.get("transnetv2")
    assert cls.decode_size(None, 640, 272) == (48, 27)  # unbound: no install needed
