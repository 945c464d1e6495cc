"Several targets on one canvas (issue 24): known answers with the colour stand-ins, for the seed and canvas methods."
import math
import numpy as np
import pytest
import torch
from segwl.canvas import CanvasLabeller, CanvasSettings
from segwl.data import SegwlError
from segwl.protocols import label_many, PackingLabeller
from segwl.seed import SeedLabeller, SeedSettings
from segwl.stitch import PackedLayout, INPUT_SIZES
from segwl.testing import ColourSegmenter, ColourScorer, ColourConcept, synthetic_scene, concept_scene
from conftest import same_up_to_edge

torch.set_num_threads(1)
POISON = (1, 2, 3)                                         # a colour no scene has: the broken stand-ins react to it


def poisoned(hw=(50, 70)) -> np.ndarray: return np.full((*hw, 3), POISON, np.uint8)


class Counting:
    "Wraps a segmenter: counts `set_image` calls and keeps the canvases' shapes (the encoder passes)."
    def __init__(self, seg): self.seg, self.shapes = seg, []
    def set_image(self, image):
        self.shapes.append(image.shape[:2])
        self.seg.set_image(image)
    def predict(self, *a, **kw): return self.seg.predict(*a, **kw)
    def segment(self, *a, **kw): return self.seg.segment(*a, **kw)


# ---------------------------------------------------------------- the seed method
SEED_SIZES = [(80, 30), (40, 200), (120, 160), (160, 120), (64, 64), (90, 60), (300, 400)]


@pytest.fixture(scope='module')
def seed_scenes():
    return [synthetic_scene(hw, seed=10 + i) for i, hw in enumerate(SEED_SIZES)]


@pytest.fixture(scope='module')
def seed_ref():
    return synthetic_scene((60, 90), seed=1)


def seed_labeller(refs, n=1, seg=None, scorer=None, **kw):
    return SeedLabeller(refs, 'a red ellipse', seg or ColourSegmenter(), scorer or ColourScorer(window=8, stride=4),
                        trials=3, targets_per_canvas=n, **kw)


@pytest.fixture(scope='module')
def seed_alone(seed_ref, seed_scenes):
    "Each scene labelled with `label`, one canvas each: today's answers, exact on these scenes."
    pl = seed_labeller([seed_ref])
    return [pl.label(im) for im, _ in seed_scenes]


def test_seed_alone_is_exact_and_label_is_label_many(seed_ref, seed_scenes, seed_alone):
    for r, (_, truth) in zip(seed_alone, seed_scenes): assert (r.mask == truth).all() and r.present
    res = seed_labeller([seed_ref]).label_many([im for im, _ in seed_scenes])       # N = 1: today's, bit for bit
    for r, a in zip(res, seed_alone):
        assert (r.mask == a.mask).all() and r.candidate_scores == a.candidate_scores and r.best_trial == a.best_trial
        assert r.packing == a.packing and r.packing['grid'] == 'stitch' and r.packing['targets'] == 1


