"""Tests for reel.tasks.colorize and the colorization engines (reel.tasks.colorizers)."""

from __future__ import annotations

import shutil
import subprocess

import cv2
import numpy as np
import pytest
import skimage.data

from reel.tasks.colorize import (
    ColorizeResult,
    colorize_L_frames,
    colorize_shot,
    load_palette_lab,
    load_reference_lab,
)
from reel.tasks.colorizers import COLORIZERS, Colorizer
from reel.tasks.colorizers.base import limit_chroma_to_gamut, upsample_ab
from reel.tasks.colorizers.exemplar import flow_consistency
from reel.tasks.colorspace import L_to_gray, gray_to_L, lab_to_rgb, rgb_to_gray, rgb_to_lab

ENGINES = COLORIZERS.names()
N_FRAMES = 12
H, W = 96, 160


@pytest.fixture(scope="module")
def shot() -> list[np.ndarray]:
    """12 RGB frames: a 96x160 window panning over skimage's coffee, (2, 1) px per frame."""
    big = cv2.resize(skimage.data.coffee(), (W + 2 * N_FRAMES + 4, H + N_FRAMES + 4),
                     interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(big[t:t + H, 2 * t:2 * t + W]) for t in range(N_FRAMES)]


def _L(rgb: np.ndarray) -> np.ndarray:
    return gray_to_L(rgb_to_gray(rgb))


def _run(name: str, frames_rgb, refs_rgb, **params):
    eng = COLORIZERS.create(name, **params)
    eng.start_shot([rgb_to_lab(r) for r in refs_rgb], None)
    out = [eng.colorize_frame(_L(f)) for f in frames_rgb]
    return [ab for ab, _ in out], [c for _, c in out]


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def test_registry_has_all_engines():
    assert ENGINES == ["exemplar-propagate", "gray", "reinhard-global", "welsh"]
    for name in ENGINES:
        eng = COLORIZERS.create(name, analysis_width_px=200)
        assert isinstance(eng, Colorizer)
        d = eng.describe()
        assert d["engine"] == name and d["params"]["analysis_width_px"] == 200


@pytest.mark.parametrize("name", ENGINES)
def test_output_keeps_source_luminance(name, shot):
    # analysis_width_px=64 < 160 exercises the analysis resize and the guided upsampling.
    abs_, confs = _run(name, shot[:3], [shot[0]], analysis_width_px=64)
    for f, ab in zip(shot[:3], abs_):
        gray = rgb_to_gray(f)
        L = gray_to_L(gray)
        assert ab.shape == (H, W, 2) and ab.dtype == np.float32
        L_out = rgb_to_lab(lab_to_rgb(L, ab))[..., 0]
        assert _psnr(L_out, L, 100.0) >= 50.0
        dlevel = np.abs(L_to_gray(L_out).astype(int) - gray.astype(int))
        assert dlevel.max() <= 1
    assert all(0.0 <= c <= 1.0 for c in confs)


def test_exemplar_propagate_beats_baselines_on_panning_shot(shot):
    gt_ab = [rgb_to_lab(f)[..., 1:] for f in shot]
    scores = {}
    for name in ENGINES:
        abs_, confs = _run(name, shot, [shot[0]])
        ab_err = float(np.mean([np.abs(a - g).mean() for a, g in zip(abs_, gt_ab)]))
        psnr = float(np.mean([_psnr(lab_to_rgb(_L(f), a), f, 255.0)
                              for f, a in zip(shot, abs_)]))
        scores[name] = (ab_err, psnr, float(np.mean(confs)))
    print({k: tuple(round(x, 2) for x in v) for k, v in scores.items()})
    err, psnr, conf = scores["exemplar-propagate"]
    assert err < 0.2 * scores["gray"][0]
    assert err < 0.4 * scores["reinhard-global"][0]
    assert err < scores["welsh"][0]
    assert psnr > scores["reinhard-global"][1] + 8.0
    assert psnr > scores["welsh"][1] + 3.0
    assert psnr > 33.0
    assert conf > 0.5 and scores["gray"][2] == 0.0


def test_exemplar_propagate_with_reference_from_other_end_of_shot(shot):
    """Reference = the last frame: the first frames have content the reference lacks."""
    abs_, confs = _run("exemplar-propagate", shot, [shot[-1]])
    gray_abs, _ = _run("gray", shot, [shot[-1]])
    psnr = np.mean([_psnr(lab_to_rgb(_L(f), a), f, 255.0) for f, a in zip(shot, abs_)])
    gray_psnr = np.mean([_psnr(lab_to_rgb(_L(f), a), f, 255.0) for f, a in zip(shot, gray_abs)])
    assert psnr > gray_psnr + 12.0
    # The frame that matches the reference exactly is at least as confident as the first one.
    assert confs[-1] >= confs[0] - 0.05


