"""Several canvases through the encoder in one call (issue 24, `--batch-size`).

Fidelity: with tiny random-initialised real architectures (SAM 1, SAM 2.1, SAM 3), embedding several different images
in one batch and then `use(state)` + `predict`/`segment` gives what `set_image` one image at a time gives. SAM 2.1 and
SAM 3 agree bit for bit here; SAM 1's ViT gives features that differ by float rounding (~1e-7: a batched matmul may
sum in another order), which can move a pixel whose logit is ~0 and a score by ~1e-8, so masks are compared by IoU
(>= 0.999) and scores within 1e-5.

Known answers with the colour stand-ins: batch sizes 1, 2, 3 with 1 and 3 targets a canvas give the same masks,
instances, verdicts and packing; the encoder is called ceil(canvases / batch_size) times; a broken image fails alone.
"""
import math
import numpy as np
import pytest
from segwl.backends.sam import SamSegmenter
from segwl.backends.sam2 import Sam2Segmenter
from segwl.backends.sam3 import Sam3Segmenter
from segwl.canvas import CanvasLabeller, CanvasSettings
from segwl.data import SegwlError
from segwl.protocols import BatchEncoding, BatchingLabeller, PackingLabeller, group_size, label_many
from segwl.seed import SeedLabeller, SeedSettings
from segwl.testing import ColourSegmenter, ColourScorer, ColourConcept, synthetic_scene, concept_scene

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread

POISON = (1, 2, 3)                                          # a colour no scene has: the fragile stand-ins react to it
IMAGES = [np.random.default_rng(k).integers(0, 256, hw + (3,), dtype=np.uint8)
          for k, hw in enumerate([(83, 131), (200, 60), (64, 64)])]      # different images, different shapes




def iou(a, b) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def assert_same(got, want):
    "Masks (K, H, W) and scores (K,) of a batch against one image at a time: IoU >= 0.999 each, scores within 1e-5."
    (gm, gs), (wm, ws) = got, want
    assert gm.shape == wm.shape and gs.shape == ws.shape
    assert np.abs(gs - ws).max(initial=0) <= 1e-5
    assert all(iou(g, w) >= 0.999 for g, w in zip(gm, wm))


# ---------------------------------------------------------------- fidelity: the real architectures, tiny and random
def points_of(im):
    h, w = im.shape[:2]
    return np.array([[w / 3, h / 2], [w - 1, 0], [w / 2, h - 1]]), np.array([1, 0, 1])


@pytest.mark.parametrize('cls', [SamSegmenter, Sam2Segmenter], ids=['sam1', 'sam2.1'])
@pytest.mark.parametrize('n', [2, 3])
def test_promptable_batch_is_set_image_one_at_a_time(cls, n):
    batched, alone = cls.tiny_random(seed=3), cls.tiny_random(seed=3)
    assert isinstance(batched, BatchEncoding)
    states = batched.embed(IMAGES[:n])
    assert len(states) == n
    for im, state in zip(IMAGES[:n], states):
        batched.use(state)
        alone.set_image(im)
        for multimask in (True, False):
            assert_same(batched.predict(*points_of(im), multimask=multimask),
                        alone.predict(*points_of(im), multimask=multimask))
    batched.use(states[0])                                          # any order, any number of times
    alone.set_image(IMAGES[0])
    assert_same(batched.predict(*points_of(IMAGES[0])), alone.predict(*points_of(IMAGES[0])))


def test_sam1_features_differ_by_rounding_only():
    "The batch's features are the single image's up to float rounding (why masks are compared by IoU, not ==)."
    seg = SamSegmenter.tiny_random(seed=3)
    states = seg.embed(IMAGES)
    for im, state in zip(IMAGES, states):
        seg.set_image(im)
        one = seg.predictor.features
        assert state.features.shape == one.shape and state.original_size == im.shape[:2]
        assert state.input_size == seg.predictor.input_size
        assert (state.features - one).abs().max() <= 1e-5 * max(1.0, one.abs().max().item())