@pytest.mark.parametrize('n', [2, 3, 4])
def test_seed_packed_gives_the_same_masks(seed_ref, seed_scenes, seed_alone, n):
    seg = Counting(ColourSegmenter())
    pl = seed_labeller([seed_ref], n, seg)
    res = pl.label_many([im for im, _ in seed_scenes])
    assert len(seg.shapes) == math.ceil(len(seed_scenes) / n)                     # one encoder pass per canvas
    assert 0.97 * INPUT_SIZES['sam'] <= max(seg.shapes[0]) <= INPUT_SIZES['sam']    # drawn at SAM's input side
    for r, a, (_, truth) in zip(res, seed_alone, seed_scenes):
        assert r.present == a.present and r.score == a.score
        assert same_up_to_edge(r.mask, a.mask, truth)
        assert (r.mask == a.mask).mean() >= 0.99
    grids = [r.packing['grid'] for r in res]
    assert [r.packing['targets'] for r in res] == [min(n, len(res) - k // n * n) for k in range(len(res))]
    assert all(g != 'stitch' for g, r in zip(grids, res) if r.packing['targets'] > 1)
    assert [r.packing['cell'] for r in res[:n]] == list(range(1, n + 1))         # the reference is cell 0


def test_seed_each_reference_gets_its_canvases(seed_ref, seed_scenes):
    "Two references (two looks): one packed canvas per reference, the best answer per target, as alone."
    blue = synthetic_scene((70, 50), colour=(40, 60, 210), seed=2)
    alone = seed_labeller([blue, seed_ref])
    seg = Counting(ColourSegmenter())
    res = seed_labeller([blue, seed_ref], 3, seg).label_many([im for im, _ in seed_scenes])
    assert len(seg.shapes) == 2 * math.ceil(len(seed_scenes) / 3)
    for r, (im, truth) in zip(res, seed_scenes):
        a = alone.label(im)
        assert same_up_to_edge(r.mask, a.mask, truth) and r.best_trial // 3 == a.best_trial // 3 == 1


def test_seed_gated_targets_take_no_cell(seed_ref, seed_scenes):
    "Targets the text gate calls absent are answered before any canvas: the others fill the canvases."
    empty = [np.full((*hw, 3), 128, np.uint8) for hw in [(90, 70), (50, 120)]]           # nothing red at all
    images = [empty[0], seed_scenes[0][0], seed_scenes[1][0], empty[1], seed_scenes[2][0]]
    seg = Counting(ColourSegmenter())
    res = seed_labeller([seed_ref], 3, seg, min_text_score=0.01).label_many(images)
    assert [r.present for r in res] == [False, True, True, False, True]
    assert len(seg.shapes) == 1                                                    # three live targets, one canvas
    assert [r.packing for r in res][0::3] == [None, None] and not res[0].mask.any()
    assert {r.packing['targets'] for r in res if r.present} == {3}


def test_seed_a_broken_target_leaves_its_mates_labelled(seed_ref, seed_scenes, seed_alone):
    class Touchy(ColourScorer):
        def similarity_map(self, image, text):
            if (image == POISON).all(-1).mean() > 0.5: raise RuntimeError("the scorer broke on this one")
            return super().similarity_map(image, text)
    images = [im for im, _ in seed_scenes[:4]]
    images[1:1] = [np.zeros((5, 40, 3), np.uint8)]                # too small to label
    images[3:3] = [poisoned()]                                    # its own step (the text map) raises
    res = seed_labeller([seed_ref], 3, scorer=Touchy(window=8, stride=4)).label_many(images)
    assert isinstance(res[1], SegwlError) and 'too small' in str(res[1])
    assert isinstance(res[3], RuntimeError) and 'scorer broke' in str(res[3])
    for r, k, n in zip([res[0], res[2], res[4], res[5]], range(4), (3, 3, 3, 1)):   # the failed take no cell
        assert same_up_to_edge(r.mask, seed_alone[k].mask, seed_scenes[k][1]) and r.packing['targets'] == n
    with pytest.raises(SegwlError, match='too small'): seed_labeller([seed_ref], 3).label(images[1])


def test_seed_a_target_that_breaks_the_encoder_fails_alone(seed_ref, seed_scenes, seed_alone):
    "The shared pass raises: the canvas is retried one target a canvas, and only the culprit fails."
    class Fragile(ColourSegmenter):
        def set_image(self, image):
            if (image == POISON).all(-1).sum() > 100: raise MemoryError("the encoder broke on this canvas")
            super().set_image(image)
    seg = Fragile()
    images = [seed_scenes[0][0], poisoned(), seed_scenes[1][0]]
    res = seed_labeller([seed_ref], 3, seg).label_many(images)
    assert isinstance(res[1], MemoryError)
    for r, k in ((res[0], 0), (res[2], 1)):
        assert (r.mask == seed_alone[k].mask).all() and r.packing['targets'] == 1   # alone: today's, exactly
    assert seg.set_image_calls == 2                                                  # the two that went alone


# ---------------------------------------------------------------- the canvas method
CANVAS_SCENES = [((180, 240), 2), ((240, 180), 0), ((120, 300), 1), ((200, 200), 3), ((150, 100), 1), ((90, 160), 0),
                 ((300, 220), 2)]


@pytest.fixture(scope='module')
def canvas_scenes():
    return [concept_scene(hw, n, seed=20 + i) for i, (hw, n) in enumerate(CANVAS_SCENES)]


@pytest.fixture(scope='module')
def canvas_refs():
    return [concept_scene((120, 200), 1, seed=1)[:2], concept_scene((260, 90), 1, seed=2)[:2]]


@pytest.fixture(scope='module')
def canvas_alone(canvas_refs, canvas_scenes):
    lab = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept())
    return [lab.label(im) for im, _, _ in canvas_scenes]


def test_canvas_alone_is_exact_and_label_is_label_many(canvas_refs, canvas_scenes, canvas_alone):
    for r, (_, truth, parts) in zip(canvas_alone, canvas_scenes):
        assert (r.mask == truth).all() and len(r.instances) == len(parts) and r.present == bool(parts)
    res = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept()).label_many([s[0] for s in canvas_scenes])
    for r, a in zip(res, canvas_alone):
        assert (r.mask == a.mask).all() and r.candidate_scores == a.candidate_scores and r.packing == a.packing
        assert r.layout == a.layout and r.packing['grid'] in ('left', 'top')     # alone: today's CanvasLayout


