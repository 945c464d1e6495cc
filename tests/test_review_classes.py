"""Review of a labels folder of several classes (issue 23): colours per class, doubt by the weakest class, a fix for
one class, use as reference for one class and the next run that takes it. Known answers with the colour stand-ins."""
import json
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import iou
from segwl.classes import load_label_map, read_classes_json, PALETTE
from segwl.cli import main
from segwl.errors import SegwlError
from segwl.recipe import LabellerSpec
from segwl.review import ReviewPanel, ranked, record, rows_of, contact_sheet, overlay, REVIEW_CLASSES
from segwl.seed import SeedLabeller, SeedSettings
from segwl.testing import ColourSegmenter, ColourScorer, NamedColourScorer, classes_scene, synthetic_scene

NAMES = ['red', 'green']
RED, GREEN = PALETTE[1].tolist(), PALETTE[2].tolist()          # classes.json's colours: VOC's dark red and green
SCENES = {'c0.png': (1, 1), 'c1.png': (1, 0), 'c2.png': (0, 1)}


@pytest.fixture
def run(tmp_path):
    "Reference files and a classes file of red and green, three scenes, labelled by `segwl label --method canvas`."
    refs = tmp_path/'refs'
    refs.mkdir()
    entries = []
    for i, n in enumerate(NAMES):
        im, lm, _ = classes_scene((90, 120), [int(j == i) for j in range(2)], seed=40 + i)
        Image.fromarray(im).save(refs/f'{n}.png')
        Image.fromarray((lm > 0).astype(np.uint8) * 255).save(refs/f'{n}_mask.png')
        entries.append({'name': n, 'text': f"a {n} thing", 'references': [[f'{n}.png', f'{n}_mask.png']]})
    (refs/'classes.json').write_text(json.dumps({'classes': entries}))
    (tmp_path/'images').mkdir()
    truth = {}
    for i, (f, counts) in enumerate(SCENES.items()):
        im, truth[f], _ = classes_scene((120, 160), counts, seed=70 + i)
        Image.fromarray(im).save(tmp_path/'images'/f)
    assert label(tmp_path/'images', tmp_path/'labels', refs/'classes.json') == 0
    return tmp_path, truth

def label(images, out, classes) -> int:
    return main(['label', '--classes', str(classes), '--images', str(images), '--out', str(out), '--method', 'canvas',
                 '--segmenter', 'colour-concept', '--no-progress'])

def canvas(classes) -> object:
    return LabellerSpec(classes=classes, segmenter='colour-concept', method='canvas').build()

def box_of(mask, pad=3):
    ys, xs = np.nonzero(mask)
    return f"{xs.min() - pad} {ys.min() - pad} {xs.max() + 1 + pad} {ys.max() + 1 + pad}"

def spoil_green(labels, truth, file='c0.png') -> np.ndarray:
    "The label map of `file` with its green object gone, as if the labeller had missed it; written, not reviewed."
    lm = np.where(truth[file] == 2, 0, truth[file]).astype(np.uint8)
    record(labels, file, lm, None)
    return lm


def test_the_run_is_what_the_review_expects(run):
    d, truth = run
    assert [e['name'] for e in read_classes_json(d/'labels')] == NAMES
    for f, t in truth.items(): np.testing.assert_array_equal(load_label_map(d/'labels'/'masks'/f), t)

def test_thumbnail_draws_each_class_in_its_colour(run):
    "Inside an object: 60% of its class's colour over the image; its outline: exactly the colour."
    d, truth = run
    p = ReviewPanel(d/'labels', d/'images')
    assert [o[0] for o in p.fix_class.options] == ['1 red', '2 green'] and p.fix_class.layout.display == ''
    assert 'rgb(128,0,0)' in p.legend.value and 'rgb(0,128,0)' in p.legend.value and '2 green' in p.legend.value
    image = np.asarray(Image.open(d/'images'/'c0.png'))
    pic = np.asarray(p._picture(image, rows_of(d/'labels')['c0.png'], 160))      # the image's own size: 160 wide
    for k, colour in ((1, RED), (2, GREEN)):
        obj = truth['c0.png'] == k
        ys, xs = np.nonzero(obj)
        y, x = int(np.median(ys)), int(np.median(xs[ys == int(np.median(ys))]))
        want = 0.4 * image[y, x] + 0.6 * np.array(colour)
        assert np.abs(pic[y, x] - want).max() <= 1, (k, pic[y, x], want)
        edge = obj & ~np.pad(obj, 1)[2:, 1:-1]                                   # its lowest pixels
        assert (pic[edge] == colour).all()

