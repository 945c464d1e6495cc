"The labelling pipeline: stitch geometry, prompt points, the labeller with stand-in components, folder labelling."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.stitch import Stitch, scale_points, pixel_of, resize_mask

RNG = np.random.default_rng(0)
SHAPES = [(int(h), int(w)) for h, w in RNG.integers(1, 1200, size=(150, 2))] + [(1, 1), (3, 3), (1, 5000), (5000, 1), (357, 500)]

# ---------------------------------------------------------------- stitch
@pytest.mark.parametrize('i', range(0, len(SHAPES) - 1))
def test_stitch_round_trips_over_many_sizes(i):
    ref_hw, tgt_hw = SHAPES[i], SHAPES[i + 1]
    s = Stitch(ref_hw, tgt_hw)
    assert s.canvas_hw == (tgt_hw[0], s.offset + tgt_hw[1])
    assert s.offset == 1 or abs(s.offset - ref_hw[1] * tgt_hw[0] / ref_hw[0]) <= 0.5 + 1e-9   # aspect kept, up to whole pixels
    # random continuous points, both images: round trips to within float rounding (of the canvas's coordinates)
    eps = 1e-12 * max(s.canvas_hw)
    for hw, fwd, back in [(tgt_hw, s.target_to_canvas, s.canvas_to_target), (ref_hw, s.reference_to_canvas, s.canvas_to_reference)]:
        p = RNG.random((200, 2)) * [hw[1], hw[0]]
        np.testing.assert_allclose(back(fwd(p)), p, rtol=0, atol=eps)
        q = fwd(p)
        assert (q >= 0).all() and (q[:, 0] <= s.canvas_hw[1]).all() and (q[:, 1] <= s.canvas_hw[0]).all()
    # target pixel centres: exact, and onto the very same pixel
    ys, xs = RNG.integers(0, tgt_hw[0], 100), RNG.integers(0, tgt_hw[1], 100)
    centres = np.stack([xs + 0.5, ys + 0.5], 1)
    assert (s.canvas_to_target(s.target_to_canvas(centres)) == centres).all()
    r, c = pixel_of(s.target_to_canvas(centres), s.canvas_hw)
    assert (r == ys).all() and (c == xs + s.offset).all()
    # reference corners map to the placed reference's corners, so it fills its part of the canvas exactly
    np.testing.assert_allclose(s.reference_to_canvas([[ref_hw[1], ref_hw[0]]]), [[s.offset, tgt_hw[0]]], atol=1e-9)

@pytest.mark.parametrize('ref_hw,tgt_hw', [((357, 500), (500, 357)), ((500, 357), (400, 120)), ((500, 357), (200, 1000)), ((31, 17), (3, 3)), ((5, 9), (1, 1))])
def test_stitch_canvas_and_mask_crop_are_exact(ref_hw, tgt_hw):
    ref = RNG.integers(0, 255, (*ref_hw, 3), dtype=np.uint8)
    tgt = RNG.integers(0, 255, (*tgt_hw, 3), dtype=np.uint8)
    s = Stitch(ref.shape, tgt.shape)
    canvas = s.canvas(ref, tgt)
    assert canvas.shape == (*s.canvas_hw, 3)
    assert (s.target_mask(canvas.transpose(2, 0, 1)).transpose(1, 2, 0) == tgt).all()
    m = RNG.random(s.canvas_hw) > 0.5
    assert (s.target_mask(m) == m[:, s.offset:]).all() and s.target_mask(m).shape == tgt_hw

def test_stitch_reference_blocks_land_on_their_colour():
    # a 4x3 grid of coloured blocks on the reference: each block centre lands on its colour in the canvas
    ref = np.zeros((120, 90, 3), np.uint8)
    for i in range(4):
        for j in range(3): ref[i*30:(i+1)*30, j*30:(j+1)*30] = (i * 60, j * 100, 7)
    for th in [60, 97, 240, 333]:
        s = Stitch(ref.shape, (th, 50))
        canvas = s.canvas(ref, np.zeros((th, 50, 3), np.uint8))
        centres = np.array([[j*30 + 15, i*30 + 15] for i in range(4) for j in range(3)], float)
        r, c = pixel_of(s.reference_to_canvas(centres), s.canvas_hw)
        np.testing.assert_allclose(canvas[r, c, :2].astype(int), [[i * 60, j * 100] for i in range(4) for j in range(3)], atol=2)

