"""Several classes in one run (issue 23), the labelling half: known answers with the colour stand-ins for both methods,
the overlap rule through a labeller, one encoder pass per image for the canvas method, the recipe, `segwl label
--classes` and the job's `classes` parameter, and bad input (exit 2, a message, nothing written)."""
import json
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.canvas import connected_parts
from segwl.classes import compose, load_label_map, read_classes_json
from segwl.folder import label_folder, read_manifest
from segwl.multiclass import MulticlassLabeller, MulticlassResult
from segwl.protocols import LabelResult, Labeller
from segwl.recipe import LabellerSpec
from segwl.seed import SeedSettings
from segwl.testing import (CLASS_COLOURS, ColourConcept, ColourSegmenter, NamedColourScorer, classes_scene,
                           class_lookalikes)
from conftest import cli, segwl, ray_pythonpath

NAMES = list(CLASS_COLOURS)                       # red, green, blue: classes 1, 2, 3
SEED = dict(trials=2, min_text_score=1e-3)        # the text gate says "absent" for a colour the image lacks

def one_of(i: int, k: int = 3, seed: int = 0, hw=(90, 120)):
    "A reference of class `i` (0-based) of `k`: a scene with one object of that class's colour, and its mask."
    im, lm, _ = classes_scene(hw, [1 if j == i else 0 for j in range(k)], seed=seed)
    return im, lm > 0

def classes_list(k: int = 3, text: bool = True, refs: int = 1) -> list:
    "`(name, text, references)` of the first `k` colour classes, `refs` references each."
    return [(n, f"a {n} thing" if text else None, [one_of(i, k, seed=40 + 10 * i + r) for r in range(refs)])
            for i, n in enumerate(NAMES[:k])]

def labeller(method: str, k: int = 3, refs: int = 1, **kw) -> MulticlassLabeller:
    "The recipe's multi-class labeller of the first `k` colour classes, over the stand-ins."
    if method == 'canvas':
        spec = LabellerSpec(classes=classes_list(k, refs=refs), segmenter='colour-concept', method='canvas', **kw)
        return spec.build()
    spec = LabellerSpec(classes=classes_list(k, refs=refs), settings=SEED, segmenter='colour-segmenter', **kw)
    return spec.build(backends=dict(scorer=NamedColourScorer()))

# every count of 0 to 3 objects per class that fits, two and three classes, look-alikes of every class
SCENES = [(0, 0, 0), (1, 0, 0), (0, 2, 0), (0, 0, 3), (1, 1, 1), (3, 0, 2), (2, 3, 1), (3, 3, 3)]

@pytest.mark.parametrize('method', ['canvas', 'seed'])
@pytest.mark.parametrize('k', [2, 3])
def test_known_answers(method, k):
    "Every object in its class, look-alikes in none, absent classes absent, the row's fields as the label map says."
    lab = labeller(method, k)
    assert isinstance(lab, Labeller) and lab.names == NAMES[:k]
    for i, counts in enumerate(SCENES):
        counts = counts[:k]
        im, truth, parts = classes_scene((150, 200), counts, seed=100 + i, lookalikes=3)
        r = lab.label(im)
        assert isinstance(r, MulticlassResult) and isinstance(r, LabelResult)
        np.testing.assert_array_equal(r.label_map, truth, err_msg=f"{method}, scene {counts}")
        assert {n: v['status'] for n, v in r.classes.items()} == {n: 'ok' if c else 'absent' for n, c in
                                                                  zip(NAMES, counts)}
        assert (r.present, r.overlap) == (sum(counts) > 0, 0)
        np.testing.assert_array_equal(r.mask, truth > 0)
        ok = [v['score'] for v in r.classes.values() if v['status'] == 'ok']
        assert r.score == (min(ok) if ok else None) == r.row_fields['score']
        assert r.row_fields['status'] == ('ok' if sum(counts) else 'absent')
        if method == 'canvas':
            assert sorted((j.category_id, j.area) for j in r.instances) == sorted((c, int(m.sum())) for c, m in parts)
            for j in r.instances: assert (truth[j.mask] == j.category_id).all()
        else: assert r.instances is None