def test_sam3_batch_is_set_image_one_at_a_time():
    batched, alone = Sam3Segmenter.tiny_random(seed=3), Sam3Segmenter.tiny_random(seed=3)
    assert isinstance(batched, BatchEncoding)
    states = batched.embed(IMAGES)
    for im, state in zip(IMAGES, states):
        h, w = im.shape[:2]
        batched.use(state)
        alone.set_image(im)
        for text, boxes, labels in [('a cat', [[w / 8, h / 8, w / 2, h / 2]], [1]),
                                    (None, [[1, 1, w / 3, h / 3], [w / 2, h / 2, w - 1, h - 1]], [1, 0]),
                                    ('a dog', np.zeros((0, 4)), np.zeros(0, int))]:
            assert_same(batched.segment(text, boxes, labels), alone.segment(text, boxes, labels))


@pytest.mark.parametrize('cls', [SamSegmenter, Sam2Segmenter, Sam3Segmenter], ids=['sam1', 'sam2.1', 'sam3'])
def test_one_encoder_call_for_the_batch(cls):
    seg = cls.tiny_random()
    calls = []
    encoder = seg.model.image_encoder if cls is SamSegmenter else seg.model.vision_encoder
    hook = encoder.register_forward_hook(lambda *a: calls.append(a[1][0].shape[0]))
    seg.embed(IMAGES)
    hook.remove()
    assert calls == [3]                                              # one call, a batch of three
    assert seg.embed([]) == []
    with pytest.raises(SegwlError, match='expected a'): seg.use(IMAGES[0])
    with pytest.raises(SegwlError, match='HxWx3'): seg.embed([IMAGES[0], np.zeros((4, 4), np.uint8)])


def test_seed_labeller_with_tiny_sam_batch_is_one_at_a_time():
    "The seed labeller, tiny SAM 1 and CLIP: batch 3 gives batch 1's masks, trials and scores (up to rounding)."
    from segwl.backends.clip import ClipScorer
    ref, ref_mask = synthetic_scene((60, 90), seed=1)
    scenes = [synthetic_scene(hw, seed=10 + i)[0] for i, hw in enumerate([(80, 30), (40, 200), (120, 160), (64, 64)])]
    scorer = ClipScorer.tiny_random()
    one = SeedLabeller(ref, ref_mask, 'a red ellipse', SamSegmenter.tiny_random(seed=3), scorer, trials=3)
    many = SeedLabeller(ref, ref_mask, 'a red ellipse', SamSegmenter.tiny_random(seed=3), scorer, trials=3,
                        batch_size=3)
    for r, a in zip(many.label_many(scenes), one.label_many(scenes)):
        assert r.best_trial == a.best_trial and abs(r.score - a.score) <= 1e-5 and iou(r.mask, a.mask) >= 0.999
        assert r.packing == a.packing


def test_canvas_labeller_with_tiny_sam3_batch_is_one_at_a_time():
    refs = [concept_scene((120, 200), 1, seed=1)[:2]]
    scenes = [concept_scene(hw, n, seed=20 + n)[0] for n, hw in enumerate([(180, 240), (120, 300), (90, 160)])]
    seg = Sam3Segmenter.tiny_random(seed=3)
    one = CanvasLabeller(refs, 'a red ellipse', seg, min_instance_score=0.0, targets_per_canvas=1)
    many = CanvasLabeller(refs, 'a red ellipse', seg, min_instance_score=0.0, targets_per_canvas=1, batch_size=2)
    for r, a in zip(many.label_many(scenes), one.label_many(scenes)):
        assert len(r.instances) == len(a.instances) and r.present == a.present
        np.testing.assert_allclose(r.candidate_scores, a.candidate_scores, atol=1e-5)
        assert iou(r.mask, a.mask) >= 0.999


# ---------------------------------------------------------------- known answers with the colour stand-ins
SEED_SIZES = [(80, 30), (40, 200), (120, 160), (160, 120), (64, 64), (90, 60), (300, 400)]


@pytest.fixture(scope='module')
def seed_images():
    "Mixed sizes; two with nothing red at all (the text gate says absent before any canvas)."
    ims = [synthetic_scene(hw, seed=10 + i)[0] for i, hw in enumerate(SEED_SIZES)]
    ims[2:2] = [np.full((90, 70, 3), 128, np.uint8)]
    ims[6:6] = [np.full((50, 120, 3), 128, np.uint8)]
    return ims