def test_scale_points_and_resize_mask_agree():
    m = np.zeros((37, 53), bool); m[10:20, 30:40] = True
    big = resize_mask(m, (111, 159))
    r, c = pixel_of(scale_points([[35.5, 15.5], [5.5, 5.5]], m.shape, big.shape), big.shape)
    assert big[r, c].tolist() == [True, False]

# ---------------------------------------------------------------- points
from segwl.points import object_points, background_points, peak_points, distance_to_background

@__import__("functools").lru_cache(None)
def _shapes():
    "Masks of varied shapes and sizes: ellipses, a ring, an L, an object touching the border, a thin bar, two blobs."
    out = []
    for h, w in [(120, 90), (357, 500), (64, 300), (400, 120)]:
        yy, xx = np.mgrid[:h, :w]
        out.append(((yy - h/2) / (h/3)) ** 2 + ((xx - w/2) / (w/4)) ** 2 < 1)
    yy, xx = np.mgrid[:200, :200]; r = np.hypot(yy - 100, xx - 100)
    out.append((r > 40) & (r < 80))                                   # a ring: the centre is background
    l = np.zeros((150, 150), bool); l[20:130, 20:50] = True; l[100:130, 20:130] = True; out.append(l)
    b = np.zeros((100, 160), bool); b[:70, :90] = True; out.append(b)  # touches the image border
    t = np.zeros((80, 200), bool); t[38:44, 10:190] = True; out.append(t)  # 6 px thin
    two = np.zeros((100, 200), bool); two[20:80, 10:60] = True; two[30:70, 140:190] = True; out.append(two)
    return out

def _under(p, m): return m[np.floor(p[:, 1]).astype(int), np.floor(p[:, 0]).astype(int)]

@pytest.mark.parametrize('k', range(9))
@pytest.mark.parametrize('n', [1, 5, 12])
def test_object_points_inside_away_from_edge_and_spread(k, n):
    m = _shapes()[k]
    p = object_points(m, n)
    assert len(p) == n and _under(p, m).all()
    depth = distance_to_background(m)[np.floor(p[:, 1]).astype(int), np.floor(p[:, 0]).astype(int)]
    assert (depth >= 0.25 * distance_to_background(m).max() - 1e-9).all()
    if n > 1:
        dmin = min(np.linalg.norm(a - b) for i, a in enumerate(p) for b in p[i + 1:])
        # spread: n points on an object of area A are, if even, about sqrt(A/n) apart; FPS keeps at least a good part of that
        assert dmin >= 0.3 * np.sqrt(m.sum() / n) or dmin >= 0.3 * distance_to_background(m).max(), dmin
    assert len({tuple(q) for q in p}) == len(p)

@pytest.mark.parametrize('k', range(9))
@pytest.mark.parametrize('n', [1, 4, 9])
def test_background_points_outside_some_near(k, n):
    m = _shapes()[k]
    p = background_points(m, n)
    assert len(p) == n and not _under(p, m).any()
    away = distance_to_background(~m)[np.floor(p[:, 1]).astype(int), np.floor(p[:, 0]).astype(int)]
    assert (away >= 1.5).all()                                       # never touching the object
    assert (away <= 0.1 * max(m.shape) + 1).sum() >= int(np.ceil(n / 2))  # half of them near it
    assert len({tuple(q) for q in p}) == len(p)

@pytest.mark.parametrize('seed', range(6))
def test_peak_points_known_answer(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(15, 60, 2)
    H, W = rng.integers(h, 800), rng.integers(w, 800)
    yy, xx = np.mgrid[:h, :w]
    # k bumps at random separated cells, distinct heights
    k = 3
    cells = []
    while len(cells) < k:
        c = (int(rng.integers(0, h)), int(rng.integers(0, w)))
        if all(abs(c[0] - d[0]) + abs(c[1] - d[1]) >= 8 for d in cells): cells.append(c)
    heights = [1.0, 0.8, 0.6]
    smap = sum(a * np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / 4.0) for (i, j), a in zip(cells, heights)).astype(np.float32)
    smap += rng.random(smap.shape).astype(np.float32) * 1e-3          # tiny noise: peaks must still win
    cell_px = max(H / h, W / w)
    p = peak_points(smap, 3, (H, W), min_distance=2 * cell_px)
    expect = np.array([[(j + 0.5) * W / w, (i + 0.5) * H / h] for i, j in cells])
    np.testing.assert_allclose(p, expect, atol=1e-9)
    lo = peak_points(-smap, 2, (H, W), min_distance=2 * cell_px)     # minima: far from every bump
    for q in lo: assert min(np.linalg.norm(q - e) for e in expect) >= 2 * cell_px
