"The labelling pipeline: stitch geometry, prompt points, the labeller with stand-in components, folder labelling."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.stitch import Stitch, scale_points, pixel_of, resize_mask

RNG = np.random.default_rng(0)
SHAPES = ([(int(h), int(w)) for h, w in RNG.integers(1, 1200, size=(150, 2))]
          + [(1, 1), (3, 3), (1, 5000), (5000, 1), (357, 500)])

# ---------------------------------------------------------------- stitch
@pytest.mark.parametrize('i', range(0, len(SHAPES) - 1))
def test_stitch_round_trips_over_many_sizes(i):
    ref_hw, tgt_hw = SHAPES[i], SHAPES[i + 1]
    s = Stitch(ref_hw, tgt_hw)
    assert s.canvas_hw == (tgt_hw[0], s.offset + tgt_hw[1])
    # aspect kept, up to whole pixels
    assert s.offset == 1 or abs(s.offset - ref_hw[1] * tgt_hw[0] / ref_hw[0]) <= 0.5 + 1e-9
    # random continuous points, both images: round trips to within float rounding (of the canvas's coordinates)
    eps = 1e-12 * max(s.canvas_hw)
    for hw, fwd, back in [(tgt_hw, s.target_to_canvas, s.canvas_to_target),
                          (ref_hw, s.reference_to_canvas, s.canvas_to_reference)]:
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

@pytest.mark.parametrize('ref_hw,tgt_hw', [((357, 500), (500, 357)), ((500, 357), (400, 120)),
                                           ((500, 357), (200, 1000)), ((31, 17), (3, 3)), ((5, 9), (1, 1))])
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
        np.testing.assert_allclose(canvas[r, c, :2].astype(int),
                                   [[i * 60, j * 100] for i in range(4) for j in range(3)], atol=2)

def test_scale_points_and_resize_mask_agree():
    m = np.zeros((37, 53), bool)
    m[10:20, 30:40] = True
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
    yy, xx = np.mgrid[:200, :200]
    r = np.hypot(yy - 100, xx - 100)
    out.append((r > 40) & (r < 80))                                   # a ring: the centre is background
    l = np.zeros((150, 150), bool)
    l[20:130, 20:50] = True
    l[100:130, 20:130] = True
    out.append(l)
    b = np.zeros((100, 160), bool)
    b[:70, :90] = True                                                # touches the image border
    out.append(b)
    t = np.zeros((80, 200), bool)
    t[38:44, 10:190] = True                                           # 6 px thin
    out.append(t)
    two = np.zeros((100, 200), bool)
    two[20:80, 10:60] = True
    two[30:70, 140:190] = True
    out.append(two)
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
        # spread: n points on an object of area A are, if even, about sqrt(A/n) apart; FPS keeps at least a good part
        # of that
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
    smap = sum(a * np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / 4.0)
               for (i, j), a in zip(cells, heights)).astype(np.float32)
    smap += rng.random(smap.shape).astype(np.float32) * 1e-3          # tiny noise: peaks must still win
    cell_px = max(H / h, W / w)
    p = peak_points(smap, 3, (H, W), min_distance=2 * cell_px)
    expect = np.array([[(j + 0.5) * W / w, (i + 0.5) * H / h] for i, j in cells])
    np.testing.assert_allclose(p, expect, atol=1e-9)
    lo = peak_points(-smap, 2, (H, W), min_distance=2 * cell_px)     # minima: far from every bump
    for q in lo: assert min(np.linalg.norm(q - e) for e in expect) >= 2 * cell_px

# ---------------------------------------------------------------- the labeller, with stand-ins
import torch
torch.set_num_threads(1)
from segwl.data import load_mask, SegwlError
from segwl.pseudolabel import PseudoLabeler, LabelSettings
from segwl.folder import label_folder, read_manifest, MANIFEST_KEYS
from segwl.testing import ColourSegmenter, ColourScorer, synthetic_scene, scene_folder, odd_files
from segwl import stitch as stitch_mod

from conftest import checkout_env, iou

class CheckingSegmenter(ColourSegmenter):
    "The protocol's contract, checked: an ordinary image, points inside it, labels 0/1."
    def set_image(self, image):
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        super().set_image(image)
    def predict(self, points, labels, multimask=True):
        h, w = self.image.shape[:2]
        assert points.shape == (len(labels), 2) and set(np.unique(labels)) <= {0, 1}
        assert (points >= 0).all() and (points[:, 0] < w).all() and (points[:, 1] < h).all()
        return super().predict(points, labels, multimask)