def seed_labeller(seg, n=1, b=1, refs=None):
    refs = refs or [synthetic_scene((60, 90), seed=1)]
    return SeedLabeller(refs, 'a red ellipse', seg, ColourScorer(window=8, stride=4), trials=3, targets_per_canvas=n,
                        batch_size=b, min_text_score=0.01)


def encoder_calls(seg) -> int: return seg.embed_calls + seg.set_image_calls


@pytest.mark.parametrize('n', [1, 3])
@pytest.mark.parametrize('b', [1, 2, 3])
def test_seed_batches_give_the_same_answers(seed_images, n, b):
    want = seed_labeller(ColourSegmenter(), n).label_many(seed_images)
    seg = ColourSegmenter()
    lab = seed_labeller(seg, n, b)
    assert group_size(lab) == n * b and isinstance(lab, BatchingLabeller)
    got = lab.label_many(seed_images)
    assert [r.present for r in got] == [r.present for r in want] == [True, True, False, True, True, True, False,
                                                                       True, True]
    for r, a in zip(got, want):
        assert (r.mask == a.mask).all() and r.best_trial == a.best_trial
        assert np.array_equal(r.score, a.score, equal_nan=True)                 # absent: nan, in both
        assert r.packing == a.packing and r.candidate_scores == a.candidate_scores
    canvases = math.ceil(7 / n)                                                  # 7 live targets, n a canvas
    assert encoder_calls(seg) == math.ceil(canvases / b)
    assert seg.embed_calls == (0 if b == 1 else canvases // b + (canvases % b > 1))   # a lone last canvas: set_image


def test_seed_batches_per_reference(seed_images):
    "k references: each reference's canvases go through the encoder as batches of their own."
    refs = [synthetic_scene((70, 50), colour=(40, 60, 210), seed=2), synthetic_scene((60, 90), seed=1)]
    want = seed_labeller(ColourSegmenter(), 3, 1, refs).label_many(seed_images)
    seg = ColourSegmenter()
    got = seed_labeller(seg, 3, 3, refs).label_many(seed_images)
    assert (seg.embed_calls, seg.set_image_calls) == (2, 0)                      # 3 canvases a reference, 1 call each
    for r, a in zip(got, want): assert (r.mask == a.mask).all() and r.best_trial == a.best_trial


CANVAS_SCENES = [((180, 240), 2), ((240, 180), 0), ((120, 300), 1), ((200, 200), 3), ((150, 100), 1), ((90, 160), 0),
                 ((300, 220), 2)]


@pytest.fixture(scope='module')
def canvas_scenes():
    return [concept_scene(hw, k, seed=20 + i) for i, (hw, k) in enumerate(CANVAS_SCENES)]


@pytest.fixture(scope='module')
def canvas_refs():
    return [concept_scene((120, 200), 1, seed=1)[:2], concept_scene((260, 90), 1, seed=2)[:2]]


@pytest.mark.parametrize('n', [1, 3])
@pytest.mark.parametrize('b', [1, 2, 3])
def test_canvas_batches_give_the_same_answers(canvas_refs, canvas_scenes, n, b):
    images = [s[0] for s in canvas_scenes]
    want = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept(), targets_per_canvas=n).label_many(images)
    seg = ColourConcept()
    got = CanvasLabeller(canvas_refs, 'a red ellipse', seg, targets_per_canvas=n, batch_size=b).label_many(images)
    for r, a, (_, truth, parts) in zip(got, want, canvas_scenes):
        assert (r.present, len(r.instances)) == (a.present, len(a.instances)) == (bool(parts), len(parts))
        assert (r.mask == a.mask).all() and r.packing == a.packing and r.candidate_scores == a.candidate_scores
        assert all((x.mask == y.mask).all() and x.score == y.score for x, y in zip(r.instances, a.instances))
    canvases = math.ceil(len(images) / n)
    assert encoder_calls(seg) == math.ceil(canvases / b) and seg.segment_calls == canvases