def test_sheet_colours_and_legend(run, tmp_path):
    "The sheet draws red where the red object is and green where the green one is; the classes of a legend."
    d, truth = run
    contact_sheet(d/'labels', d/'images', tmp_path/'sheet.png', n=1, cols=1, filter='all')
    files = [r['file'] for _, r in ranked(d/'labels')][:1]
    sheet = np.asarray(Image.open(tmp_path/'sheet.png').convert('RGB'))
    top = sheet[:int(0.8 * sheet.shape[0])]                                      # above the legend
    at = {k: np.nonzero((top == c).all(-1)) for k, c in ((1, RED), (2, GREEN))}
    shown = truth[files[0]]
    for k in (1, 2): assert (len(at[k][0]) > 20) == (shown == k).any()
    if (shown == 1).any() and (shown == 2).any():                                # left-right order as in the image
        order = np.sign(np.nonzero(shown == 1)[1].mean() - np.nonzero(shown == 2)[1].mean())
        assert np.sign(at[1][1].mean() - at[2][1].mean()) == order
    legend = np.asarray(Image.open(tmp_path/'sheet.png').convert('RGB'))[int(0.8 * sheet.shape[0]):]
    assert (legend == RED).all(-1).sum() > 20 and (legend == GREEN).all(-1).sum() > 20

def test_overlay_of_a_label_map_keeps_single_class_as_it_was():
    im, m = synthetic_scene((40, 60), seed=3)
    a = np.asarray(overlay(im, m, 60))
    assert (a[np.pad(m, 1)[1:-1, 1:-1] & ~np.pad(m, 1)[2:, 1:-1]] == (255, 230, 0)).all()   # yellow outline

def test_cli_sheet_of_several_classes(run, tmp_path, capsys):
    d, truth = run
    assert main(['review', str(d/'labels'), '--sheet', str(tmp_path/'s.png')]) == 0
    assert Image.open(tmp_path/'s.png').size[0] > 300 and 's.png: 3 image(s)' in capsys.readouterr().out

def test_doubt_puts_the_weakest_class_first(run):
    "Each row's lowest present-class score decides; an absent class adds nothing."
    d, truth = run
    labels = d/'labels'
    record(labels, 'c0.png', truth['c0.png'], None, scores={'red': 0.95, 'green': 0.3})
    record(labels, 'c1.png', truth['c1.png'], None, scores={'red': 0.6, 'green': 0.01})   # green absent here
    record(labels, 'c2.png', truth['c2.png'], None, scores={'red': 0.05, 'green': 0.9})   # red absent here
    rows = rows_of(labels)
    assert (rows['c0.png']['score'], rows['c1.png']['score'], rows['c2.png']['score']) == (0.3, 0.6, 0.9)
    assert rows['c1.png']['classes']['green'] == dict(status='absent', score=0.01)
    assert [r['file'] for _, r in ranked(labels)] == ['c0.png', 'c1.png', 'c2.png']

def test_fix_for_class_2_changes_only_class_2_pixels(run):
    d, truth = run
    labels = d/'labels'
    before = spoil_green(labels, truth)
    p = ReviewPanel(labels, d/'images', labeller=canvas(d/'refs'/'classes.json'))
    p.open_image('c0.png')
    p.fix_class.value = 2
    p.box_text.value = box_of(truth['c0.png'] == 2)
    p.fix.click()
    after = load_label_map(labels/'masks'/'c0.png')
    changed = after != before
    assert changed.any() and ((after == 2) | (before == 2))[changed].all()
    np.testing.assert_array_equal(after == 1, before == 1)                  # red untouched
    assert iou(after == 2, truth['c0.png'] == 2) > 0.95
    r = rows_of(labels)['c0.png']
    assert (r['reviewed'], r['status'], r['classes']['green']['status'], r['classes']['red']['status']) == \
        ('fixed', 'ok', 'ok', 'ok')
    assert r['score'] == min(v['score'] for v in r['classes'].values())
    ins = json.loads((labels/'instances'/'c0.json').read_text())
    assert sorted(i['category_id'] for i in ins) == [1, 2]