@pytest.mark.parametrize('n', [2, 3, 4])
def test_canvas_packed_gives_the_same_instances(canvas_refs, canvas_scenes, canvas_alone, n):
    seg = Counting(ColourConcept())
    res = CanvasLabeller(canvas_refs, 'a red ellipse', seg, targets_per_canvas=n).label_many(
        [s[0] for s in canvas_scenes])
    assert len(seg.shapes) == math.ceil(len(canvas_scenes) / n) == seg.seg.segment_calls
    assert 0.97 * INPUT_SIZES['sam3'] <= max(seg.shapes[0]) <= INPUT_SIZES['sam3']
    for r, a, (_, truth, parts) in zip(res, canvas_alone, canvas_scenes):
        assert (r.present, len(r.instances)) == (a.present, len(a.instances)) == (bool(parts), len(parts))
        assert same_up_to_edge(r.mask, a.mask, truth)
        for x in r.instances:                               # each instance is one of the target's own objects
            assert max(same_up_to_edge(x.mask, p, p) for p in parts)
    assert isinstance(res[0].layout, PackedLayout) and res[0].packing == res[0].layout.describe(0)


def test_canvas_an_instance_crossing_cells_is_kept_where_it_mostly_lies(canvas_refs):
    "A stand-in answers masks drawn on the packed canvas: each goes, cut, to the target holding most of it, or none."
    shapes = [(100, 140), (120, 90), (80, 160)]
    lay = PackedLayout([im.shape for im, _ in canvas_refs], shapes, INPUT_SIZES['sam3'], 'auto')
    t0, t1, t2 = lay.targets
    def block(cell, rows, cols):
        m = np.zeros(lay.hw, bool)
        m[cell.top + rows[0]:cell.top + rows[1], cell.left + cols[0]:cell.left + cols[1]] = True
        return m
    h, w = t1.placed_hw
    crossing = block(t1, (0, h // 2), (0, w // 3))                # mostly in target 1 ...
    crossing |= block(t0, (0, 8), (0, 8))                           # ... a bit in target 0
    in_ref = block(lay.references[0], (0, 10), (0, 10))
    spread = block(t2, (0, 10), (0, 10)) | block(t0, (20, 30), (20, 30)) | in_ref   # a third in each: no owner
    class Drawn(ColourConcept):
        def segment(self, text, boxes, box_labels):
            self.segment_calls += 1
            return np.stack([crossing, in_ref, spread]), np.array([0.9, 0.95, 0.8], np.float32)
    images = [np.full((*hw, 3), 90, np.uint8) for hw in shapes]
    res = CanvasLabeller(canvas_refs, None, Drawn(), targets_per_canvas=3).label_many(images)
    assert [len(r.instances) for r in res] == [0, 1, 0]
    assert (res[1].instances[0].mask == lay.target_mask(1, crossing)).all() and res[1].score == np.float32(0.9)
    assert res[0].score == 0.0 and not res[0].present and not res[2].present


def test_canvas_a_broken_target_leaves_its_mates_labelled(canvas_refs, canvas_scenes, canvas_alone):
    class Fragile(ColourConcept):
        def set_image(self, image):
            if (image == POISON).all(-1).sum() > 100: raise MemoryError("the encoder broke on this canvas")
            super().set_image(image)
    seg = Fragile()
    images = [canvas_scenes[0][0], np.zeros((40, 3, 3), np.uint8), poisoned(), canvas_scenes[3][0],
              np.zeros((40, 30), np.uint8), canvas_scenes[4][0]]
    res = CanvasLabeller(canvas_refs, 'a red ellipse', seg, targets_per_canvas=3).label_many(images)
    assert isinstance(res[1], SegwlError) and 'too small' in str(res[1]) and 'HxWx3' in str(res[4])
    assert isinstance(res[2], MemoryError)
    for r, k in ((res[0], 0), (res[3], 3), (res[5], 4)):
        assert (r.mask == canvas_alone[k].mask).all() and len(r.instances) == len(canvas_alone[k].instances)
    assert seg.set_image_calls == 3                       # the canvas of 3 broke: three alone, one of them broke too


# ---------------------------------------------------------------- what every labeller shares
def test_settings_protocol_and_order(seed_ref, seed_scenes, canvas_refs):
    for cls in (SeedSettings, CanvasSettings):
        assert cls().targets_per_canvas == 1 and cls.from_dict({'targets_per_canvas': 8}).targets_per_canvas == 8
        for bad in (0, 9):
            with pytest.raises(SegwlError, match=f'targets_per_canvas={bad}'): cls(targets_per_canvas=bad)
    pl = seed_labeller([seed_ref], 3)
    assert isinstance(pl, PackingLabeller) and isinstance(CanvasLabeller(canvas_refs, None, ColourConcept()),
                                                          PackingLabeller)
    assert pl.label_many([]) == [] and label_many(pl, iter([])) == []
    ims = [seed_scenes[k][0] for k in (3, 0, 2)]
    res = label_many(pl, ims)                                     # order kept, whatever the cells
    assert [r.mask.shape for r in res] == [im.shape[:2] for im in ims]


def test_shared_steps_are_billed_in_parts(seed_ref, seed_scenes):
    import time
    class Slow(ColourSegmenter):
        def set_image(self, image):
            time.sleep(0.3)
            super().set_image(image)
    res = seed_labeller([seed_ref], 3, Slow()).label_many([im for im, _ in seed_scenes[:3]])
    parts = [r.timings['set_image'] for r in res]
    assert max(parts) - min(parts) < 1e-9 and 0.3 <= sum(parts) < 0.4
    assert all(r.timings['total'] >= r.timings['set_image'] + r.timings['predict'] for r in res)


# ---------------------------------------------------------------- the setting reaches config.json, by flag and job
def test_cli_flag_and_job_parameter_reach_config_json(tmp_path):
    import json
    from PIL import Image
    from conftest import segwl
    from segwl.testing import scene_folder
    scene_folder(tmp_path/'imgs', [(60, 80), (80, 60), (50, 120)])
    ref, ref_mask = synthetic_scene((60, 90), seed=1)
    Image.fromarray(ref).save(tmp_path/'r.png')
    Image.fromarray(ref_mask).save(tmp_path/'m.png')
    r = segwl('label', '--help')
    assert '--targets-per-canvas N' in r.stdout and 'one encoder pass' in r.stdout
    segwl('label', '--reference', 'r.png', 'm.png', '--text', 'red', '--images', 'imgs', '--out', 'out',
          '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--targets-per-canvas', '3', '--no-progress',
          cwd=tmp_path, check_rc=0)
    assert json.loads((tmp_path/'out'/'config.json').read_text())['settings']['targets_per_canvas'] == 3
    segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'method', 'canvas', '-p', 'segmenter',
          'colour-concept', '-p', 'reference_image', 'r.png', '-p', 'reference_mask', 'm.png', '-p', 'images',
          'imgs', '-p', 'out', 'job', '-p', 'train', 'False', '-p', 'device', 'cpu', '-p', 'targets_per_canvas', '2',
          cwd=tmp_path, check_rc=0)
    cfg = json.loads((tmp_path/'job'/'labels'/'config.json').read_text())
    assert cfg['settings']['targets_per_canvas'] == 2
    r = segwl('label', '--reference', 'r.png', 'm.png', '--text', 'red', '--images', 'imgs', '--out', 'bad',
              '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--targets-per-canvas', '9', cwd=tmp_path)
    assert r.returncode == 2 and 'targets_per_canvas=9' in r.stderr


# ---------------------------------------------------------------- several classes, several targets a canvas
class Sized300(ColourConcept):
    "The colour concept stand-in, saying its model sees a 300-pixel square: 100 x 150 images keep their own size."
    input_size = 300


class SizedSeg300(ColourSegmenter):
    input_size = 300


HW = (100, 150)       # with 300: alone (stitch or strip) and packed (2 x 2, 3 x 2), every image sits at its own size


def sized_classes():
    from segwl.testing import classes_scene, CLASS_COLOURS
    refs = {n: classes_scene(HW, [int(j == i) for j in range(3)], seed=40 + i)[:2] for i, n in enumerate(CLASS_COLOURS)}
    return [(n, f"a {n} thing", [(im, lm > 0)]) for n, (im, lm) in refs.items()]


@pytest.mark.parametrize('method', ['canvas', 'seed'])
def test_multiclass_packed_gives_the_same_label_maps(method):
    "N = 3 gives the label maps of N = 1, pixel for pixel, with a third of the encoder passes; a bad mate fails alone."
    from segwl.multiclass import MulticlassLabeller
    from segwl.testing import NamedColourScorer, classes_scene
    # the seed method's text gate answers an absent class before any canvas, so its canvases would hold other mates
    # in other grids: every class is present here, so each canvas holds three
    counts = ([(0, 0, 0), (1, 0, 0), (2, 1, 0), (0, 3, 1), (1, 2, 3), (3, 1, 0)] if method == 'canvas' else
              [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (1, 1, 1), (2, 1, 1)])
    scenes = [classes_scene(HW, c, seed=i) for i, c in enumerate(counts)]
    def labeller(n):
        if method == 'canvas':
            seg = Sized300()
            return seg, MulticlassLabeller(sized_classes(), seg, method='canvas',
                                           settings=CanvasSettings(targets_per_canvas=n))
        seg = SizedSeg300()
        return seg, MulticlassLabeller(sized_classes(), seg, NamedColourScorer(),
                                       SeedSettings(trials=2, min_text_score=1e-3, targets_per_canvas=n))
    calls, res = {}, {}
    for n in (1, 3):
        seg, lab = labeller(n)
        assert isinstance(lab, PackingLabeller) and lab.targets_per_canvas == n
        res[n] = label_many(lab, [im for im, _, _ in scenes])
        calls[n] = seg.set_image_calls
    for a, b, (_, truth, _) in zip(res[1], res[3], scenes):
        assert (a.label_map == truth).all() and (b.label_map == truth).all()
        # the statuses; not the scores: N = 1 shrinks the three references into a strip, so the exemplars' colours
        # (the stand-in scores by them) move a little
        assert {k: v['status'] for k, v in a.classes.items()} == {k: v['status'] for k, v in b.classes.items()}
        if method == 'canvas': assert sorted((i.category_id, i.area) for i in a.instances) == \
            sorted((i.category_id, i.area) for i in b.instances)
    assert calls == ({1: 6, 3: 2} if method == 'canvas' else {1: 18, 3: 6})      # canvas: one pass for every class
    assert {r.packing['targets'] for r in res[3]} == {3} and {r.packing['targets'] for r in res[1]} == {1}
    seg, lab = labeller(3)
    out = lab.label_many([scenes[0][0], np.zeros((5, 40, 3), np.uint8), scenes[1][0], scenes[2][0]])
    assert isinstance(out[1], SegwlError) and 'too small' in str(out[1])
    assert [(r.label_map == scenes[k][1]).all() for r, k in zip(out[::2] + out[3:], (0, 1, 2))]
    assert [r.packing['targets'] for r in (out[0], out[2], out[3])] == [3, 3, 3]


# ---------------------------------------------------------------- the folder runner packs the images to do
def truncated_png(path, hw=(100, 150)):
    "A PNG cut in half: its header reads, its pixels do not."
    import io
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(concept_scene(hw, 1, seed=99)[0]).save(b, format='png')
    path.write_bytes(b.getvalue()[:len(b.getvalue()) // 2])


def canvas_ref(): return concept_scene(HW, 1, seed=1)[:2]


def packed_canvas(n, seg=None): return CanvasLabeller([canvas_ref()], 'a red ellipse', seg or Sized300(),
                                                      targets_per_canvas=n)


@pytest.fixture(scope='module')
def runner_folder(tmp_path_factory):
    "Seven scenes of 0 to 2 red ellipses, the references' shape; and each labelled one a canvas."
    from PIL import Image
    from segwl.folder import label_folder
    d = tmp_path_factory.mktemp('runner')
    (d/'imgs').mkdir()
    for i in range(7): Image.fromarray(concept_scene(HW, i % 3, seed=30 + i)[0]).save(d/'imgs'/f"s{i}.png")
    assert label_folder(packed_canvas(1), d/'imgs', d/'one', progress=False) == dict(ok=4, absent=3, error=0,
                                                                                    skipped=0, total=7)
    return d


def rows_without(out, *keys) -> dict:
    from segwl.folder import read_manifest
    rows = read_manifest(out/'manifest.jsonl')
    assert len(rows) == len({r['file'] for r in rows})                   # one row per image
    return {r['file']: {k: v for k, v in r.items() if k not in ('seconds', *keys)} for r in rows}


def same_files(a, b):
    for sub in ('masks', 'instances'):
        names = sorted(p.name for p in (a/sub).glob('*'))
        assert names == sorted(p.name for p in (b/sub).glob('*')), sub
        for n in names: assert (a/sub/n).read_bytes() == (b/sub/n).read_bytes(), f"{sub}/{n}"


def test_runner_packed_writes_what_one_a_canvas_writes(runner_folder, tmp_path):
    from segwl.folder import label_folder
    seg = Sized300()
    n = label_folder(packed_canvas(3, seg), runner_folder/'imgs', tmp_path/'three', progress=False)
    assert n == dict(ok=4, absent=3, error=0, skipped=0, total=7) and seg.set_image_calls == 3    # 3 + 3 + 1
    assert rows_without(tmp_path/'three', 'packing') == rows_without(runner_folder/'one')
    same_files(runner_folder/'one', tmp_path/'three')
    packing = {f: r['packing'] for f, r in rows_without(tmp_path/'three').items()}
    assert [(p['grid'], p['cell'], p['targets']) for _, p in sorted(packing.items())] == \
        [('2x2', 1, 3), ('2x2', 2, 3), ('2x2', 3, 3)] * 2 + [('top', 1, 1)]
    assert all('packing' not in r for r in rows_without(runner_folder/'one').values())    # one a canvas: as ever


def test_runner_a_broken_image_fails_alone(runner_folder, tmp_path):
    "A truncated file and an image too small to label among canvas mates: their own error rows, the mates labelled."
    import shutil
    from PIL import Image
    from segwl.folder import label_folder
    d = tmp_path/'imgs'
    shutil.copytree(runner_folder/'imgs', d)
    truncated_png(d/'s1a.png')
    Image.fromarray(np.full((5, 40, 3), 90, np.uint8)).save(d/'s3a.png')
    seg = Sized300()
    n = label_folder(packed_canvas(3, seg), d, tmp_path/'out', progress=False)
    assert n == dict(ok=4, absent=3, error=2, skipped=0, total=9)
    rows = rows_without(tmp_path/'out')
    assert rows['s1a.png']['status'] == 'error' and 's1a.png' in rows['s1a.png']['error']
    assert rows['s3a.png']['status'] == 'error' and 'too small' in rows['s3a.png']['error']
    # groups s0 s1 s1a | s2 s3 s3a | s4 s5 s6: the broken take no cell
    assert [rows[f'{s}.png']['packing']['targets'] for s in ('s0', 's1', 's2', 's3', 's4', 's5', 's6')] == \
        [2, 2, 2, 2, 3, 3, 3]
    one = rows_without(runner_folder/'one')
    for f, r in one.items():
        assert {k: v for k, v in rows[f].items() if k not in ('packing', 'score')} == \
            {k: v for k, v in r.items() if k != 'score'}
    assert sorted(p.name for p in (tmp_path/'out'/'masks').iterdir()) == sorted(one)
    assert seg.set_image_calls == 3


def test_runner_limit_counts_images_not_canvases(runner_folder, tmp_path):
    from segwl.folder import label_folder
    seg = Sized300()
    n = label_folder(packed_canvas(3, seg), runner_folder/'imgs', tmp_path/'out', progress=False, limit=4)
    assert n['ok'] + n['absent'] == 4 and n['total'] == 4 and seg.set_image_calls == 2        # 3 + 1
    assert sorted(rows_without(tmp_path/'out')) == ['s0.png', 's1.png', 's2.png', 's3.png']
    n = label_folder(packed_canvas(3, seg), runner_folder/'imgs', tmp_path/'out', progress=False, limit=4)
    assert (n['skipped'], n['ok'] + n['absent'], seg.set_image_calls) == (4, 3, 3)              # the rest: one canvas
    assert rows_without(tmp_path/'out', 'packing') == rows_without(runner_folder/'one')


KILLED = '''
import os, sys
from pathlib import Path
import segwl.folder as F
from segwl.canvas import CanvasLabeller
from segwl.testing import ColourConcept, concept_scene
class Sized300(ColourConcept): input_size = 300
lab = CanvasLabeller([concept_scene((100, 150), 1, seed=1)[:2]], 'a red ellipse', Sized300(), targets_per_canvas=3)
real, written = F.save_result_mask, []
def dying(res, path):
    if len(written) == int(sys.argv[3]): os._exit(3)       # killed while writing the canvas's next image
    written.append(path)
    return real(res, path)
F.save_result_mask = dying
F.label_folder(lab, sys.argv[1], sys.argv[2], progress=False)
'''


@pytest.mark.slow
def test_runner_killed_mid_canvas_resumes_each_image_once(runner_folder, tmp_path):
    "Killed after 4 images (the second canvas's first written): 4 rows; the rerun labels the other 3, once each."
    import subprocess, sys
    from segwl.folder import label_folder
    r = subprocess.run([sys.executable, '-c', KILLED, str(runner_folder/'imgs'), str(tmp_path/'out'), '4'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    assert sorted(rows_without(tmp_path/'out')) == ['s0.png', 's1.png', 's2.png', 's3.png']
    seg = Sized300()
    n = label_folder(packed_canvas(3, seg), runner_folder/'imgs', tmp_path/'out', progress=False)
    assert (n['skipped'], n['ok'] + n['absent'], seg.set_image_calls) == (4, 3, 1)   # s4 s5 s6: one canvas
    assert rows_without(tmp_path/'out', 'packing') == rows_without(runner_folder/'one')
    same_files(runner_folder/'one', tmp_path/'out')


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore::DeprecationWarning:ray.data.context')   # Ray Data's own
def test_ray_engine_packs_as_the_local_engine(tmp_path):
    "On Ray, a worker labels a canvas group of 2 at a time: the same rows (packing included) and files as locally."
    pytest.importorskip('ray.data', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    from PIL import Image
    from segwl.engine import label_folder_ray, ray_session, EngineError
    from segwl.folder import label_folder
    from segwl.recipe import LabellerSpec
    d = tmp_path/'imgs'
    d.mkdir()
    for i in range(5): Image.fromarray(concept_scene((96, 128), i % 3, seed=50 + i)[0]).save(d/f"c{i}.png")
    truncated_png(d/'c1a.png')
    spec = LabellerSpec([concept_scene((90, 120), 1, seed=1)[:2]], None, dict(targets_per_canvas=2), 'colour-concept',
                        method='canvas', device='cpu')
    local = label_folder(spec.build(), d, tmp_path/'local', progress=False, config=dict(models=spec.models()))
    try:
        with ray_session(None, workers=2):
            ray = label_folder_ray(spec, d, tmp_path/'ray', workers=2, progress=False)
    except EngineError as e: pytest.skip(f"a local Ray instance could not start on this machine: {e}")
    assert ray == local and local['error'] == 1
    assert rows_without(tmp_path/'ray') == rows_without(tmp_path/'local')
    same_files(tmp_path/'local', tmp_path/'ray')
    packing = {f: r.get('packing', {}).get('targets') for f, r in rows_without(tmp_path/'ray').items()}
    assert packing == {'c0.png': 2, 'c1.png': 2, 'c1a.png': None, 'c2.png': 1, 'c3.png': 2, 'c4.png': 2}


def test_runner_packs_several_classes(tmp_path):
    "A multi-class labeller through the runner, 3 a canvas: the label maps, classes.json and class rows of 1 a canvas."
    from PIL import Image
    from segwl.folder import label_folder
    from segwl.multiclass import MulticlassLabeller
    from segwl.testing import classes_scene
    (tmp_path/'imgs').mkdir()
    for i, c in enumerate([(0, 0, 0), (1, 0, 0), (2, 1, 0), (0, 3, 1), (1, 2, 3), (3, 1, 0)]):
        Image.fromarray(classes_scene(HW, c, seed=i)[0]).save(tmp_path/'imgs'/f"m{i}.png")
    segs = {}
    for n in (1, 3):
        segs[n] = Sized300()
        lab = MulticlassLabeller(sized_classes(), segs[n], method='canvas',
                                 settings=CanvasSettings(targets_per_canvas=n))
        assert label_folder(lab, tmp_path/'imgs', tmp_path/f'out{n}', progress=False) == dict(ok=5, absent=1, error=0,
                                                                                             skipped=0, total=6)
    assert (segs[1].set_image_calls, segs[3].set_image_calls) == (6, 2)
    a, b = rows_without(tmp_path/'out1'), rows_without(tmp_path/'out3', 'packing')
    assert {f: (r['status'], {k: v['status'] for k, v in r['classes'].items()}) for f, r in a.items()} == \
        {f: (r['status'], {k: v['status'] for k, v in r['classes'].items()}) for f, r in b.items()}
    for f in a: assert (tmp_path/'out1'/'masks'/f).read_bytes() == (tmp_path/'out3'/'masks'/f).read_bytes()
    assert (tmp_path/'out1'/'classes.json').read_bytes() == (tmp_path/'out3'/'classes.json').read_bytes()
    assert [r['packing']['targets'] for _, r in sorted(rows_without(tmp_path/'out3').items())] == [3] * 6