REFS = [(357, 500), (500, 357), (90, 300)]                    # (H, W): landscape, portrait, panorama references
TARGETS = [(357, 500), (400, 120), (200, 1000), (31, 45), (640, 480)]

@pytest.mark.parametrize('ref_hw', REFS)
def test_labeller_exact_with_stand_ins_over_sizes_and_aspect_ratios(ref_hw):
    ref, ref_mask = synthetic_scene(ref_hw, seed=100)
    seg = CheckingSegmenter()
    pl = PseudoLabeler(ref, ref_mask, 'a red ellipse', segmenter=seg, scorer=ColourScorer(), trials=3, n_object=5,
                       n_background=5)
    for i, hw in enumerate(TARGETS):
        img, true = synthetic_scene(hw, seed=200 + i)
        r = pl.label(img)
        assert r.mask.shape == hw and r.mask.dtype == bool
        assert iou(r.mask, true) == 1.0, (hw, iou(r.mask, true))
        assert r.score == 1.0
        tobj = r.points['text_object']                    # text points (target frame) are on the object
        assert true[np.floor(tobj[:, 1]).astype(int), np.floor(tobj[:, 0]).astype(int)].mean() >= 2 / 3
        assert ref_mask[np.floor(r.points['reference_object'][:, 1]).astype(int),
                        np.floor(r.points['reference_object'][:, 0]).astype(int)].all()
    assert (seg.set_image_calls, seg.predict_calls) == (len(TARGETS), 3 * len(TARGETS))   # one embedding per target

def test_the_exactness_test_can_fail(monkeypatch):
    "Crop one column off: the same test no longer sees IoU 1, so the geometry really is being tested."
    shifted = lambda self, m: np.asarray(m)[..., self.window[0], self.left - 1:self.left - 1 + self.placed_hw[1]]
    monkeypatch.setattr(stitch_mod.Cell, 'crop', shifted)      # what the labeller crops its target's mask with
    ref, ref_mask = synthetic_scene((357, 500), seed=100)
    img, true = synthetic_scene((200, 1000), seed=3)
    r = PseudoLabeler(ref, ref_mask, 'x', segmenter=ColourSegmenter(), scorer=ColourScorer(), trials=1).label(img)
    assert iou(r.mask, true) < 1

def test_trials_use_different_seeded_subsets():
    ref, ref_mask = synthetic_scene((100, 150), seed=1)
    seen = []
    class Recording(ColourSegmenter):
        def predict(self, points, labels, multimask=True):
            seen.append((points.copy(), labels.copy()))
            return super().predict(points, labels, multimask)
    pl = PseudoLabeler(ref, ref_mask, 'x', segmenter=Recording(), scorer=ColourScorer(), trials=5, n_object=6,
                       n_background=6, n_text=3, n_text_background=2,
                       peak_threshold=0)              # every separated peak: a known number of points
    img = synthetic_scene((120, 90), seed=2)[0]
    pl.label(img)
    assert len(seen[0][0]) == 6 + 6 + 3 + 2                           # the first trial: every point
    assert all(len(p) < len(seen[0][0]) for p, _ in seen[1:])         # the others: subsets
    assert len({p.tobytes() for p, _ in seen}) == 5                   # all different
    first = [p.copy() for p, _ in seen]
    seen.clear()
    pl.label(img)
    assert all((a == b).all() for a, b in zip(first, (p for p, _ in seen)))   # the same seed: the same prompts

def test_best_mask_prefers_masks_with_object_in_the_target():
    class OnlyReference(ColourSegmenter):
        "Best score for a mask of the reference side only; a worse one covers part of the target."
        def predict(self, points, labels, multimask=True):
            m = np.zeros((2, *self.image.shape[:2]), bool)
            m[0, :, :3] = True
            m[1, :, -4:] = True
            return m, np.array([0.99, 0.5], np.float32)
    ref, ref_mask = synthetic_scene((60, 60), seed=1)
    r = PseudoLabeler(ref, ref_mask, 'x', segmenter=OnlyReference(), scorer=ColourScorer(),
                      trials=1).label(np.zeros((30, 40, 3), np.uint8))
    assert r.score == 0.5 and r.mask[:, -4:].all() and r.mask.sum() == 4 * 30

