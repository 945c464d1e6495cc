"The review panel, headless: its controls are set and clicked, the files and rows it writes are checked."
import json
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import iou
from segwl.data import load_image, load_mask, SegwlError
from segwl.folder import label_folder, read_manifest
from segwl.seed import SeedLabeller, SeedSettings
from segwl.canvas import CanvasLabeller
from segwl.protocols import LabelResult
from segwl.panels import TINY_STAMP
from segwl.review import (ReviewPanel, doubt_score, ranked, rows_of, record, with_reference, relabel,
                          contact_sheet, fix_mask)
from segwl.testing import ColourSegmenter, ColourScorer, ColourConcept, synthetic_scene, scene_folder, concept_scene


def seed_labeller():
    ref, ref_mask = synthetic_scene((64, 80), seed=100)
    return SeedLabeller(ref, ref_mask, 'a red ellipse', ColourSegmenter(), ColourScorer(), SeedSettings(trials=2))

@pytest.fixture
def folder(tmp_path):
    "Five scenes labelled by the seed method with the stand-ins; scene_04 is 6x6 (an error row: too small)."
    truth = scene_folder(tmp_path/'images', [(60, 72), (48, 64), (70, 56), (52, 52)])
    Image.fromarray(np.full((6, 6, 3), (220, 30, 30), np.uint8)).save(tmp_path/'images'/'scene_04.png')
    n = label_folder(seed_labeller(), tmp_path/'images', tmp_path/'labels', progress=False)
    assert (n['ok'], n['error']) == (4, 1)
    truth = {p.name: m for p, m in truth.items()}
    return tmp_path/'images', tmp_path/'labels', truth

def spoil(labels, file, hw):
    "Make `file` look like a miss of the labeller: an empty mask, an absent row, not reviewed."
    record(labels, file, np.zeros(hw, bool), None)

def centre(mask):
    ys, xs = np.nonzero(mask)
    return int(xs.mean()), int(ys.mean())


def test_doubt_ranks_error_then_absent_then_weak(folder):
    images, labels, truth = folder
    spoil(labels, 'scene_02.png', (70, 56))
    order = [r['file'] for _, r in ranked(labels)]
    assert order[:2] == ['scene_04.png', 'scene_02.png']
    assert doubt_score(dict(status='ok', score=0.2), np.ones((4, 4), bool)) == pytest.approx(0.32)
    assert doubt_score(dict(status='ok', score=1.0), np.ones((4, 4), bool)) == 0.0

def test_accept_writes_the_row_keeps_the_mask_and_moves_on(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images)
    p.open_image('scene_01.png')
    before, old = (labels/'masks'/'scene_01.png').read_bytes(), rows_of(labels)['scene_01.png']
    p.accept.click()
    r = rows_of(labels)['scene_01.png']
    assert r == {**old, 'reviewed': 'accepted'}
    assert (labels/'masks'/'scene_01.png').read_bytes() == before
    assert p.current != 'scene_01.png' and 'scene_01.png' not in [r['file'] for _, r in p.ranking]
    assert len(read_manifest(labels/'manifest.jsonl')) == 5                 # one row per file, rewritten whole

def test_accept_refused_without_a_mask(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images)
    assert p.current == 'scene_04.png'                                     # the error row is the most doubtful
    p.accept.click()
    assert 'no mask to accept' in p.message.value and 'reviewed' not in rows_of(labels)['scene_04.png']

def test_reject_writes_absent_and_an_empty_mask(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images)
    p.open_image('scene_03.png')
    p.reject.click()
    r = rows_of(labels)['scene_03.png']
    m = load_mask(labels/'masks'/'scene_03.png')
    assert (r['status'], r['reviewed'], m.shape, m.any()) == ('absent', 'rejected', (52, 52), False)

