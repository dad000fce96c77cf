"""Tests for reel.tasks.segment (temporally consistent regions) on synthetic clips."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from reel.tasks.segment import (
    SEGMENTERS,
    label_stability,
    merge_regions,
    save_labels,
    segment_frame,
)


def _texture(h, w, seed, sigma_px, mean, amp):
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigma_px)
    return mean + amp * n / n.std()


def _square_clip(T=16, h=120, w=160, side=40, v=(2.0, 1.0), seed=0, bg_switch_at=None):
    """A bright textured square moving at ``v`` px/frame over a static textured background.

    With ``bg_switch_at``, the background is replaced by another texture from that frame on.
    Returns frames (uint8) and the square's masks.
    """
    bgs = [_texture(h, w, seed, 2.0, 90, 18), _texture(h, w, seed + 7, 6.0, 60, 25)]
    sq = _texture(side, side, seed + 1, 1.0, 180, 12)
    frames, masks = [], []
    for t in range(T):
        bg = bgs[1] if bg_switch_at is not None and t >= bg_switch_at else bgs[0]
        M = np.float32([[1, 0, 30 + v[0] * t], [0, 1, 35 + v[1] * t]])
        m = cv2.warpAffine(np.ones_like(sq), M, (w, h), flags=cv2.INTER_LINEAR)
        f = bg * (1 - m) + cv2.warpAffine(sq, M, (w, h), flags=cv2.INTER_LINEAR)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
        masks.append(m > 0.5)
    return frames, masks


def _degrade(frames, seed, grain=4.0, gain=0.15):
    rng = np.random.default_rng(seed)
    return [
        np.clip(f * rng.uniform(1 - gain, 1 + gain) + rng.normal(0, grain, f.shape), 0, 255).astype(np.uint8)
        for f in frames
    ]


def _square_region(labels, mask):
    """(id covering most of the square, cover = share of the square, purity = share of the id)."""
    ids, counts = np.unique(labels[mask], return_counts=True)
    sid = ids[counts.argmax()]
    cover = counts.max() / mask.sum()
    purity = (labels[mask] == sid).sum() / (labels == sid).sum()
    return sid, cover, purity


@pytest.mark.parametrize("degraded", [False, True])
def test_square_gets_own_stable_region(degraded):
    frames, masks = _square_clip()
    if degraded:  # film grain and ±15 % flicker
        frames = _degrade(frames, seed=3)
    seg = SEGMENTERS.create("slic-flow").segment(frames)
    T = len(frames)
    assert seg.labels.shape == (T, 120, 160) and seg.labels.dtype == np.uint16
    sids = set()
    for t in range(T):
        sid, cover, purity = _square_region(seg.labels[t], masks[t])
        assert cover > 0.85 and purity > 0.85, (t, cover, purity)
        sids.add(int(sid))
    assert len(sids) == 1  # the same id all through the shot
    assert seg.label_stability > 0.9
    assert seg.n_resegmented == 0
    assert 2 <= seg.n_regions <= 12


def test_deterministic_and_npz_bytes(tmp_path):
    frames, _ = _square_clip(T=8)
    a = SEGMENTERS.create("slic-flow").segment(frames)
    b = SEGMENTERS.create("slic-flow").segment(frames)
    assert a.labels.tobytes() == b.labels.tobytes()
    assert a.label_stability == b.label_stability
    p1 = save_labels(tmp_path / "a" / "labels.npz", a.labels)
    p2 = save_labels(tmp_path / "b" / "labels.npz", b.labels)
    assert hashlib.sha256(p1.read_bytes()).digest() == hashlib.sha256(p2.read_bytes()).digest()
    with np.load(p1) as z:
        np.testing.assert_array_equal(z["labels"], a.labels)


def test_resegmentation_keeps_ids_by_overlap():
    frames, masks = _square_clip(T=10, v=(1.0, 0.5), bg_switch_at=5)
    seg = SEGMENTERS.create("slic-flow").segment(frames)
    assert seg.n_resegmented >= 1
    before, c0, _ = _square_region(seg.labels[4], masks[4])
    after, c1, p1 = _square_region(seg.labels[5], masks[5])
    assert before == after and c1 > 0.85 and p1 > 0.85


def test_label_stability_definition():
    T, h, w = 3, 20, 30
    labels = np.zeros((T, h, w), np.uint16)
    for t in range(T):
        labels[t, :, 10 + 2 * t:] = 1  # boundary moves right by 2 px a frame
    moving = np.zeros((T - 1, h, w, 2), np.float32)
    moving[..., 0] = 2.0
    assert label_stability(labels, moving) == 1.0
    # With zero flow the 2 columns right of each boundary change id: 2 * 20 of 600 per pair.
    still = np.zeros_like(moving)
    assert label_stability(labels, still) == pytest.approx(1 - 40 / 600)
    # Pixels flowing out of the frame are not counted.
    out = np.full_like(moving, 100.0)
    assert label_stability(labels, out) == 1.0
    assert label_stability(labels[:1], []) == 1.0


def test_remove_fragments_absorbs_specks_by_their_ring():
    eng = SEGMENTERS.create("slic-flow", min_fragment_fraction=0.01)  # 1 % of 40 x 50 = 20 px
    lab = np.zeros((40, 50), np.int64)
    lab[:, 25:] = 1
    lab[5:8, 5:8] = 1          # 9 px of region 1 inside region 0: becomes 0
    lab[0:2, 48:50] = 0        # 4 px of region 0 in the corner of region 1: becomes 1
    lab[29:33, 23:27] = 2      # region 2's largest piece (16 px) on the 0|1 boundary: kept
    lab[10:12, 10:12] = 2      # a smaller piece of 2 inside 0: becomes 0
    lab[20:26, 30:36] = 0      # 36 px of region 0 (>= 20 px): kept, an object can be split
    lab[38:40, 0:2] = 1        # a speck of 1 in the frame's corner: its ring is all 0
    out = eng.remove_fragments(lab)
    expected = lab.copy()
    expected[5:8, 5:8] = 0
    expected[0:2, 48:50] = 1
    expected[10:12, 10:12] = 0
    expected[38:40, 0:2] = 0
    assert np.array_equal(out, expected)
    assert np.array_equal(lab[5:8, 5:8], np.ones((3, 3)))  # the input is not modified
    # a speck between two regions takes the one most of its ring touches, lowest id on ties
    tie = np.zeros((10, 10), np.int64)
    tie[:, 5:] = 3
    tie[4:6, 4:6] = 7          # ring: 6 px of 0 and 6 px of 3
    tie[0:3, 8:10] = 7         # region 7's largest piece (6 px): kept
    got = SEGMENTERS.create("slic-flow", min_fragment_fraction=0.05).remove_fragments(tie)
    assert got[4:6, 4:6].tolist() == [[0, 0], [0, 0]] and (got[0:3, 8:10] == 7).all()


def test_merge_regions_and_segment_frame():
    # Six vertical strips (superpixels) of two intensities: a | a | b | b | a | a.
    sp = np.repeat(np.arange(6), 10)[None].repeat(12, axis=0)
    L = np.where(np.isin(sp, [2, 3]), 70.0, 30.0)
    merged = merge_regions(sp, L, max_regions=12, min_contrast=4.0)
    assert merged.max() + 1 == 3  # left a, middle b, right a (not adjacent to the left a)
    assert len(np.unique(merged[:, 20:40])) == 1
    two = merge_regions(sp, L, max_regions=2, min_contrast=4.0)
    assert two.max() + 1 == 2
    frames, masks = _square_clip(T=1)
    regions = segment_frame(frames[0], max_regions=6)
    assert regions.max() + 1 <= 6
    _, cover, purity = _square_region(regions, masks[0])
    assert cover > 0.9 and purity > 0.9


def test_match_ids_follows_overlap():
    seg = SEGMENTERS.create("slic-flow")
    old = np.zeros((10, 10), np.int64)
    old[:, 5:] = 7
    new = np.zeros((10, 10), np.int64)
    new[:, :5] = 1  # new numbering is swapped
    new[:8, 5:] = 0
    new[8:, 5:] = 2  # a piece mostly overlapping 7, but 7 is taken -> fresh id
    relabelled, next_id = seg.match_ids(new, old, next_id=8)
    assert (relabelled[:, :5] == 0).all() and (relabelled[:8, 5:] == 7).all()
    assert (relabelled[8:, 5:] == 8).all() and next_id == 9


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_segment_shot_file(tmp_path):
    media = pytest.importorskip("reel.tasks.media")
    if not hasattr(media, "iter_frames"):
        pytest.skip("reel.tasks.media.iter_frames not available")
    from reel.tasks.segment import segment_shot

    clip = tmp_path / "bars.mkv"
    subprocess.run([
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
        "-i", "testsrc2=size=320x240:rate=25:duration=0.8",
        "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(clip),
    ], check=True)
    r1 = segment_shot(clip, 3, 15, tmp_path / "s1", analysis_width_px=160)
    r2 = segment_shot(clip, 3, 15, tmp_path / "s2", analysis_width_px=160)
    assert r1.n_frames == 12 and 1 <= r1.n_regions
    assert 0.0 <= r1.label_stability <= 1.0
    with np.load(r1.labels_path) as z:
        labels = z["labels"]
    assert labels.shape == (12, 120, 160) and labels.dtype == np.uint16
    overlay = cv2.imread(str(r1.overlay_path))
    assert overlay.shape == (120, 160, 3)
    assert r1.labels_path.read_bytes() == r2.labels_path.read_bytes()
    assert r1.overlay_path.read_bytes() == r2.overlay_path.read_bytes()