def test_lookalikes_are_near_but_outside():
    "The scenes' look-alikes are near a class colour (75 in one channel) and outside every stand-in's tolerance."
    near = np.array(class_lookalikes(CLASS_COLOURS.values()))
    d = np.abs(near[:, None] - np.array(list(CLASS_COLOURS.values()))[None]).max(-1)
    assert (d.min(1) >= 70).all() and (d.min(1) <= 75).all()

def test_canvas_one_encoder_pass_per_image_whatever_k():
    "One set_image per image for K = 1, 2, 3 classes; one segment call per class, the others' boxes negative."
    im = classes_scene((150, 200), [1, 1, 1], seed=3)[0]
    for k in (1, 2, 3):
        seg = ColourConcept()
        lab = MulticlassLabeller(classes_list(k, refs=2), seg, method='canvas')
        calls = []
        real = seg.segment
        seg.segment = lambda text, boxes, labels: calls.append(np.asarray(labels).tolist()) or real(text, boxes, labels)
        for _ in range(2): lab.label(im)
        assert (seg.set_image_calls, seg.segment_calls) == (2, 2 * k)
        assert calls[:k] == [[1, 1] + [0, 0] * (k - 1)] * k          # its two boxes first, then the others' two each
        assert seg.texts[:k] == [f"a {n} thing" for n in NAMES[:k]]

def test_seed_one_pass_per_class_reference():
    "The seed method stitches per class and reference, as one class does; the text gate skips an absent class."
    seg = ColourSegmenter()
    lab = MulticlassLabeller(classes_list(3, refs=2), seg, NamedColourScorer(), SeedSettings(**SEED))
    lab.label(classes_scene((150, 200), [1, 1, 1], seed=3)[0])
    assert seg.set_image_calls == 6
    lab.label(classes_scene((150, 200), [1, 0, 0], seed=3)[0])
    assert seg.set_image_calls == 8

class Claims:
    "A concept segmenter answering each text with given masks (in the target's frame) and scores: known claims."
    def __init__(self, lab, claims: dict):
        self.lab, self.claims, self.set_image_calls = lab, claims, 0

    def set_image(self, image):
        self.set_image_calls += 1
        self.hw = image.shape[:2]

    def segment(self, text, boxes, box_labels):
        lay = self.lab.layout_for(self.target_hw)
        out = []
        for m in self.claims.get(text, []):
            c = np.zeros(self.hw, bool)
            c[lay.target.window] = m[0]
            out.append((c, m[1]))
        if not out: return np.zeros((0, *self.hw), bool), np.zeros(0, np.float32)
        return np.stack([c for c, _ in out]), np.array([s for _, s in out], np.float32)