def test_a_fix_leaves_other_classes_pixels_to_them(run):
    "A fix whose answer covers the red object too: red keeps its pixels, green gets the rest, the message says so."
    d, truth = run
    labels = d/'labels'

    class Everything:                                                       # a point model that answers "all"
        def set_image(self, image): self.hw = image.shape[:2]
        def predict(self, points, labels, multimask=True): return np.ones((1, *self.hw), bool), np.ones(1)
    p = ReviewPanel(labels, d/'images', labeller=canvas(d/'refs'/'classes.json'))
    p.segmenter = Everything()
    p.open_image('c0.png')
    p.on_key(dict(type='keydown', key='2'))
    p.add_point(5, 5, 1)
    p.apply_fix()
    after = load_label_map(labels/'masks'/'c0.png')
    np.testing.assert_array_equal(after == 1, truth['c0.png'] == 1)
    assert (after[truth['c0.png'] != 1] == 2).all()
    assert f"{(truth['c0.png'] == 1).sum()} px of other classes left to them" in p.message.value

def test_accept_and_reject_keep_label_maps(run):
    d, truth = run
    labels = d/'labels'
    p = ReviewPanel(labels, d/'images')
    p.open_image('c0.png')
    p.accept.click()
    np.testing.assert_array_equal(load_label_map(labels/'masks'/'c0.png'), truth['c0.png'])
    assert Image.open(labels/'masks'/'c0.png').mode == 'P'
    p.open_image('c1.png')
    p.reject.click()
    r = rows_of(labels)['c1.png']
    assert (r['status'], r['reviewed'], {v['status'] for v in r['classes'].values()}) == ('absent', 'rejected',
                                                                                          {'absent'})
    assert not load_label_map(labels/'masks'/'c1.png').any()

def test_use_as_reference_joins_that_class_and_the_next_run_uses_it(run, tmp_path):
    d, truth = run
    labels = d/'labels'
    spoil_green(labels, truth, 'c0.png')
    spoil_green(labels, truth, 'c2.png')                                      # unreviewed: relabelled below
    lab = canvas(d/'refs'/'classes.json')
    p = ReviewPanel(labels, d/'images', labeller=lab)
    p.open_image('c0.png')
    p.fix_class.value = 2
    p.box_text.value = box_of(truth['c0.png'] == 2)
    p.fix.click()
    c = p.use_as_reference()
    assert [len(x.references) for x in p.labeller.labellers] == [1, 2]       # green has the fixed image too
    assert (c['relabelled'], c['ious']['c2.png'] < 0.5) == (2, True)
    np.testing.assert_array_equal(load_label_map(labels/'masks'/'c2.png'), truth['c2.png'])   # relabelled, green back
    assert 'joined the references of class green' in p.message.value
    note = json.loads((labels/'review.json').read_text())['references']
    assert [(Path(r['image']).name, r['class']) for r in note] == [('c0.png', 'green')]
    ref_mask = labels/'references'/'c0.green.png'
    assert iou(np.asarray(Image.open(ref_mask)) > 0, truth['c0.png'] == 2) > 0.95
    classes = json.loads((labels/REVIEW_CLASSES).read_text())['classes']
    assert [c['name'] for c in classes] == NAMES
    assert classes[0]['references'] == [[str((d/'refs'/f).resolve()) for f in ('red.png', 'red_mask.png')]]
    assert classes[1]['references'] == [[str((d/'refs'/f).resolve()) for f in ('green.png', 'green_mask.png')],
                                        [str((d/'images'/'c0.png').resolve()), str(ref_mask.resolve())]]
    # a new labeller of the recorded classes: the recipe's, over the old one's models
    more = LabellerSpec.like(lab, classes=labels/REVIEW_CLASSES).build(backends=lab.backends)
    assert [len(x.references) for x in more.labellers] == [1, 2]
    np.testing.assert_array_equal(more.labellers[1].references[1][1], np.asarray(Image.open(ref_mask)) > 0)
    # and the next `segwl label` takes the file as any classes file
    assert label(d/'images', tmp_path/'next', labels/REVIEW_CLASSES) == 0
    cfg = json.loads((tmp_path/'next'/'config.json').read_text())
    assert [len(c['references']) for c in cfg['classes']] == [1, 2]
    for f, t in truth.items(): np.testing.assert_array_equal(load_label_map(tmp_path/'next'/'masks'/f), t)