@pytest.mark.parametrize('method', ['canvas', 'seed'])
def test_multiclass_batches_give_the_same_label_maps(method):
    from segwl.multiclass import MulticlassLabeller
    from segwl.testing import NamedColourScorer, classes_scene, CLASS_COLOURS
    refs = {c: classes_scene((100, 150), [int(j == i) for j in range(3)], seed=40 + i)[:2]
            for i, c in enumerate(CLASS_COLOURS)}
    classes = [(c, f"a {c} thing", [(im, lm > 0)]) for c, (im, lm) in refs.items()]
    images = [classes_scene(hw, [1, 1, 0], seed=60 + k)[0] for k, hw in enumerate([(100, 150), (120, 90), (80, 160),
                                                                                    (140, 140), (90, 120)])]
    def run(b):
        seg = ColourConcept() if method == 'canvas' else ColourSegmenter()
        settings = (CanvasSettings(targets_per_canvas=2, batch_size=b) if method == 'canvas' else
                    SeedSettings(trials=2, min_text_score=1e-3, targets_per_canvas=2, batch_size=b))
        lab = MulticlassLabeller(classes, seg, None if method == 'canvas' else NamedColourScorer(), settings=settings,
                                 method=method)
        return lab, seg, lab.label_many(images)
    _, _, want = run(1)
    lab, seg, got = run(3)
    assert group_size(lab) == 6 and lab.batch_size == 3
    for r, a in zip(got, want): assert (r.label_map == a.label_map).all() and r.row_fields == a.row_fields
    calls = 1 if method == 'canvas' else 2      # canvas: 3 canvases, 1 call; seed: 1 a class with a target (the
    # third class is in no image: its text gate says absent before any canvas)
    assert (seg.embed_calls, seg.set_image_calls) == (calls, 0)


# ---------------------------------------------------------------- failures stay with the image that caused them
def _poisoned(image) -> bool: return (np.asarray(image) == POISON).all(-1).sum() > 100


class _Fragile:
    "An encoder that breaks on any canvas showing the poison colour: alone, and in a batch (the whole batch)."
    def set_image(self, image):
        if _poisoned(image): raise MemoryError("the encoder broke on this canvas")
        super().set_image(image)

    def embed(self, images):
        if any(_poisoned(im) for im in images):
            self.embed_calls += 1
            raise MemoryError("the encoder broke on this batch")
        return super().embed(images)


class FragileSegmenter(_Fragile, ColourSegmenter): pass
class FragileConcept(_Fragile, ColourConcept): pass


def poisoned(hw=(50, 70)) -> np.ndarray:
    im = np.full((*hw, 3), POISON, np.uint8)
    im[20:30, 30:40] = (220, 30, 30)                            # a little red: the text gate lets it through
    return im


def test_seed_a_broken_image_in_a_batch_fails_alone(seed_images):
    "The batch of canvases [s0 s1] [P s3] breaks on P: each canvas alone, then P's canvas one target a canvas."
    s0, s1, s3, s4, s5 = (seed_images[k] for k in (0, 1, 3, 4, 5))
    images = [s0, s1, poisoned(), s3, np.zeros((5, 40, 3), np.uint8), s4, s5]
    seg = FragileSegmenter()
    got = seed_labeller(seg, 2, 2).label_many(images)
    assert isinstance(got[2], MemoryError) and isinstance(got[4], SegwlError) and 'too small' in str(got[4])
    want = [*seed_labeller(ColourSegmenter(), 2).label_many([s0, s1]), seed_labeller(ColourSegmenter()).label(s3),
            *seed_labeller(ColourSegmenter(), 2).label_many([s4, s5])]
    for r, a in zip([got[k] for k in (0, 1, 3, 5, 6)], want):
        assert (r.mask == a.mask).all() and r.packing == a.packing and r.present
    assert [got[k].packing['targets'] for k in (0, 1, 3, 5, 6)] == [2, 2, 1, 2, 2]     # P's mate: alone
    assert (seg.embed_calls, seg.set_image_calls) == (1, 3)     # the broken batch; [s0 s1], s3 alone, [s4 s5]


def test_canvas_a_broken_image_in_a_batch_fails_alone(canvas_refs, canvas_scenes):
    images = [canvas_scenes[0][0], poisoned((80, 80)), canvas_scenes[3][0], canvas_scenes[4][0]]
    seg = FragileConcept()
    got = CanvasLabeller(canvas_refs, 'a red ellipse', seg, batch_size=4).label_many(images)
    assert isinstance(got[1], MemoryError) and 'encoder broke' in str(got[1])
    alone = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept())
    for k in (0, 2, 3):
        a = alone.label(images[k])
        assert (got[k].mask == a.mask).all() and len(got[k].instances) == len(a.instances)
    assert (seg.embed_calls, seg.set_image_calls) == (1, 3)          # the batch broke: each canvas alone, one broke


