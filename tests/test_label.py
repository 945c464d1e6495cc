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