def test_use_as_reference_twice_adds_to_the_file(run):
    "A second reference of another class joins the classes file the first one wrote, not the run's anew."
    d, truth = run
    labels = d/'labels'
    p = ReviewPanel(labels, d/'images', labeller=canvas(d/'refs'/'classes.json'))
    for f, k in (('c0.png', 2), ('c1.png', 1)):
        p.open_image(f)
        p.accept.click()
        p.open_image(f)
        p.fix_class.value = k
        assert p.use_as_reference() is not None, p.message.value
    classes = json.loads((labels/REVIEW_CLASSES).read_text())['classes']
    assert [len(c['references']) for c in classes] == [2, 2]
    p.open_image('c1.png')
    p.fix_class.value = 2                                                      # c1 has no green pixel
    assert p.use_as_reference() is None and 'pixels of class green' in p.message.value

def test_arrays_given_as_references_are_written_for_the_classes_file(tmp_path):
    "A run labelled from Python with arrays: the classes file still names files (written into references/)."
    from segwl.folder import label_folder
    refs = [(n, f"a {n} thing", [(lambda s: (s[0], s[1] > 0))(classes_scene((90, 120), [int(j == i) for j in
                                                                                        range(2)], seed=40 + i))])
            for i, n in enumerate(NAMES)]
    lab = LabellerSpec(classes=refs, settings=dict(trials=2, min_text_score=1e-3)).build(
        dict(segmenter=ColourSegmenter(), scorer=NamedColourScorer()))
    (tmp_path/'images').mkdir()
    im, t, _ = classes_scene((120, 160), (1, 1), seed=70)
    Image.fromarray(im).save(tmp_path/'images'/'a.png')
    label_folder(lab, tmp_path/'images', tmp_path/'labels', progress=False)
    p = ReviewPanel(tmp_path/'labels', tmp_path/'images', labeller=lab)
    p.accept.click()
    p.open_image('a.png')
    p.fix_class.value = 1
    assert p.use_as_reference() is not None, p.message.value
    classes = json.loads((tmp_path/'labels'/REVIEW_CLASSES).read_text())['classes']
    assert [len(c['references']) for c in classes] == [2, 1]
    for c in classes:
        for pair in c['references']: assert all(Path(v).is_file() for v in pair)
    again = LabellerSpec(classes=tmp_path/'labels'/REVIEW_CLASSES, settings=dict(trials=2, min_text_score=1e-3))
    more = again.build(dict(segmenter=ColourSegmenter(), scorer=NamedColourScorer()))
    np.testing.assert_array_equal(more.labellers[0].references[0][1], refs[0][2][0][1])

def test_a_labeller_of_other_classes_is_refused(run, tmp_path):
    d, truth = run
    one = SeedLabeller(*synthetic_scene((64, 80), seed=100), 'red', ColourSegmenter(), ColourScorer(),
                       SeedSettings(trials=1))
    with pytest.raises(SegwlError, match='names the classes red, green, but the labeller has one class'):
        ReviewPanel(d/'labels', d/'images', labeller=one)
    data = json.loads((d/'refs'/'classes.json').read_text())
    (d/'refs'/'swapped.json').write_text(json.dumps({'classes': data['classes'][::-1]}))
    with pytest.raises(SegwlError, match='has the classes green, red'):
        ReviewPanel(d/'labels', d/'images', labeller=canvas(d/'refs'/'swapped.json'))

def test_a_mask_without_a_class_is_refused(run):
    d, truth = run
    with pytest.raises(SegwlError, match='give a label map of class ids, not a mask'):
        record(d/'labels', 'c0.png', truth['c0.png'] > 0, 'fixed')

def test_the_classes_review_demo_runs_from_the_repository_alone(tmp_path, monkeypatch):
    "docs/review_classes_demo.ipynb (docs/review_classes.png): three classes, the concept stand-in, a fix of green."
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv('SEGWL_REVIEW_DEMO', str(tmp_path))
    monkeypatch.chdir(root/'docs')
    ns = {}
    for c in json.loads((root/'docs'/'review_classes_demo.ipynb').read_text())['cells']:
        if c['cell_type'] == 'code': exec(''.join(c['source']), ns)
    p = ns['panel']
    row = rows_of(tmp_path/'labels')[p.current]
    assert (p.current, row['reviewed'], row['classes']['green']['status']) == ('scene_01.png', 'fixed', 'ok')
    np.testing.assert_array_equal(load_label_map(tmp_path/'labels'/'masks'/'scene_01.png'), ns['truth']['scene_01.png'])
    assert p.ranking[0][1]['file'] == 'scene_03.png' and 'STAND-IN' in p.backends.value
    assert '3 blue' in p.legend.value and 'fixed class green' in p.message.value