def test_a_segmenter_without_embed_goes_canvas_by_canvas(canvas_refs, canvas_scenes):
    "No `BatchEncoding`: `set_image` one canvas at a time, the same answers (dispatch by protocol, not by attribute)."
    class Plain:
        def __init__(self): self.seg, self.calls = ColourConcept(), 0
        def set_image(self, image):
            self.calls += 1
            self.seg.set_image(image)
        def segment(self, *a): return self.seg.segment(*a)
    images = [s[0] for s in canvas_scenes]
    plain = Plain()
    assert not isinstance(plain, BatchEncoding)
    got = CanvasLabeller(canvas_refs, 'a red ellipse', plain, batch_size=3).label_many(images)
    want = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept()).label_many(images)
    assert plain.calls == len(images)
    for r, a in zip(got, want): assert (r.mask == a.mask).all()


def test_an_embed_that_gives_too_few_states_falls_back(canvas_refs, canvas_scenes):
    class Short(ColourConcept):
        def embed(self, images): return super().embed(images)[:-1]
    seg = Short()
    images = [s[0] for s in canvas_scenes[:3]]
    got = CanvasLabeller(canvas_refs, 'a red ellipse', seg, batch_size=3).label_many(images)
    want = CanvasLabeller(canvas_refs, 'a red ellipse', ColourConcept()).label_many(images)
    assert (seg.embed_calls, seg.set_image_calls) == (1, 3)
    for r, a in zip(got, want): assert (r.mask == a.mask).all()


# ---------------------------------------------------------------- the setting: bounds, files, flag, job, runner
def test_settings_bounds_and_files():
    for cls in (SeedSettings, CanvasSettings):
        assert cls().batch_size == 1 and 'batch_size' not in cls().to_dict()      # old files, old configs: as before
        assert cls.from_dict(cls(batch_size=8).to_dict()).batch_size == 8
        for bad in (0, 65):
            with pytest.raises(SegwlError, match=f'batch_size={bad}'): cls(batch_size=bad)
    assert group_size(SeedLabeller([synthetic_scene((60, 90), seed=1)], 'red', ColourSegmenter(), ColourScorer(),
                                   targets_per_canvas=3, batch_size=4)) == 12


def test_old_packing_labellers_still_group_by_targets():
    class Packing:
        references, text, settings, backends, targets_per_canvas = [], 'x', None, {}, 3
        def label(self, image): return None
        def label_many(self, images): return [None] * len(images)
    assert isinstance(Packing(), PackingLabeller) and not isinstance(Packing(), BatchingLabeller)
    assert group_size(Packing()) == 3 and label_many(Packing(), [1, 2]) == [None, None]


def test_flag_job_parameter_and_runner(tmp_path):
    import json
    from PIL import Image
    from conftest import segwl
    from segwl.testing import scene_folder
    scene_folder(tmp_path/'imgs', [(60, 80), (80, 60), (50, 120), (70, 70), (90, 50)])
    ref, ref_mask = synthetic_scene((60, 90), seed=1)
    Image.fromarray(ref).save(tmp_path/'r.png')
    Image.fromarray(ref_mask).save(tmp_path/'m.png')
    r = segwl('label', '--help')
    assert '--batch-size N' in r.stdout and 'encoder in one call' in r.stdout
    common = ['label', '--reference', 'r.png', 'm.png', '--text', 'red', '--images', 'imgs', '--segmenter',
              'colour-segmenter', '--scorer', 'colour-scorer', '--targets-per-canvas', '2', '--no-progress']
    segwl(*common, '--out', 'one', cwd=tmp_path, check_rc=0)
    segwl(*common, '--out', 'batched', '--batch-size', '2', cwd=tmp_path, check_rc=0)
    assert json.loads((tmp_path/'batched'/'config.json').read_text())['settings']['batch_size'] == 2
    assert 'batch_size' not in json.loads((tmp_path/'one'/'config.json').read_text())['settings']
    rows = lambda out: sorted(((r['file'], r['status'], r['score'], r.get('packing')) for r in map(
        json.loads, (tmp_path/out/'manifest.jsonl').read_text().splitlines())), key=str)
    assert rows('one') == rows('batched') and len(rows('one')) == 5
    for m in sorted((tmp_path/'one'/'masks').iterdir()):
        assert (np.asarray(Image.open(m)) == np.asarray(Image.open(tmp_path/'batched'/'masks'/m.name))).all()
    r = segwl(*common, '--out', 'bad', '--batch-size', '0', cwd=tmp_path)
    assert r.returncode == 2 and 'batch_size=0' in r.stderr
    segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'method', 'canvas', '-p', 'segmenter',
          'colour-concept', '-p', 'reference_image', 'r.png', '-p', 'reference_mask', 'm.png', '-p', 'images',
          'imgs', '-p', 'out', 'job', '-p', 'train', 'False', '-p', 'device', 'cpu', '-p', 'batch_size', '3',
          cwd=tmp_path, check_rc=0)
    assert json.loads((tmp_path/'job'/'labels'/'config.json').read_text())['settings']['batch_size'] == 3


