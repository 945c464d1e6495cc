"Issue 24: several targets on one canvas (segwl.stitch.PackedLayout); N = 1 is today's Stitch and CanvasLayout exactly."
import json
import numpy as np
import pytest
from segwl.stitch import (LAYOUTS, MAX_TARGETS, CanvasLayout, PackedLayout, Stitch, input_pixels, padding_fraction,
                          pixel_of, resize_image, single_pixels)
from segwl.stitch import _grid_plans

RNG = np.random.default_rng(24)
PHOTOS = [(3, 4), (4, 3), (9, 16), (2, 3), (1, 1), (1, 3)]


def photo(rng):
    "A photo-like (H, W): one of a few aspect ratios at a random size."
    h, w = PHOTOS[rng.integers(len(PHOTOS))]
    f = rng.uniform(10, 80)
    return max(1, int(h * f)), max(1, int(w * f))


def picture(hw, rng):
    return rng.integers(0, 256, (*hw, 3), dtype=np.uint8)


# ---------------------------------------------------------------- N = 1: today's canvases, exactly
@pytest.mark.parametrize('seed', range(40))
def test_one_target_is_the_stitch(seed):
    rng = np.random.default_rng(seed)
    ref_hw, tgt_hw = photo(rng), photo(rng)
    st, lay = Stitch(ref_hw, tgt_hw), PackedLayout([ref_hw], [tgt_hw], layout='stitch')
    ref, tgt = picture(ref_hw, rng), picture(tgt_hw, rng)
    assert (lay.chosen, lay.hw, lay.cells) == ('stitch', st.canvas_hw, st.cells)
    assert (lay.canvas([ref], [tgt]) == st.canvas(ref, tgt)).all()
    p = rng.random((50, 2)) * [tgt_hw[1], tgt_hw[0]]
    q = rng.random((50, 2)) * [ref_hw[1], ref_hw[0]]
    np.testing.assert_array_equal(lay.target_to_canvas(0, p), st.target_to_canvas(p))
    c = st.target_to_canvas(p)
    np.testing.assert_array_equal(lay.canvas_to_target(0, c), st.canvas_to_target(c))
    np.testing.assert_allclose(lay.reference_to_canvas(q), st.reference_to_canvas(q), rtol=1e-15, atol=1e-12)
    m = rng.random(st.canvas_hw) > 0.5
    assert (lay.target_mask(0, m) == st.target_mask(m)).all()
    assert (lay.target_mask(0, np.stack([m, ~m])) == st.target_mask(np.stack([m, ~m]))).all()
    assert (lay.describe(0)['grid'], lay.describe(0)['cell'], lay.describe(0)['vs_single']) == ('stitch', 1, 1.0)
    assert padding_fraction(lay) == padding_fraction(st)


@pytest.mark.parametrize('seed', range(30))
def test_one_target_is_the_canvas_layout(seed):
    rng = np.random.default_rng(100 + seed)
    refs, tgt_hw = [photo(rng) for _ in range(rng.integers(1, 6))], photo(rng)
    for how in LAYOUTS:
        one, lay = CanvasLayout(refs, tgt_hw, how), PackedLayout(refs, [tgt_hw], layout=how)
        assert (lay.chosen, lay.hw, lay.references, lay.targets) == (one.side, one.hw, one.references, (one.target,))
        ims, tgt = [picture(hw, rng) for hw in refs], picture(tgt_hw, rng)
        assert (lay.canvas(ims, [tgt]) == one.canvas(ims, tgt)).all()
        boxes = np.array([[1.5, 2.0, tgt_hw[1] - 1, tgt_hw[0] / 2]])
        np.testing.assert_array_equal(lay.target_boxes_to_canvas(0, boxes), one.target.boxes_to_canvas(boxes))


# ---------------------------------------------------------------- the padding: the numbers
def test_padding_known_numbers():
    assert padding_fraction(Stitch((384, 512), (384, 512))) == 0.625            # 1024 x 384 of 1024 x 1024
    assert padding_fraction(Stitch((768, 1024), (150, 200)), 1008) == 0.625     # whatever the sizes and the model
    lay = PackedLayout([(300, 400)], [(300, 400)] * 3, layout='stitch')
    assert (lay.chosen, lay.hw, padding_fraction(lay)) == ('2x2', (768, 1024), 0.25)
    assert all(lay.describe(i)['vs_single'] == 1.0 for i in range(3))           # each target: the stitch's 512 x 384
    assert [c.placed_hw for c in lay.cells] == [(384, 512)] * 4
    assert input_pixels(lay.targets[0], lay.hw) == single_pixels([(300, 400)], (300, 400), 1024, 'stitch') == 384 * 512
    sam3 = PackedLayout([(300, 400)], [(300, 400)] * 3, size=1008, layout='stitch')
    assert (sam3.chosen, sam3.hw, round(padding_fraction(sam3, 1008), 4)) == ('2x2', (756, 1008), 0.25)