def test_label_settings_json_round_trip_and_defaults(tmp_path):
    s = LabelSettings(n_object=3, n_background=2, n_text=1, n_text_background=0, trials=4, multimask=False, window=32,
                      stride=16, seed=7)
    s.save(tmp_path/'s.json')
    assert LabelSettings.from_json(tmp_path/'s.json') == s
    assert json.loads((tmp_path/'s.json').read_text())['seed'] == 7
    assert LabelSettings().seed == 0 and LabelSettings().trials == 10
    (tmp_path/'bad.json').write_text('{"trials": 0}')
    with pytest.raises(SegwlError, match='trials=0'): LabelSettings.from_json(tmp_path/'bad.json')
    (tmp_path/'bad.json').write_text('{"trials": 2,')
    with pytest.raises(SegwlError, match='not valid JSON'): LabelSettings.from_json(tmp_path/'bad.json')

# ---------------------------------------------------------------- label_folder
class Whole:
    "A seed labeller whose results carry `instances` (None), as the `LabelResult` protocol has every result do."
    def __init__(self, pl): self.pl, self.settings, self.text, self.references = pl, pl.settings, pl.text, []
    def label(self, image):
        r = self.pl.label(image)
        r.instances = None               # a no-op once the seed's LabelResult has the field (branch recipe)
        return r

def _labeler(seg=None, **kw):
    ref, ref_mask = synthetic_scene((80, 110), seed=7)
    kw = dict(dict(trials=2, n_object=4, n_background=4), **kw)
    return Whole(PseudoLabeler(ref, ref_mask, 'a red ellipse', segmenter=seg or ColourSegmenter(),
                               scorer=ColourScorer(), **kw))

SIZES = [(60, 80), (90, 40), (40, 150), (70, 70), (50, 65)]

def _snapshot(out):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((out/'masks').iterdir())}

def _no_parts(out): return not [p for p in Path(out).rglob('*') if p.name.endswith('.part')]

def test_label_folder_outputs_resume_and_rerun(tmp_path):
    truth = scene_folder(tmp_path/'imgs', SIZES, seed=40)
    out = tmp_path/'out'
    assert (label_folder(_labeler(), tmp_path/'imgs', out, progress=False)
            == dict(ok=5, absent=0, error=0, skipped=0, total=5))
    rows = read_manifest(out/'manifest.jsonl')
    assert ([r['file'] for r in rows] == [p.name for p in truth]
            and all(set(r) == {*MANIFEST_KEYS, 'disagreement'} for r in rows))
    assert all(r['status'] == 'ok' and r['error'] is None and 0.5 < r['score'] <= 1 and 0 < r['text_score'] < 1
               and r['seconds'] >= 0 for r in rows)
    for p, m in truth.items():
        saved = Image.open(out/'masks'/f'{p.stem}.png')
        assert saved.mode == 'L' and set(np.unique(np.asarray(saved))) <= {0, 255}
        assert (load_mask(out/'masks'/f'{p.stem}.png') == m).all()
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['settings'] == _labeler().settings.to_dict()
            and set(cfg['versions']) >= {'segwl', 'torch', 'numpy', 'pillow'})
    before = _snapshot(out)
    seg = ColourSegmenter()
    assert (label_folder(_labeler(seg), tmp_path/'imgs', out, progress=False)
            == dict(ok=0, absent=0, error=0, skipped=5, total=5))
    assert seg.set_image_calls == 0 and _snapshot(out) == before             # the second run does nothing
    (out/'masks'/'scene_02.png').unlink()
    assert label_folder(_labeler(seg), tmp_path/'imgs', out, progress=False)['ok'] == 1 and seg.set_image_calls == 1
    after = _snapshot(out)
    assert ({k: v for k, v in after.items() if k != 'scene_02.png'}
            == {k: v for k, v in before.items() if k != 'scene_02.png'})
    assert after['scene_02.png'][0] == before['scene_02.png'][0]            # redone, identically
    assert len(read_manifest(out/'manifest.jsonl')) == 5 and _no_parts(out)
    assert label_folder(_labeler(), tmp_path/'imgs', out, resume=False, progress=False)['ok'] == 5