def disc(cx, cy, r, hw=(60, 80)):
    yy, xx = np.mgrid[:hw[0], :hw[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r

@pytest.mark.parametrize('s1, s2, lens_to', [(0.6, 0.9, 2), (0.9, 0.6, 1), (0.7, 0.7, 1)])
def test_overlap_rule_through_the_labeller(s1, s2, lens_to):
    "Two classes claim a lens: the higher score wins it (a tie: the lower id), the loser is clipped, the row says so."
    a, b = disc(30, 30, 14), disc(48, 30, 14)
    lab = MulticlassLabeller(classes_list(2), ColourConcept(), method='canvas', negatives=False)
    seg = Claims(lab, {'a red thing': [(a, s1)], 'a green thing': [(b, s2)]})
    seg.target_hw = a.shape
    lab.labellers[0].segmenter = lab.labellers[1].segmenter = seg
    r = lab.label(np.zeros((*a.shape, 3), np.uint8))
    lens = a & b
    assert r.overlap == int(lens.sum()) > 0
    assert (r.label_map[lens] == lens_to).all()
    assert (r.label_map[a & ~b] == 1).all() and (r.label_map[b & ~a] == 2).all()
    loser = {1: 2, 2: 1}[lens_to]
    kept = {j.category_id: j.mask for j in r.instances}
    assert not kept[loser][lens].any() and kept[lens_to][lens].all()             # the loser's instance clipped
    np.testing.assert_array_equal(r.label_map, compose({1: (a, s1), 2: (b, s2)}).label_map)
    assert r.row_fields['overlap'] == r.overlap and r.score == min(s1, s2) == pytest.approx(r.score)

def test_a_wholly_covered_class_is_absent():
    "A class whose every pixel went to a higher-scored class is absent in the row, as in the label map."
    a = disc(40, 30, 15)
    lab = MulticlassLabeller(classes_list(2), ColourConcept(), method='canvas', negatives=False)
    seg = Claims(lab, {'a red thing': [(disc(40, 30, 6), 0.55)], 'a green thing': [(a, 0.9)]})
    seg.target_hw = a.shape
    lab.labellers[0].segmenter = lab.labellers[1].segmenter = seg
    r = lab.label(np.zeros((*a.shape, 3), np.uint8))
    assert r.classes == {'red': {'status': 'absent', 'score': 0.55}, 'green': {'status': 'ok', 'score': 0.9}}
    assert [j.category_id for j in r.instances] == [2] and r.per_class['red'].present

def test_overlap_from_the_stand_in_without_negatives():
    "An object between two class colours: negatives give it to the nearer class; without them the rule does."
    orange = (220, 100, 30)
    refs = [('red', None, [one_of(0, 1, seed=41)]), ('orange', None, [(lambda s: (s[0], s[1] > 0))(
        classes_scene((90, 120), [1], colours=[orange], seed=50))])]
    im, truth, _ = classes_scene((150, 200), [1, 1], colours=[CLASS_COLOURS['red'], orange], seed=7)
    between = disc(30, 120, 14, hw=(150, 200))
    assert not truth[between].any()
    im[between] = (220, 60, 30)                       # 30 from red, 40 from orange
    r = MulticlassLabeller(refs, ColourConcept(50), method='canvas').label(im)
    assert (r.label_map[between] == 1).all() and r.overlap == 0
    r = MulticlassLabeller(refs, ColourConcept(50), method='canvas', negatives=False).label(im)
    assert (r.label_map[between] == 1).all() and r.overlap == int(between.sum())
    assert len(r.per_class['orange'].instances) == 2 and sorted(j.category_id for j in r.instances) == [1, 1, 2]

def test_a_class_without_text_canvas_only():
    "The canvas method labels a class from its exemplars alone; the seed method refuses it, naming the class."
    refs = classes_list(2, text=False)
    im, truth, _ = classes_scene((150, 200), [2, 1], seed=9)
    r = LabellerSpec(classes=refs, segmenter='colour-concept', method='canvas').build().label(im)
    np.testing.assert_array_equal(r.label_map, truth)
    with pytest.raises(Exception, match="class\\(es\\) 'red', 'green' have no text"):
        LabellerSpec(classes=refs, segmenter='colour-segmenter')

# ------------------------------------------------------------------ the command line and the job
@pytest.fixture
def run_dir(tmp_path):
    "Reference files, a classes file beside them (relative paths), and a folder of 3-class scenes."
    refs = tmp_path/'refs'
    refs.mkdir()
    entries = []
    for i, n in enumerate(NAMES):
        im, m = one_of(i, seed=40 + 10 * i)
        Image.fromarray(im).save(refs/f'{n}.png')
        Image.fromarray(m.astype(np.uint8) * 255).save(refs/f'{n}_mask.png')
        entries.append({'name': n, 'text': f"a {n} thing", 'references': [[f'{n}.png', f'{n}_mask.png']]})
    (refs/'classes.json').write_text(json.dumps({'classes': entries}))
    (tmp_path/'imgs').mkdir()
    truths = {}
    for i, counts in enumerate(SCENES[:4]):
        im, truth, _ = classes_scene((150, 200), counts, seed=100 + i)
        Image.fromarray(im).save(tmp_path/'imgs'/f's{i}.png')
        truths[f's{i}'] = truth
    return tmp_path, truths

def check_labels_folder(out: Path, truths: dict, instances: bool = True):
    "A multi-class labels folder as issue 23 says: classes.json, palette label maps, instances, rows with classes."
    assert read_classes_json(out) == [dict(id=k, name=n, colour=c) for k, (n, c) in
                                      enumerate(zip(NAMES, ([128, 0, 0], [0, 128, 0], [128, 128, 0])), 1)]
    rows = {r['file']: r for r in read_manifest(out/'manifest.jsonl')}
    for stem, truth in truths.items():
        assert Image.open(out/'masks'/f'{stem}.png').mode == 'P'
        np.testing.assert_array_equal(load_label_map(out/'masks'/f'{stem}.png', n_classes=3), truth)
        row = rows[f'{stem}.png']
        present = [n for k, n in enumerate(NAMES, 1) if (truth == k).any()]
        assert {n for n, v in row['classes'].items() if v['status'] == 'ok'} == set(present)
        assert row['status'] == ('ok' if present else 'absent') and row['overlap'] == 0
        assert (row['score'] is None) == (not present)
        inst = out/'instances'/f'{stem}.json'
        assert inst.exists() == instances
        if instances:
            got = sorted(i['category_id'] for i in json.loads(inst.read_text()))
            assert got == [k for k in (1, 2, 3) for _ in range(connected_parts(truth == k)[1])]   # one per object
            assert row['instances'] == len(got)

def test_cli_classes_writes_label_maps_and_records_the_classes(run_dir):
    "`segwl label --classes FILE`: label maps, classes.json, instances by class; config.json records the classes."
    d, truths = run_dir
    code, out, err = cli('label', '--classes', d/'refs'/'classes.json', '--images', d/'imgs', '--out', d/'out',
                         '--method', 'canvas', '--segmenter', 'colour-concept', '--no-progress')
    assert code == 0, err
    assert '3 labelled, 1 absent, 0 failed' in out
    check_labels_folder(d/'out', truths)
    cfg = json.loads((d/'out'/'config.json').read_text())
    assert [c['name'] for c in cfg['classes']] == NAMES and cfg['reference'] is None
    assert cfg['classes'][2]['references'] == [[str(d/'refs'/'blue.png'), str(d/'refs'/'blue_mask.png')]]
    code, out, err = cli('label', '--classes', d/'refs'/'classes.json', '--images', d/'imgs', '--out', d/'out',
                         '--method', 'canvas', '--segmenter', 'colour-concept', '--no-progress')
    assert code == 0 and '4 already done' in out                                      # resumes
    data = json.loads((d/'refs'/'classes.json').read_text())
    (d/'refs'/'two.json').write_text(json.dumps({'classes': data['classes'][:2]}))
    code, out, err = cli('label', '--classes', d/'refs'/'two.json', '--images', d/'imgs', '--out', d/'out',
                         '--method', 'canvas', '--segmenter', 'colour-concept', '--no-progress')
    assert code == 2 and 'classes differ' in err and '--no-resume' in err

def test_seed_folder_writes_label_maps_without_instances(run_dir):
    "The seed method's folder: the same label maps and rows; no instances (one mask per class, as for one class)."
    d, truths = run_dir
    spec = LabellerSpec(classes=d/'refs'/'classes.json', settings=SEED, segmenter='colour-segmenter')
    lab = spec.build(backends=dict(scorer=NamedColourScorer()))
    n = label_folder(lab, d/'imgs', d/'seed', progress=False, config=spec.record())
    assert (n['ok'], n['absent'], n['error']) == (3, 1, 0)
    check_labels_folder(d/'seed', truths, instances=False)

def test_engine_path_writes_the_same_files(run_dir):
    "The Ray engine's path (a worker labels into scratch, the driver writes what it sends), here in this process."
    from functools import partial
    from segwl.engine import label_with, in_process
    d, truths = run_dir
    spec = LabellerSpec(classes=d/'refs'/'classes.json', segmenter='colour-concept', method='canvas').load()
    label_folder(spec.build(), d/'imgs', d/'local', progress=False, config=spec.record())
    n = label_with(spec, d/'imgs', d/'engine', partial(in_process, build=spec.build), progress=False,
                   config=spec.record())
    assert (n['ok'], n['absent']) == (3, 1)
    check_labels_folder(d/'engine', truths)
    for sub in ('masks', 'instances'):
        for p in sorted((d/'local'/sub).iterdir()): assert (d/'engine'/sub/p.name).read_bytes() == p.read_bytes()
    assert (d/'engine'/'classes.json').read_bytes() == (d/'local'/'classes.json').read_bytes()

@pytest.mark.parametrize('extra, said', [(['--text', 'a cat'], '--text'),
                                         (['--reference', 'refs/red.png', 'refs/red_mask.png'], '--reference'),
                                         (['--reference-image', 'refs/red.png', '--reference-mask',
                                           'refs/red_mask.png', '--text', 'x'], '--reference and --text')])
def test_cli_classes_exclude_reference_and_text(run_dir, extra, said, monkeypatch):
    d, _ = run_dir
    monkeypatch.chdir(d)
    code, out, err = cli('label', '--classes', 'refs/classes.json', '--images', 'imgs', '--out', 'out', *extra)
    assert code == 2 and f"--classes excludes {said}: each class brings its own references and text" in err
    assert not (d/'out').exists()

def test_cli_seed_class_without_text(run_dir):
    d, _ = run_dir
    data = json.loads((d/'refs'/'classes.json').read_text())
    del data['classes'][1]['text']
    (d/'refs'/'notext.json').write_text(json.dumps(data))
    code, out, err = cli('label', '--classes', d/'refs'/'notext.json', '--images', d/'imgs', '--out', d/'out')
    assert code == 2 and "notext.json: class(es) 'green' have no text" in err and '--method canvas' in err
    assert not (d/'out').exists()

@pytest.mark.parametrize('content, said', [('{"classes": [', 'not valid JSON'),
                                           ('{"clases": []}', "'clases' (did you mean 'classes'?)"),
                                           ('{"classes": [{"name": "a", "text": "x", "references": '
                                            '[["nothere.png", "red_mask.png"]]}]}', 'nothere.png: file not found')])
def test_cli_bad_classes_file(run_dir, content, said):
    d, _ = run_dir
    (d/'refs'/'bad.json').write_text(content)
    code, out, err = cli('label', '--classes', d/'refs'/'bad.json', '--images', d/'imgs', '--out', d/'out',
                         '--method', 'canvas', '--segmenter', 'colour-concept')
    assert code == 2 and said in err and 'bad.json' in err, err
    assert not (d/'out').exists()

def test_job_takes_classes(run_dir):
    "The papermill job labels with a classes file (train off: training on label maps comes with issue 23's other half)."
    d, truths = run_dir
    r = segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'classes', 'refs/classes.json',
              '-p', 'method', 'canvas', '-p', 'segmenter', 'colour-concept', '-p', 'images', 'imgs', '-p', 'out', 'out',
              '-p', 'train', 'False', '-p', 'device', 'cpu', cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    m = json.loads((d/'out'/'metrics.json').read_text())
    assert (m['classes'], m['labelled'], m['absent'], m['failed']) == (NAMES, 3, 1, 0)
    check_labels_folder(d/'out'/'labels', truths)
    r = segwl('run-notebook', 'pipeline', 'y.ipynb', '--no-progress', '-p', 'classes', 'refs/classes.json',
              '-p', 'text', 'a cat', '-p', 'images', 'imgs', cwd=d)
    assert r.returncode == 2 and 'parameter classes excludes parameter text' in r.stderr, r.stderr[-2000:]


def test_cli_classes_on_ray_matches_local(run_dir, tmp_path_factory, monkeypatch):
    "`segwl label --classes --engine ray`: workers build the multi-class labeller from the recipe; the same files."
    pytest.importorskip('ray', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    pytest.importorskip('ray.data', reason='the Ray engine needs Ray Data: pip install "ray[data]"')
    from segwl.engine import EngineError, ray_session
    d, truths = run_dir
    monkeypatch.setenv('PYTHONPATH', ray_pythonpath(tmp_path_factory.mktemp('shim')))   # Ray's helpers start in time
    base = ['label', '--classes', d/'refs'/'classes.json', '--images', d/'imgs', '--method', 'canvas',
            '--segmenter', 'colour-concept', '--no-progress']
    assert cli(*base, '--out', d/'local')[0] == 0
    session = ray_session(None, workers=1)
    try: ray = session.__enter__()
    except EngineError as e: pytest.skip(f"a local Ray instance could not start on this machine: {e}")
    try:
        code, out, err = cli(*base, '--out', d/'ray', '--engine', 'ray', '--workers', '1', '--ray-address',
                             ray.get_runtime_context().gcs_address)
    finally: session.__exit__(None, None, None)
    assert code == 0 and '3 labelled, 1 absent, 0 failed' in out, err[-2000:]
    check_labels_folder(d/'ray', truths)
    for sub in ('masks', 'instances'):
        for p in sorted((d/'local'/sub).iterdir()): assert (d/'ray'/sub/p.name).read_bytes() == p.read_bytes()
    cfg, local = (json.loads((d/x/'config.json').read_text()) for x in ('ray', 'local'))
    assert cfg['classes'] == local['classes']