@pytest.mark.parametrize("name", ["exemplar-propagate", "welsh"])
def test_deterministic_and_state_reset_between_shots(name, shot):
    a, ca = _run(name, shot[:6], [shot[0]], analysis_width_px=96)
    b, cb = _run(name, shot[:6], [shot[0]], analysis_width_px=96)
    assert ca == cb
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # One engine instance, two shots: start_shot must forget the first shot entirely.
    eng = COLORIZERS.create(name, analysis_width_px=96)
    eng.start_shot([rgb_to_lab(shot[5])], None)
    for f in shot[6:]:
        eng.colorize_frame(_L(f))
    eng.start_shot([rgb_to_lab(shot[0])], None)
    again = [eng.colorize_frame(_L(f))[0] for f in shot[:6]]
    assert all(np.array_equal(x, y) for x, y in zip(a, again))


@pytest.mark.parametrize("name", ENGINES)
def test_no_reference_gives_gray_with_zero_confidence(name, shot):
    eng = COLORIZERS.create(name)
    palette = np.array([[50.0, 40.0, 20.0], [70.0, -20.0, 30.0]], np.float32)
    eng.start_shot([], palette)
    for f in shot[:3]:
        ab, conf = eng.colorize_frame(_L(f))
        assert ab.shape == (H, W, 2) and not ab.any()
        assert conf == 0.0


def test_flow_consistency_flags_border_and_accepts_pure_translation():
    h, w = 20, 30
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -3.0  # frame t sees frame t-1 shifted right by 3 px
    fwd = -back
    map_xy, valid = flow_consistency(back, fwd)
    assert valid[:, 3:].all() and not valid[:, :3].any()
    assert np.allclose(map_xy[5, 10], [7.0, 5.0])
    _, valid_bad = flow_consistency(back, np.zeros_like(back))  # forward flow disagrees
    assert not valid_bad.any()


def test_guided_upsampling_preserves_constant_and_follows_luminance_edge():
    L = np.zeros((32, 64), np.float32)
    L[:, 32:] = 80.0
    assert np.allclose(upsample_ab(np.full((8, 16, 2), 7.0, np.float32), L), 7.0, atol=1e-3)
    ab = np.zeros((8, 16, 2), np.float32)
    ab[:, 8:] = 30.0  # chroma edge where the luminance edge is, but at 1/4 resolution
    sharp = upsample_ab(ab, L, radius_px=1, eps=1e-4)
    plain = upsample_ab(ab, L, radius_px=0)
    err_sharp = np.abs(sharp[..., 0] - np.where(L > 0, 30.0, 0.0)).mean()
    err_plain = np.abs(plain[..., 0] - np.where(L > 0, 30.0, 0.0)).mean()
    assert err_sharp < 0.5 * err_plain


def test_limit_chroma_to_gamut_keeps_luminance_of_impossible_colours():
    rng = np.random.default_rng(0)
    L = rng.uniform(0.0, 100.0, (200, 200)).astype(np.float32)
    ab = rng.uniform(-120.0, 120.0, (200, 200, 2)).astype(np.float32)
    limited = limit_chroma_to_gamut(L, ab)
    chroma_in = np.hypot(ab[..., 0], ab[..., 1])
    chroma_out = np.hypot(limited[..., 0], limited[..., 1])
    assert np.all(chroma_out <= chroma_in + 1e-4)
    assert 0.05 < np.median(chroma_out / chroma_in) < 1.0
    kept = chroma_out > 1.0  # hue is undefined where the chroma went to 0 (L near 0 or 100)
    hue_in = np.arctan2(ab[..., 1], ab[..., 0])[kept]
    hue_out = np.arctan2(limited[..., 1], limited[..., 0])[kept]
    assert np.abs(np.angle(np.exp(1j * (hue_out - hue_in)))).max() < 1e-3  # hue kept
    L_out = rgb_to_lab(lab_to_rgb(L, limited))[..., 0]
    assert _psnr(L_out, L, 100.0) >= 50.0 and np.abs(L_out - L).max() < 1.0
    # in-gamut colours are untouched
    mid = np.full((4, 4), 55.0, np.float32)
    small = np.full((4, 4, 2), 12.0, np.float32)
    assert np.array_equal(limit_chroma_to_gamut(mid, small), small)