def test_label_folder_refuses_to_resume_with_other_settings(tmp_path):
    scene_folder(tmp_path/'imgs', SIZES[:2])
    label_folder(_labeler(), tmp_path/'imgs', tmp_path/'out', progress=False)
    with pytest.raises(SegwlError, match='seed.*--no-resume'):
        label_folder(_labeler(seed=5), tmp_path/'imgs', tmp_path/'out', progress=False)

def test_same_seed_same_masks_whatever_the_order_or_interruptions(tmp_path):
    scene_folder(tmp_path/'imgs', SIZES, seed=3)
    label_folder(_labeler(trials=4), tmp_path/'imgs', tmp_path/'a', progress=False)
    files = sorted((tmp_path/'imgs').iterdir())
    label_folder(_labeler(trials=4), files[2:], tmp_path/'b', progress=False)   # a part first, then the rest
    label_folder(_labeler(trials=4), files, tmp_path/'b', progress=False)
    a, b = _snapshot(tmp_path/'a'), _snapshot(tmp_path/'b')
    assert {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}

def test_error_rows_exact_and_the_batch_goes_on(tmp_path):
    exp = odd_files(tmp_path/'imgs', huge=None)
    scene_folder(tmp_path/'imgs', SIZES[:2])
    # same stem as scene_00.png
    Image.fromarray(synthetic_scene((30, 40), seed=1)[0]).save(tmp_path/'imgs'/'scene_00.jpg')
    n = label_folder(_labeler(), tmp_path/'imgs', tmp_path/'out', progress=False)
    rows = {r['file']: r for r in read_manifest(tmp_path/'out'/'manifest.jsonl')}
    exp = dict(exp, **{'tiny1.png': ('error', 'too small'), 'tiny3.png': ('error', 'too small'),
                       'scene_00.png': ('error', 'same name as scene_00.jpg'),
                       'scene_00.jpg': ('error', 'same name as scene_00.png'),
                       'scene_01.png': ('ok', (90, 40))})
    assert set(rows) == set(exp)                                        # one row per image file, none for readme.txt
    for name, (status, what) in exp.items():
        r = rows[name]
        assert r['status'] == status, (name, r)
        if status == 'ok':
            assert load_mask(tmp_path/'out'/'masks'/f'{Path(name).stem}.png').shape == what, name
            assert r['error'] is None and r['score'] is not None
        else:
            assert what in r['error'] and name in r['error'] and r['score'] is None, (name, r)
            assert not (tmp_path/'out'/'masks'/f'{Path(name).stem}.png').exists() or name.startswith('scene_00')
    assert n == dict(absent=0, ok=sum(s == 'ok' for s, _ in exp.values()),
                     error=sum(s == 'error' for s, _ in exp.values()), skipped=0, total=len(exp))
    assert not (tmp_path/'out'/'masks'/'scene_00.png').exists()               # neither twin wrote it

def test_an_exception_mid_batch_leaves_a_consistent_manifest(tmp_path):
    scene_folder(tmp_path/'imgs', SIZES, seed=11)
    class Boom(ColourSegmenter):
        def set_image(self, image):
            if self.set_image_calls == 2: raise KeyboardInterrupt    # the third image: like Ctrl-C
            super().set_image(image)
    with pytest.raises(KeyboardInterrupt):
        label_folder(_labeler(Boom()), tmp_path/'imgs', tmp_path/'out', progress=False)
    rows = read_manifest(tmp_path/'out'/'manifest.jsonl')
    assert [r['file'] for r in rows] == ['scene_00.png', 'scene_01.png'] and all(r['status'] == 'ok' for r in rows)
    assert (sorted(p.name for p in (tmp_path/'out'/'masks').iterdir()) == ['scene_00.png', 'scene_01.png']
            and _no_parts(tmp_path/'out'))
    # an error inside the mask write: no partial file, an error row, and the batch goes on
    import segwl.folder as pmod
    real = pmod.save_mask
    def flaky(mask, path):
        if Path(path).stem == 'scene_03':
            from segwl.data import atomic_path
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(b'half a png')
                raise OSError('disk full')
        real(mask, path)
    pmod.save_mask = flaky
    try: n = label_folder(_labeler(), tmp_path/'imgs', tmp_path/'out', progress=False)
    finally: pmod.save_mask = real
    assert n == dict(ok=2, absent=0, error=1, skipped=2, total=5) and _no_parts(tmp_path/'out')
    assert not (tmp_path/'out'/'masks'/'scene_03.png').exists()
    rows = {r['file']: r for r in read_manifest(tmp_path/'out'/'manifest.jsonl')}
    assert 'disk full' in rows['scene_03.png']['error']
    # a partial last line (killed while writing a row) is dropped by the next run, which then finishes
    with open(tmp_path/'out'/'manifest.jsonl', 'a') as f: f.write('{"file": "scene_0')
    assert (label_folder(_labeler(), tmp_path/'imgs', tmp_path/'out', progress=False)
            == dict(ok=1, absent=0, error=0, skipped=4, total=5))
    assert len((tmp_path/'out'/'manifest.jsonl').read_text().splitlines()) == 5