# ---------------------------------------------------------------- several targets: geometry that holds for any shapes
def _layouts(rng, n_refs):
    refs, tgts = [photo(rng) for _ in range(n_refs)], [photo(rng) for _ in range(rng.integers(2, MAX_TARGETS + 1))]
    yield PackedLayout(refs, tgts, layout='stitch' if n_refs == 1 else 'auto', size=int(rng.choice([1008, 1024])))
    for grid in rng.choice([p[0] for p in _grid_plans(refs, tgts, 256)], 2):
        yield PackedLayout(refs, tgts, size=256, grid=str(grid))


@pytest.mark.parametrize('seed', range(25))
@pytest.mark.parametrize('n_refs', [1, 3])
def test_packed_cells_fit_keep_aspect_and_do_not_overlap(seed, n_refs):
    rng = np.random.default_rng(1000 * n_refs + seed)
    for lay in _layouts(rng, n_refs):
        assert max(lay.hw) <= lay.size
        taken = np.zeros(lay.hw, int)
        for c in lay.cells:
            (h, w), (ph, pw) = c.hw, c.placed_hw
            assert c.top >= 0 and c.left >= 0 and c.top + ph <= lay.hw[0] and c.left + pw <= lay.hw[1]
            assert abs(pw / ph - w / h) <= (w / h) * 1.01 * (1 / ph + 1 / pw), (lay.chosen, c)   # one scale, to a pixel
            taken[c.window] += 1
        assert taken.max() == 1, lay.chosen
        assert 0 <= padding_fraction(lay, lay.size) < 1
        json.dumps([lay.summary(), *[lay.describe(i) for i in range(len(lay.targets))]])


@pytest.mark.parametrize('seed', range(20))
def test_packed_maps_round_trip_and_land_on_the_target(seed):
    rng = np.random.default_rng(2000 + seed)
    refs, tgts = [photo(rng)], [photo(rng) for _ in range(rng.integers(2, 6))]
    lay = PackedLayout(refs, tgts, size=320, layout='stitch')
    ims = [picture(hw, rng) for hw in tgts]
    canvas = lay.canvas([picture(refs[0], rng)], ims, fill=7)
    for i, (hw, im) in enumerate(zip(tgts, ims)):
        cell = lay.targets[i]
        assert (canvas[cell.window] == resize_image(im, cell.placed_hw)).all()
        p = rng.random((100, 2)) * [hw[1], hw[0]]
        np.testing.assert_allclose(lay.canvas_to_target(i, lay.target_to_canvas(i, p)), p, atol=1e-9)
        r, c = pixel_of(lay.target_to_canvas(i, p), lay.hw)
        assert (lay.owners(_dots(lay.hw, r, c)) == len(refs) + i).all()            # every point lands in its cell
        x0y0 = rng.random((5, 2)) * [hw[1] / 2, hw[0] / 2]
        boxes = np.concatenate([x0y0, x0y0 + rng.random((5, 2)) * [hw[1] / 2, hw[0] / 2]], 1)
        there = lay.target_boxes_to_canvas(i, boxes)
        np.testing.assert_allclose(lay.canvas_boxes_to_target(i, there), boxes, atol=1e-9)
    free = np.ones(lay.hw, bool)
    for c in lay.cells: free[c.window] = False
    assert (canvas[free] == 7).all()


def _dots(hw, rows, cols):
    "One canvas mask per point, True at its pixel only."
    m = np.zeros((len(rows), *hw), bool)
    m[np.arange(len(rows)), rows, cols] = True
    return m