def test_colorize_L_frames_pairs_frames_for_lookahead_engines():
    class Lagging(Colorizer):
        """Answers each frame only after seeing the next one (look-ahead of 1)."""

        name, version = "test-lagging", "1"

        def colorize_frames(self, frames_L):
            prev = None
            for L in frames_L:
                if prev is not None:
                    yield np.full(prev.shape + (2,), prev[0, 0], np.float32), 0.5
                prev = L
            if prev is not None:
                yield np.full(prev.shape + (2,), prev[0, 0], np.float32), 0.5

    eng = Lagging()
    eng.start_shot([], None)
    Ls = [np.full((3, 4), float(v), np.float32) for v in (10, 20, 30)]
    out = list(colorize_L_frames(eng, Ls))
    assert [float(L[0, 0]) for L, _, _ in out] == [10.0, 20.0, 30.0]
    assert all(float(ab[0, 0, 0]) == float(L[0, 0]) for L, ab, _ in out)


def test_load_reference_lab_reads_png_as_rgb(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "ref.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    lab = load_reference_lab(path)
    assert lab.shape == (4, 6, 3) and np.allclose(lab, rgb_to_lab(rgb))
    assert lab[0, 0, 1] > 40  # a* positive: red, not blue
    with pytest.raises(FileNotFoundError):
        load_reference_lab(tmp_path / "missing.png")


def test_load_palette_lab_reads_palette_save_output(tmp_path):
    from reel.tasks.palette import Palette

    colors = np.array([[60.0, 30.0, -20.0], [35.0, -10.0, 25.0]], np.float32)
    path = Palette(colors_lab=colors, weights=np.array([0.7, 0.3]), k=2, seed=0).save(
        tmp_path / "palette.json")
    got = load_palette_lab(path)
    assert got.dtype == np.float32 and np.array_equal(got, colors)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_colorize_shot_file_roundtrip(tmp_path):
    from reel.tasks import media

    src = tmp_path / "src.mkv"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "testsrc2=size=160x96:rate=25:duration=1", "-c:v", "ffv1", "-pix_fmt", "yuv444p",
         str(src)],
        check=True,
    )
    start, stop = 5, 17
    ref_rgb = next(media.iter_frames(src, start, start + 1, pix_fmt="rgb24"))
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), ref_rgb[..., ::-1])
    src_bytes = src.read_bytes()

    out = tmp_path / "shot" / "colorized.mkv"
    palette = tmp_path / "palette.json"
    palette.write_text('{"colors_lab": [[50.0, 20.0, -10.0]], "weights": [1.0]}')
    res = colorize_shot(src, start, stop, [ref], out, palette_path=palette,
                        analysis_width_px=80, seed=0)
    assert isinstance(res, ColorizeResult) and res.out_path == out and out.is_file()
    assert res.n_frames == stop - start == len(res.per_frame_confidence)
    assert media.count_frames(out) == stop - start
    assert media.probe(out).fps == "25/1"
    assert 0.0 < res.mean_confidence <= 1.0
    assert res.engine["engine"] == "exemplar-propagate"
    assert res.engine["params"]["analysis_width_px"] == 80
    assert src.read_bytes() == src_bytes  # input untouched

    grays = list(media.iter_frames(src, start, stop, pix_fmt="gray"))
    colours = list(media.iter_frames(src, start, stop, pix_fmt="rgb24"))
    outs = list(media.iter_frames(out, pix_fmt="rgb24"))
    assert len(outs) == len(grays)
    chroma_err, gray_err = [], []
    for g, c, o in zip(grays, colours, outs):
        L_out = rgb_to_lab(o)[..., 0]
        assert _psnr(L_out, gray_to_L(g), 100.0) >= 50.0
        assert np.abs(L_to_gray(L_out).astype(int) - g.astype(int)).max() <= 1
        # The source's colours at the gray frame's L, as far as sRGB can show them there.
        ab_src = limit_chroma_to_gamut(gray_to_L(g), rgb_to_lab(c)[..., 1:])
        chroma_err.append(np.abs(rgb_to_lab(o)[..., 1:] - ab_src).mean())
        gray_err.append(np.abs(ab_src).mean())
    # Colour came back from the reference: much closer to the source's chroma than gray is.
    assert np.mean(chroma_err) < 0.5 * np.mean(gray_err)

    # Same inputs, same bytes.
    out2 = tmp_path / "again.mkv"
    colorize_shot(src, start, stop, [ref], out2, palette_path=palette,
                  analysis_width_px=80, seed=0)
    assert out2.read_bytes() == out.read_bytes()