KILL_SCRIPT = '''
import sys, time, torch; torch.set_num_threads(1)
from segwl.pseudolabel import PseudoLabeler
from segwl.folder import label_folder
from segwl.testing import ColourSegmenter, ColourScorer, synthetic_scene
class Slow(ColourSegmenter):
    def predict(self, *a, **k): time.sleep(0.05); return super().predict(*a, **k)
ref, m = synthetic_scene((80, 110), seed=7)
pl = PseudoLabeler(ref, m, 'a red ellipse', segmenter=Slow(), scorer=ColourScorer(), trials=2, n_object=4,
                   n_background=4)
class Whole:
    settings, text, references = pl.settings, pl.text, []
    def label(self, image):
        r = pl.label(image)
        r.instances = None
        return r
label_folder(Whole(), sys.argv[1], sys.argv[2], progress=False)
'''

@pytest.mark.parametrize('wait_rows', [1, 3])
def test_killed_process_loses_only_the_image_in_flight(tmp_path, wait_rows):
    scene_folder(tmp_path/'imgs', SIZES + SIZES, seed=21)
    out = tmp_path/'out'
    proc = subprocess.Popen([sys.executable, '-c', KILL_SCRIPT, str(tmp_path/'imgs'), str(out)],
                            env=checkout_env())
    t0 = time.time()
    while time.time() - t0 < 60 and len(read_manifest(out/'manifest.jsonl')) < wait_rows: time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rows = read_manifest(out/'manifest.jsonl')
    assert wait_rows <= len(rows) < 10
    assert all((out/'masks'/f"{Path(r['file']).stem}.png").exists() for r in rows if r['status'] == 'ok')
    n = label_folder(_labeler(), tmp_path/'imgs', out, progress=False)
    assert n['skipped'] == len(rows) and n['ok'] + n['skipped'] == 10 and _no_parts(out)
    label_folder(_labeler(), tmp_path/'imgs', tmp_path/'clean', progress=False)
    assert {k: v[0] for k, v in _snapshot(out).items()} == {k: v[0] for k, v in _snapshot(tmp_path/'clean').items()}

# ------------------------------------------------------------ a trained model through the one runner (issue 21, item 3)
from segwl.folder import run_folder
from segwl.predict import ModelLabeller, PredictSettings
from segwl.protocols import Labeller, LabelResult

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from segwl.finetune import TrainSettings, train, synthetic_dataset, load_model
    d = tmp_path_factory.mktemp('model')
    imgs, msks = synthetic_dataset(d/'syn', n=4)
    train(imgs, msks, d/'model', TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2, pretrained=False,
                                               device='cpu', val_fraction=0), progress=False, log=lambda *a: None)
    return load_model(d/'model', 'cpu'), imgs

def test_a_model_labeller_is_a_labeller(trained):
    "segwl.predict.ModelLabeller: a trained model as a `Labeller` (no text, no references, its predict settings)."
    model, imgs = trained
    lab = ModelLabeller(model)
    image = np.asarray(Image.open(imgs/'im0.png').convert('RGB'))
    res = lab.label(image)
    assert isinstance(lab, Labeller) and isinstance(res, LabelResult)
    assert (lab.text, lab.references, lab.settings) == (None, [], PredictSettings(model.info['threshold'], 32))
    assert ((res.mask == model.predict(image)).all()
            and (res.present, res.instances, res.text_score) == (True, None, None))