def test_masks_come_back_at_the_targets_size():
    lay = PackedLayout([(300, 400)], [(600, 800), (90, 160), (400, 300)], size=512, layout='stitch', grid='2x2')
    for i, cell in enumerate(lay.targets):
        m = np.zeros(lay.hw, bool)
        rows, cols = cell.window
        m[rows.start:rows.start + cell.placed_hw[0] // 2, cols] = True        # the top half of target i's picture
        back = lay.target_mask(i, m)
        h, w = lay.target_hws[i]
        assert back.shape == (h, w) and back[:h // 2 - 1].all() and not back[h // 2 + 1:].any()
        assert not any(lay.target_mask(j, m).any() for j in range(3) if j != i)


# ---------------------------------------------------------------- whose instance
def test_an_instance_crossing_cells_belongs_where_it_mostly_lies():
    lay = PackedLayout([(384, 512)], [(384, 512)] * 3, layout='stitch')           # 2x2 of 512 x 384, at their own size
    m = np.zeros(lay.hw, bool)
    m[100:200, 500:560] = True                                       # 12 columns on the reference, 48 on target 0
    assert (lay.cell_of(m), lay.target_of(m)) == (1, 0)
    assert lay.target_mask(0, m).sum() == 100 * 48 and lay.target_mask(1, m).sum() == 0
    m[:, :] = False
    m[350:400, 100:110] = True                                       # 34 rows on the reference, 16 on target 1
    assert (lay.cell_of(m), lay.target_of(m)) == (0, None)
    assert lay.cell_of(np.zeros(lay.hw, bool)) is None
    assert list(lay.owners(np.zeros((2, *lay.hw), bool))) == [-1, -1]


# ---------------------------------------------------------------- the pick
@pytest.mark.parametrize('seed', range(15))
def test_the_pick_keeps_the_floor_when_a_grid_can_and_then_pads_least(seed):
    rng = np.random.default_rng(3000 + seed)
    refs, tgts = [photo(rng)], [photo(rng) for _ in range(rng.integers(2, 5))]
    lay = PackedLayout(refs, tgts, layout='stitch')
    single = [single_pixels(refs, t, 1024, 'stitch') for t in tgts]
    keeps = lambda p: min(input_pixels(c, p[3]) / s for c, s in zip(p[2], single)) >= 0.99
    floor = [p for p in _grid_plans(refs, tgts, 1024) if keeps(p)]
    worst = min(lay.describe(i)['vs_single'] for i in range(len(tgts)))
    if floor:
        assert worst >= 0.99 - 1e-4
        best = min(1 - sum(input_pixels(c, p[3]) for c in (*p[1], *p[2])) / 1024 ** 2 for p in floor)
        assert padding_fraction(lay) <= best + 1e-12


def test_references_can_share_a_cell():
    refs = [(300, 400)] * 5
    shared = PackedLayout(refs, [(300, 400)] * 3, grid='2x2 shared')
    own = PackedLayout(refs, [(300, 400)] * 3, grid='3x3')
    assert len({(c.top, c.left) for c in shared.references}) == 5                # five small references in one cell
    assert all(c.top + c.placed_hw[0] <= 512 and c.left + c.placed_hw[1] <= 512 for c in shared.references)
    assert [c.placed_hw for c in shared.targets] == [(384, 512)] * 3            # the targets keep a cell each
    assert [c.placed_hw for c in own.targets] == [(256, 341), (256, 341), (256, 342)]   # a ninth of the input each
    worst = lambda lay: min(lay.describe(i)['vs_single'] for i in range(3))
    assert worst(PackedLayout(refs, [(300, 400)] * 3)) >= worst(shared) > worst(own)   # the pick: no worse than shared


def test_refusals_say_what_to_do():
    with pytest.raises(ValueError, match='holds 1 to 8'): PackedLayout([(3, 4)], [(3, 4)] * 9)
    with pytest.raises(ValueError, match='holds 1 to 8'): PackedLayout([(3, 4)], [])
    with pytest.raises(ValueError, match='at least one reference'): PackedLayout([], [(3, 4)])
    with pytest.raises(ValueError, match="one of \\['1x3', '2x2', '3x1'\\]"):
        PackedLayout([(3, 4)], [(3, 4)] * 2, grid='4x4')
    with pytest.raises(ValueError, match='input side'): PackedLayout([(3, 4)], [(3, 4)] * 2, size=0)
    with pytest.raises(ValueError, match='takes one reference'): PackedLayout([(3, 4)] * 2, [(3, 4)], layout='stitch')
    with pytest.raises(ValueError, match="expected one of \\('auto', 'left', 'top', 'stitch'\\)"):
        PackedLayout([(3, 4)], [(3, 4)] * 2, layout='grid')
    lay = PackedLayout([(3, 4)], [(3, 4)] * 2, size=64)
    with pytest.raises(ValueError, match='1 references and 1 targets'):
        lay.canvas([np.zeros((3, 4, 3), np.uint8)], [None])
    with pytest.raises(ValueError, match='not canvas-sized'): lay.target_mask(0, np.zeros((3, 3), bool))