def test_fix_with_points_is_the_stand_ins_answer(folder):
    images, labels, truth = folder
    spoil(labels, 'scene_02.png', (70, 56))
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_02.png')
    x, y = centre(truth['scene_02.png'])
    p.x.value, p.y.value = x, y
    p.add_object.click()
    p.x.value, p.y.value = 1, 1
    p.add_background.click()
    assert (p.points, p.labels) == ([(x + 0.5, y + 0.5), (1.5, 1.5)], [1, 0])
    p.fix.click()
    seg = ColourSegmenter()
    seg.set_image(load_image(images/'scene_02.png'))
    masks, scores = seg.predict(np.array(p.points), np.array([1, 0]))
    m = load_mask(labels/'masks'/'scene_02.png')
    r = rows_of(labels)['scene_02.png']
    assert np.array_equal(m, masks[int(np.argmax(scores))])
    assert iou(m, truth['scene_02.png']) > 0.9
    assert (r['status'], r['reviewed'], r['error'], r['score']) == ('ok', 'fixed', None, float(scores.max()))

def test_fix_an_error_row_with_a_box(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_04.png')
    p.box_text.value = '1 1 5 5'
    p.fix.click()
    r = rows_of(labels)['scene_04.png']
    m = load_mask(labels/'masks'/'scene_04.png')
    want = np.zeros((6, 6), bool)
    want[1:5, 1:5] = True                                                  # all red, cut to the box
    assert (r['status'], r['reviewed'], r['error']) == ('ok', 'fixed', None)
    assert np.array_equal(m, want)

def test_fix_needs_a_prompt_and_a_labeller(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_01.png')
    p.fix.click()
    assert 'at least one object point' in p.message.value and 'reviewed' not in rows_of(labels)['scene_01.png']
    assert ReviewPanel(labels, images).fix.disabled

def test_a_busy_folder_is_said_not_written(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images)
    p.open_image('scene_01.png')
    before = (labels/'manifest.jsonl').read_bytes()
    import subprocess, sys
    code = (f'import time\nfrom segwl.data import output_lock\nwith output_lock({str(labels)!r}, "test"):\n'
            f' print("held", flush=True)\n time.sleep(30)')
    holder = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        p.accept.click()
    finally:
        holder.kill()
        holder.communicate()
    assert 'being written by another process' in p.message.value
    assert (labels/'manifest.jsonl').read_bytes() == before

def test_use_as_reference_relabels_the_unreviewed(folder):
    images, labels, truth = folder
    spoil(labels, 'scene_02.png', (70, 56))
    spoil(labels, 'scene_03.png', (52, 52))
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_03.png')
    p.x.value, p.y.value = centre(truth['scene_03.png'])
    p.add_object.click()
    p.fix.click()
    fixed = (labels/'masks'/'scene_03.png').read_bytes()
    c = p.use_ref.click() or p.changes
    assert isinstance(p.labeller, SeedLabeller) and len(p.labeller.references) == 2
    assert (c['relabelled'], c['skipped'], c['changed'], c['ious']['scene_02.png']) == (3, ['scene_04.png'], 1, 0.0)
    assert c['ious']['scene_00.png'] == c['ious']['scene_01.png'] == 1.0
    assert iou(load_mask(labels/'masks'/'scene_02.png'), truth['scene_02.png']) > 0.9
    assert rows_of(labels)['scene_02.png']['status'] == 'ok' and 'reviewed' not in rows_of(labels)['scene_02.png']
    assert (labels/'masks'/'scene_03.png').read_bytes() == fixed                        # reviewed: untouched
    refs = json.loads((labels/'review.json').read_text())['references']
    assert [Path(r['image']).name for r in refs] == ['scene_03.png'] and '1 mask(s) changed' in p.message.value
    assert rows_of(labels)['scene_04.png']['status'] == 'error'                         # still too small

def test_use_as_reference_needs_a_reviewed_mask(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_01.png')
    p.use_ref.click()
    assert 'fix or accept' in p.message.value and not (labels/'review.json').exists()

def test_canvas_labeller_takes_the_fix_as_a_reference():
    (im, m, _), (im2, m2, _) = concept_scene((64, 64), 2, seed=1), concept_scene((64, 64), 2, seed=2)
    lab = CanvasLabeller([(im, m)], None, ColourConcept())
    more = with_reference(lab, im2, m2)
    assert isinstance(more, CanvasLabeller) and len(more.images) == 2 and more.segmenter is lab.segmenter
    five = CanvasLabeller([(im, np.roll(m, k, 1)) for k in range(5)], None, ColourConcept())   # five, no twin
    with pytest.raises(Exception, match='the most it takes'): with_reference(five, im2, m2)

def test_fix_with_a_concept_model_takes_the_box():
    im, m, parts = concept_scene((64, 64), 2, seed=3)
    ys, xs = np.nonzero(parts[0])
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    got, score = fix_mask(ColourConcept(), im, box=box)
    assert iou(got, parts[0]) > 0.8 and not (got & parts[1]).any() and score > 0.5
    with pytest.raises(Exception, match='needs a box'): fix_mask(ColourConcept(), im, [(1, 1)], [1])

def test_resume_after_a_restart(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_01.png')
    p.accept.click()
    p.open_image('scene_03.png')
    p.reject.click()
    q = ReviewPanel(labels, images)                                        # the notebook was closed and reopened
    assert {r['file'] for _, r in q.ranking} == {'scene_00.png', 'scene_02.png', 'scene_04.png'}
    q.filter.value = 'reviewed'
    assert {r['file']: r['reviewed'] for _, r in q.ranking} == {'scene_01.png': 'accepted', 'scene_03.png': 'rejected'}
    assert 'reviewed 2' in q.page_label.value
    masks = {f: (labels/'masks'/f).read_bytes() for f in ('scene_01.png', 'scene_03.png')}
    label_folder(seed_labeller(), images, labels, progress=False)          # `segwl label` again, resuming
    rows = rows_of(labels)
    assert (rows['scene_01.png']['reviewed'], rows['scene_03.png']['reviewed']) == ('accepted', 'rejected')
    assert {f: (labels/'masks'/f).read_bytes() for f in masks} == masks

def test_filters_and_pages(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images, page_size=2)
    assert (len(p.grid.children), 'page 1/3' in p.page_label.value) == (2, True)
    p.next_page.click()
    p.next_page.click()
    p.next_page.click()                                                    # past the end: stays on the last
    assert (p.page, len(p.grid.children)) == (2, 1)
    p.filter.value = 'error'
    assert [r['file'] for _, r in p.ranking] == ['scene_04.png'] and p.page == 0
    p.filter.value = 'absent'
    assert p.ranking == [] and 'nothing to review' not in p.title.value    # the open image stays open

def test_contact_sheet(folder, tmp_path):
    images, labels, truth = folder
    spoil(labels, 'scene_02.png', (70, 56))
    files = contact_sheet(labels, images, tmp_path/'sheet.png', n=4, cols=2)
    assert files == ['scene_04.png', 'scene_02.png', *[r['file'] for _, r in ranked(labels)][2:4]]
    with Image.open(tmp_path/'sheet.png') as im: w, h = im.size
    assert w == 2 * 2.2 * 80 and h == 2 * 2.4 * 80
    with pytest.raises(Exception, match='no reviewed rows'): contact_sheet(labels, images, tmp_path/'x.png',
                                                                          filter='reviewed')

def test_relabel_leaves_reviewed_rows(folder):
    images, labels, truth = folder
    record(labels, 'scene_00.png', np.ones((60, 72), bool), 'fixed')       # a person's (odd) fix
    n = relabel(seed_labeller(), labels, images)
    assert 'scene_00.png' not in n['ious'] and load_mask(labels/'masks'/'scene_00.png').all()
    assert n['changed'] == 0 and n['relabelled'] == 3

def test_tiny_random_labels_carry_the_banner(folder):
    images, labels, truth = folder
    cfg = json.loads((labels/'config.json').read_text())
    assert TINY_STAMP not in ReviewPanel(labels, images).backends.value
    cfg['models'] = dict(segmenter=dict(name='sam-vit_b', weights='tiny-random'))
    (labels/'config.json').write_text(json.dumps(cfg))
    banner = ReviewPanel(labels, images).backends.value
    assert TINY_STAMP in banner and 'sam-vit_b' in banner

def test_contact_sheet_names_the_backends(folder):
    images, labels, truth = folder
    import segwl.review as R
    assert R._sheet_title(labels, 4, 'all') == 'labels: the 4 most doubtful of 5 (all); masks by unknown backends'
    cfg = json.loads((labels/'config.json').read_text())
    cfg['models'] = dict(segmenter=dict(name='sam-vit_b', weights='tiny-random'), scorer=dict(name='clip'))
    (labels/'config.json').write_text(json.dumps(cfg))
    assert R._sheet_title(labels, 2, 'all') == ('labels: the 2 most doubtful of 5 (all); masks by sam-vit_b, clip\n'
                                                + TINY_STAMP.upper())

@pytest.mark.parametrize('kw, words', [(dict(n=0), 'at least 1'), (dict(filter='nope'), "filter 'nope'"),
                                       (dict(filter='absent'), 'no absent rows')])
def test_contact_sheet_refuses_bad_input(folder, tmp_path, kw, words):
    images, labels, truth = folder
    with pytest.raises(SegwlError, match=words): contact_sheet(labels, images, tmp_path/'s.png', **kw)
    assert not (tmp_path/'s.png').exists()

def test_wrong_folders_are_named(folder, tmp_path):
    images, labels, truth = folder
    with pytest.raises(SegwlError, match='no manifest.jsonl'): ReviewPanel(images, images)
    with pytest.raises(SegwlError, match='not a folder'): contact_sheet(labels, tmp_path/'nope', tmp_path/'s.png')
    contact_sheet(labels, images, tmp_path/'new'/'deep'/'s.png', n=1)          # its folder is made
    assert (tmp_path/'new'/'deep'/'s.png').is_file()

def test_an_unreadable_image_is_said_not_raised(folder):
    images, labels, truth = folder
    (images/'scene_04.png').write_bytes(b'not an image')
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    p.open_image('scene_04.png')
    assert 'scene_04.png' in p.title.value and p.big.value == b''
    p.reject.click()
    assert 'cannot reject' in p.message.value and 'scene_04.png' in p.message.value
    p.x.value, p.y.value = 2, 2
    p.add_object.click()
    p.fix.click()
    assert rows_of(labels)['scene_04.png']['status'] == 'error' and 'reviewed' not in rows_of(labels)['scene_04.png']

def test_next_and_previous_follow_the_ranking(folder):
    images, labels, truth = folder
    p = ReviewPanel(labels, images)
    order = [r['file'] for _, r in p.ranking]
    assert p.current == order[0]
    p.next.click()
    p.next.click()
    assert p.current == order[2]
    p.prev.click()
    assert p.current == order[1]
    for _ in range(9): p.next.click()
    assert p.current == order[-1]                                          # stops at the end

def test_the_doubt_cache_follows_the_files(folder):
    images, labels, truth = folder
    cache = {}
    first = ranked(labels, cache)
    assert len(cache) == 5 and ranked(labels, cache) == first
    record(labels, 'scene_00.png', np.zeros((60, 72), bool), None)        # the mask and the row change
    again = ranked(labels, cache)
    assert again == ranked(labels) and again[1][1]['file'] == 'scene_00.png' and len(cache) == 6


def test_no_resume_keeps_reviewed_masks(folder):
    "Starting over relabels everything but what a person reviewed: fixed and rejected masks stay as they were."
    images, labels, truth = folder
    record(labels, 'scene_00.png', np.ones((60, 72), bool), 'fixed')
    record(labels, 'scene_01.png', np.zeros((48, 64), bool), 'rejected')
    with pytest.warns(UserWarning, match='keeping 2 reviewed'):
        n = label_folder(seed_labeller(), images, labels, progress=False, resume=False)
    rows = rows_of(labels)
    assert ((n['skipped'], rows['scene_00.png']['reviewed'], rows['scene_01.png']['reviewed'])
            == (2, 'fixed', 'rejected'))
    assert load_mask(labels/'masks'/'scene_00.png').all() and not load_mask(labels/'masks'/'scene_01.png').any()

def test_trial_disagreement_reaches_the_row_and_the_ranking(tmp_path):
    "Two images with the same score: the one whose trials disagreed (best scores 0.9 and 0.3) is ranked first."
    class Trials:
        "A labeller whose trials' best scores are known: 'calm' images agree, others spread by 0.6."
        settings, text, references, backends = SeedSettings(trials=2), None, [], {}
        def label(self, image):
            spread = [[0.9, 0.1], [0.9]] if image[0, 0, 0] == 1 else [[0.9], [0.3, 0.2]]
            return LabelResult(np.ones(image.shape[:2], bool), 0.9, 0.5, candidate_scores=spread)
    (tmp_path/'images').mkdir()
    for name, v in (('a_calm.png', 1), ('b_torn.png', 2)):
        Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(tmp_path/'images'/name)
    label_folder(Trials(), tmp_path/'images', tmp_path/'labels', progress=False)
    rows = rows_of(tmp_path/'labels')
    assert (rows['a_calm.png']['disagreement'], rows['b_torn.png']['disagreement']) == (0.0, 0.6)
    assert [r['file'] for _, r in ranked(tmp_path/'labels')] == ['b_torn.png', 'a_calm.png']

def test_keys_and_clicks_arrive_through_ipyevents(folder):
    "Key and click messages, as the browser sends them to ipyevents, accept, skip, reject and fix the open image."
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    send = lambda ev, **e: ev._handle_mouse_msg(None, e, None)
    click = lambda **e: [send(p._mouse, type=t, **e) for t in ('mousedown', 'mouseup')]
    assert (p._keys.source, p._keys.watched_events, p._mouse.watched_events) == \
        (p.big, ['keydown'], ['mousedown', 'mouseup'])
    first = 'scene_00.png'
    p.open_image(first)
    send(p._keys, type='keydown', key='a')
    assert rows_of(labels)[first]['reviewed'] == 'accepted' and p.current != first
    second = p.current
    send(p._keys, type='keydown', key='r', ctrlKey=True)                   # a browser shortcut: left alone
    send(p._keys, type='keydown', key='ArrowDown')
    assert 'reviewed' not in rows_of(labels)[second] and p.current != second
    send(p._keys, type='keydown', key='p')
    send(p._keys, type='keydown', key='r')
    assert (rows_of(labels)[second]['reviewed'], rows_of(labels)[second]['status']) == ('rejected', 'absent')
    spoil(labels, 'scene_02.png', (70, 56))
    p.open_image('scene_02.png')
    x, y = centre(truth['scene_02.png'])
    click(dataX=(x + 0.5) / p._scale, dataY=(y + 0.5) / p._scale)
    click(dataX=1 / p._scale, dataY=1 / p._scale, shiftKey=True)
    assert (p.points, p.labels) == ([(x + 0.5, y + 0.5), (1.5, 1.5)], [1, 0])
    send(p._keys, type='keydown', key='f')
    r = rows_of(labels)['scene_02.png']
    assert r['reviewed'] == 'fixed' and iou(load_mask(labels/'masks'/'scene_02.png'), truth['scene_02.png']) > 0.9

def test_a_drag_on_the_image_draws_the_box_that_fixes(folder):
    "Press at one corner of the object's box, release at the other: the box is set, shown, and answers the fix."
    images, labels, truth = folder
    p = ReviewPanel(labels, images, labeller=seed_labeller())
    spoil(labels, 'scene_01.png', (48, 64))
    p.open_image('scene_01.png')
    ys, xs = np.nonzero(truth['scene_01.png'])
    down = dict(type='mousedown', dataX=xs.min() / p._scale, dataY=ys.min() / p._scale)
    up = dict(type='mouseup', dataX=(xs.max() + 1) / p._scale, dataY=(ys.max() + 1) / p._scale)
    assert p.on_mouse(up) is None and p.box is None                        # a release without a press: nothing
    for e in (down, up): p._mouse._handle_mouse_msg(None, e, None)
    assert p.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) and p.points == []
    assert p.box_text.value == f"{xs.min()} {ys.min()} {xs.max() + 1} {ys.max() + 1}"
    p.on_key(dict(type='keydown', key='f'))
    assert rows_of(labels)['scene_01.png']['reviewed'] == 'fixed'
    assert iou(load_mask(labels/'masks'/'scene_01.png'), truth['scene_01.png']) > 0.9