def test_a_trained_model_runs_through_the_one_runner_with_one_resume_rule(tmp_path, trained):
    from segwl.predict import predict_folder, predict_config, PREDICT_KEYS
    model, imgs = trained
    rows = predict_folder(model, imgs, tmp_path/'old', progress=False)          # segwl predict
    assert [r['file'] for r in rows] == [f'im{i}.png' for i in range(4)] and {r['status'] for r in rows} == {'ok'}
    run = lambda out, **kw: run_folder(ModelLabeller(model), imgs, out, progress=False, resume_keys=PREDICT_KEYS,
                                       what='predict', **({'config': predict_config(model, imgs)} | kw))
    assert run(tmp_path/'new') == dict(ok=4, absent=0, error=0, skipped=0, total=4)
    new = {r['file']: r for r in read_manifest(tmp_path/'new'/'manifest.jsonl')}
    for r in rows:                                                     # the same masks, bit for bit, the same scores
        stem = Path(r['file']).stem
        assert ((tmp_path/'new'/'masks'/f'{stem}.png').read_bytes()
                == (tmp_path/'old'/'masks'/f'{stem}.png').read_bytes())
        assert new[r['file']]['score'] == r['score'] and new[r['file']]['status'] == 'ok'
    cfg = json.loads((tmp_path/'old'/'config.json').read_text())
    assert cfg['settings'] == dict(threshold=model.info['threshold'], input_size=32) and cfg['text'] is None
    assert {k: cfg[k] for k in PREDICT_KEYS} == {k: predict_config(model, imgs)[k] for k in PREDICT_KEYS}
    old = {k: cfg[k] for k in ('model', 'checkpoint_sha256', 'threshold', 'input_size', 'images')}
    (tmp_path/'old'/'config.json').write_text(json.dumps(old))          # the config an older segwl predict wrote
    assert run(tmp_path/'old') == dict(ok=0, absent=0, error=0, skipped=4, total=4)      # an old folder resumes
    assert predict_folder(model, imgs, tmp_path/'old', progress=False) == rows            # and so does predict
    other = predict_config(model, imgs) | dict(checkpoint_sha256='0' * 64)
    with pytest.raises(SegwlError, match='checkpoint_sha256 differ.*--no-resume'): run(tmp_path/'old', config=other)
    assert run(tmp_path/'old', config=other, resume=False)['ok'] == 4                   # starting over, asked for
    with pytest.raises(SegwlError, match='checkpoint_sha256 differ.*--no-resume'):     # the model changed: refused
        predict_folder(model, imgs, tmp_path/'old', progress=False)
    assert ([r['status'] for r in predict_folder(model, imgs, tmp_path/'old', progress=False, resume=False)]
            == ['ok'] * 4)

def test_the_ray_path_plugs_into_the_one_runner(tmp_path):
    "The Ray engine's pieces (workers' results, `write_result`), run in this process, through `run_folder`: the same."
    from functools import partial
    from segwl.engine import LabelerSpec, in_process, write_result
    from segwl.testing import concept_scene
    (tmp_path/'imgs').mkdir()
    for n in range(3): Image.fromarray(concept_scene((60, 80), n, seed=40 + n)[0]).save(tmp_path/'imgs'/f's{n}.png')
    spec = LabelerSpec([synthetic_scene((60, 90), seed=101)], None, method='canvas', segmenter='colour-concept')
    here = label_folder(spec.build(), tmp_path/'imgs', tmp_path/'here', progress=False)
    pool = run_folder(spec, tmp_path/'imgs', tmp_path/'pool', progress=False,
                      results=partial(in_process, build=spec.build), write=write_result)
    assert here == pool == dict(ok=2, absent=1, error=0, skipped=0, total=3)
    for sub in ('masks', 'instances'):
        a, b = sorted((tmp_path/'here'/sub).iterdir()), sorted((tmp_path/'pool'/sub).iterdir())
        assert ([p.name for p in a] == [p.name for p in b]
                and all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b)))

def test_one_shrink_for_the_seed_and_the_canvas():
    "The working copy of a target is made by one function (segwl.seed.working_copy), which the canvas method calls."
    import segwl.canvas, segwl.seed
    from segwl.seed import working_copy
    big, small = np.zeros((3000, 1500, 3), np.uint8), np.zeros((300, 200, 3), np.uint8)
    work, shrunk = working_copy(big, 1024)
    assert (work.shape, shrunk) == ((1024, 512, 3), True)
    assert working_copy(small, 1024)[0] is small and working_copy(small, 1024)[1] is False
    assert segwl.canvas.working_copy is segwl.seed.working_copy and not hasattr(segwl.canvas, '_shrunk')
