"Issue 12: text points only where the map points (peak_threshold), and absent instead of a forced mask (the gates)."
import numpy as np
import pytest
import torch
from conftest import iou
from segwl.pseudolabel import PseudoLabeler, LabelSettings
from segwl.testing import ColourSegmenter, ColourScorer, synthetic_scene

RED = (220, 30, 30)

def lookalike_scene(hw, kind='small', seed=0, present=True, n_distractors=3):
    """An HxW scene: far-coloured clutter, `n_distractors` look-alikes (the object's colour shifted by 100-130 in one
    channel) and, if `present`, one object of colour RED shaped by `kind`: small, narrow or offcentre. (image, mask)"""
    rng = np.random.default_rng(seed)
    h, w = hw
    img = np.empty((h, w, 3), np.int16)
    def far():
        while True:
            c = rng.integers(0, 256, 3)
            if np.abs(c - RED).max() > 150: return c
    img[:] = far()
    for _ in range(10):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0:y0 + rng.integers(1, h // 3 + 2), x0:x0 + rng.integers(1, w // 3 + 2)] = far()
    yy, xx = np.mgrid[:h, :w]
    def ellipse(cy, cx, ry, rx): return ((yy + .5 - cy) / ry) ** 2 + ((xx + .5 - cx) / rx) ** 2 < 1
    for _ in range(n_distractors):
        c = np.array(RED)
        ch = rng.integers(0, 3)
        c[ch] = np.clip(c[ch] + rng.choice([-1, 1]) * rng.integers(100, 131), 0, 255)
        if np.abs(c - RED).max() < 100: c[ch] = (RED[ch] + 120) % 256
        ry, rx = rng.uniform(0.08, 0.2) * h, rng.uniform(0.08, 0.2) * w
        img[ellipse(rng.uniform(ry, h - ry), rng.uniform(rx, w - rx), ry, rx)] = c
    mask = np.zeros((h, w), bool)
    if present:
        s = min(h, w)
        if kind == 'small':
            ry = rx = rng.uniform(0.06, 0.1) * s
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        elif kind == 'narrow':
            ry, rx = rng.uniform(0.25, 0.4) * h, rng.uniform(0.03, 0.06) * w
            cy, cx = h / 2, rng.uniform(0.2, 0.8) * w
        else:
            ry, rx = rng.uniform(0.1, 0.18) * h, rng.uniform(0.1, 0.18) * w
            cy, cx = rng.uniform(0.12, 0.25) * h, rng.uniform(0.75, 0.88) * w
        ry, rx = max(ry, 3), max(rx, 3)
        mask = ellipse(cy, cx, ry, rx)
        img[mask] = RED
    img += rng.integers(-6, 7, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8), mask


SIZES = [(60, 200), (200, 60), (120, 120), (90, 160), (160, 90), (48, 300), (300, 48), (240, 320)]
KINDS = ['small', 'narrow', 'offcentre']


@pytest.fixture(scope='module')
def scenes():
    torch.set_num_threads(1)
    return [lookalike_scene(hw, kind, seed=10 * i + j) for i, hw in enumerate(SIZES) for j, kind in enumerate(KINDS)]


def labeller(**kw):
    ref, ref_mask = synthetic_scene((90, 120), seed=1)
    return PseudoLabeler(ref, ref_mask, 'a red ellipse', ColourSegmenter(), ColourScorer(window=4, stride=2), **kw)


def test_default_threshold_finds_small_narrow_offcentre_objects(scenes):
    "24 scenes, 8 sizes and aspect ratios, three look-alikes each: perfect stand-ins give exact masks by default."
    ious = [iou(labeller().label(im).mask, m) for im, m in scenes]
    assert np.mean(ious) >= 0.95 and min(ious) >= 0.8, ious


def test_threshold_zero_is_the_seed_behaviour_and_worse(scenes):
    "With 0 every separated peak is a text point, as the seed did: points land on look-alikes and the masks merge them."
    pl = labeller(peak_threshold=0)
    ious = [iou(pl.label(im).mask, m) for im, m in scenes]
    assert np.mean(ious) < 0.6
    r = pl.label(scenes[0][0])
    assert len(r.points['text_object']) == 3 and len(r.points['text_object_dropped']) == 0


def test_weak_peaks_are_dropped_not_forced(scenes):
    r = labeller().label(scenes[0][0])                     # a small object: one strong peak
    im, m = scenes[0]
    kept, dropped = r.points['text_object'], r.points['text_object_dropped']
    assert len(kept) + len(dropped) == 3 and len(dropped) >= 1
    rows, cols = np.floor(kept[:, 1]).astype(int), np.floor(kept[:, 0]).astype(int)
    assert m[rows, cols].all()                              # every kept text point is on the object


@pytest.mark.parametrize('hw', [(80, 120), (150, 60)])
def test_absent_scenes_come_back_absent_and_empty(hw):
    "No object, three look-alikes: the text gate says absent, the mask is empty, the segmenter never runs."
    pl = labeller(min_text_score=0.001)
    seg = pl.segmenter
    for seed in range(3):
        im, m = lookalike_scene(hw, present=False, seed=seed)
        r = pl.label(im)
        assert not m.any() and r.present is False and not r.mask.any() and r.mask.shape == hw
        assert r.text_score == 0.0 and np.isnan(r.score)
    assert seg.set_image_calls == 0
    im, m = lookalike_scene(hw, 'small', seed=7)
    r = pl.label(im)                                        # the gate keeps an image with the object
    assert r.present is True and iou(r.mask, m) == 1.0


def test_min_mask_score_gate_says_absent_below_it(scenes):
    im, m = scenes[2]
    r = labeller().label(im)
    assert r.present and r.score == 1.0
    r = labeller(min_mask_score=1.01).label(im)             # above every score the stand-in gives
    assert r.present is False and not r.mask.any() and r.score == 1.0
    assert labeller(min_score=1.01).settings.min_mask_score == 1.01      # its old name still works


def test_gates_are_settings_with_bounds():
    assert ((LabelSettings().min_text_score, LabelSettings().min_mask_score, LabelSettings().peak_threshold)
            == (None, None, 0.8))
    with pytest.raises(Exception, match='peak_threshold=2'): LabelSettings(peak_threshold=2)