def test_bench_batch_runs_tiny(tmp_path):
    "The bench's command checks itself on the tiny models: one encoder call per batch, B's answers are B = 1's."
    import json, sys
    sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parent.parent/'bench'))
    import bench_batch
    assert bench_batch.main(['--tiny', '--images', '5', '--batch', '1,2,4', '--targets', '2', '--repeats', '1',
                             '--threads', '1', '--json', str(tmp_path/'b.json')]) == 0
    res = json.loads((tmp_path/'b.json').read_text())
    assert [m['canvases'] for m in res['models']] == [3, 3]                    # 5 images, 2 a canvas
    for m in res['models']:
        rows = m['per_batch']
        assert [rows[b]['encoder_calls'] for b in ('1', '2', '4')] == [3, 2, 1]
        assert all(r['same_verdicts'] and r['min_iou_vs_1'] >= 0.999 for r in rows.values())
        assert rows['1']['speedup_encoder'] == 1.0 and rows['4']['calls'] == dict(set_image=0, embed=1)


def test_runner_and_ray_hand_over_targets_x_batch(tmp_path):
    "Local and Ray runners give a labeller 2 x 2 images at a time: the rows and files of batch_size 1, on both."
    from PIL import Image
    from segwl.folder import label_folder
    from segwl.recipe import LabellerSpec
    from test_packed import truncated_png, rows_without, same_files
    d = tmp_path/'imgs'
    d.mkdir()
    for i in range(5): Image.fromarray(concept_scene((96, 128), i % 3, seed=50 + i)[0]).save(d/f"c{i}.png")
    truncated_png(d/'c1a.png')
    ref = [concept_scene((90, 120), 1, seed=1)[:2]]
    spec = lambda b: LabellerSpec(ref, None, dict(targets_per_canvas=2, batch_size=b), 'colour-concept',
                                  method='canvas', device='cpu')
    one = label_folder(spec(1).build(), d, tmp_path/'one', progress=False, config=dict(models=spec(1).models()))
    lab = spec(2).build()
    assert group_size(lab) == 4
    local = label_folder(lab, d, tmp_path/'local', progress=False, config=dict(models=spec(2).models()))
    assert local == one and one['error'] == 1
    assert (lab.segmenter.embed_calls, lab.segmenter.set_image_calls) == (1, 1)     # [c0 c1] [c2] in one; [c3 c4]
    assert rows_without(tmp_path/'local') == rows_without(tmp_path/'one')
    same_files(tmp_path/'one', tmp_path/'local')
    pytest.importorskip('ray.data', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    from segwl.engine import label_folder_ray, ray_session, EngineError
    try:
        with ray_session(None, workers=2):
            ray = label_folder_ray(spec(2), d, tmp_path/'ray', workers=2, progress=False)
    except EngineError as e: pytest.skip(f"a local Ray instance could not start on this machine: {e}")
    assert ray == one
    assert rows_without(tmp_path/'ray') == rows_without(tmp_path/'one')
    same_files(tmp_path/'one', tmp_path/'ray')
