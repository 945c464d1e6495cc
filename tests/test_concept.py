"The canvas method: known answers with the colour stand-in, the keeping rules, and tiny SAM 3 / SAM 2.1 over a folder."
import json
from collections import deque
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import iou
from segwl.canvas import CanvasLabeller, CanvasSettings, CanvasResult, connected_parts, part_boxes
from segwl.data import BadReferenceError, SegwlError, load_mask
from segwl.folder import label_folder, read_manifest
from segwl.protocols import LabelResult, Labeller
from segwl.testing import ColourConcept, concept_scene

torch.set_num_threads(1)
ONE = [concept_scene((150, 110), 1, seed=1)[:2]]                                  # portrait
THREE = [concept_scene((120, 260), 1, seed=2)[:2], concept_scene((300, 90), 1, seed=3)[:2],
         concept_scene((70, 70), 1, seed=4)[:2]]                                  # wide, tall, small square


def _bfs_parts(m):
    "4-connected parts by breadth-first search: an independent answer for `connected_parts`."
    lab, n = np.zeros(m.shape, int), 0
    for r, c in zip(*np.nonzero(m)):
        if lab[r, c]: continue
        n += 1
        lab[r, c] = n
        q = deque([(r, c)])
        while q:
            y, x = q.popleft()
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < m.shape[0] and 0 <= xx < m.shape[1] and m[yy, xx] and not lab[yy, xx]:
                    lab[yy, xx] = n
                    q.append((yy, xx))
    return lab, n


@pytest.mark.parametrize('density', [0.3, 0.5, 0.6])
def test_connected_parts_match_a_search(density):
    m = np.random.default_rng(int(density * 10)).random((60, 80)) < density
    got, n = connected_parts(m)
    want, k = _bfs_parts(m)
    assert n == k and (got == want).all()         # both number parts in raster order of their first pixel


@pytest.mark.parametrize('refs', [ONE, THREE], ids=['1 reference', '3 references'])
@pytest.mark.parametrize('layout', ['auto', 'left', 'top'])
@pytest.mark.parametrize('hw', [(180, 240), (260, 140)], ids=['wide', 'tall'])
def test_counts_and_union_among_lookalikes(refs, layout, hw):
    seg = ColourConcept()
    lab = CanvasLabeller(refs, None, seg, layout=layout)
    for n in range(4):
        im, truth, parts = concept_scene(hw, n, seed=20 + n)
        res = lab.label(im)
        assert isinstance(res, LabelResult) and isinstance(res, CanvasResult) and isinstance(lab, Labeller)
        assert (len(res.instances), res.present, res.mask.shape) == (n, n > 0, hw)
        assert iou(res.mask, truth) >= 0.95
        for inst in res.instances:                             # each instance is one of the true objects
            assert max(iou(inst.mask, p) for p in parts) >= 0.95 and 0 <= inst.score <= 1
        if n == 0: assert not res.mask.any() and res.score == 0.0
    assert seg.set_image_calls == seg.segment_calls == 4
    assert seg.texts == [None] * 4


def test_one_box_per_part():
    im, m, parts = concept_scene((200, 200), 2, seed=5, lookalikes=1)
    assert len(part_boxes(m)) == 1 and len(part_boxes(m, per_part=True)) == 2
    lab = CanvasLabeller([(im, m)], 'red', ColourConcept(), box_per_part=True)
    target, truth, _ = concept_scene((160, 200), 3, seed=6)
    res = lab.label(target)
    assert len(res.exemplars) == 2 and len(res.instances) == 3 and iou(res.mask, truth) >= 0.95


def test_large_targets_are_labelled_shrunk_and_mapped_back():
    im, truth, _ = concept_scene((900, 1500), 2, seed=7)
    res = CanvasLabeller(THREE, None, ColourConcept(), max_side=600).label(im)
    assert res.layout.target.hw == (360, 600) and res.mask.shape == (900, 1500)
    assert len(res.instances) == 2 and all(i.mask.shape == (900, 1500) for i in res.instances)
    assert iou(res.mask, truth) >= 0.95


def test_min_instance_score_makes_absent_and_keeps_the_best_score():
    im, _, _ = concept_scene((180, 240), 2, seed=8)
    res = CanvasLabeller(ONE, None, ColourConcept(), min_instance_score=0.99).label(im)
    assert not res.present and not res.mask.any() and res.instances == []
    assert 0.9 < res.score < 0.99                              # the best instance found, under the bar


class Scripted:
    "A concept segmenter that answers given canvas masks and scores, whatever the canvas."
    def __init__(self, boxes_to_masks): self.make, self.canvas = boxes_to_masks, None
    def set_image(self, image): self.canvas = image
    def segment(self, text, boxes, labels): return self.make(self.canvas.shape[:2], boxes)


def test_keeping_rules():
    def answer(hw, boxes):
        m = np.zeros((5, *hw), bool)
        x0, y0, x1, y1 = boxes[0].astype(int)
        m[0, y0:y1, x0:x1] = True                                       # the reference's own object
        m[1, 5:25, -40:-10] = True                                      # an object in the target
        m[2, 6:25, -40:-10] = True                                      # its duplicate, IoU 0.95
        m[3, :, :] = True                                               # the whole canvas: mostly the target
        m[4, 30:40, -40:-30] = True                                     # a weak one
        return m, np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    lab = CanvasLabeller(ONE, 'x', Scripted(answer), layout='left')
    im = concept_scene((100, 200), 0, seed=9)[0]
    res = lab.label(im)
    share = res.layout.target_share
    assert share > 0.5
    assert [i.score for i in res.instances] == [0.8, 0.6]             # own object, duplicate and weak one dropped
    assert res.instances[1].mask.all()                                 # the whole-canvas mask, cropped to the target
    res = CanvasLabeller(ONE, 'x', Scripted(answer), layout='left', min_inside=min(1, share + 0.01)).label(im)
    assert [i.score for i in res.instances] == [0.8]
    res = CanvasLabeller(ONE, 'x', Scripted(answer), layout='left', max_overlap=1.0, min_instance_score=0.0).label(im)
    assert [i.score for i in res.instances] == [0.8, 0.7, 0.6, 0.3]


def test_bad_inputs_are_named():
    seg = ColourConcept()
    with pytest.raises(BadReferenceError, match='give 1 to 5'): CanvasLabeller([], None, seg)
    with pytest.raises(BadReferenceError, match='reference 2 mask'):
        CanvasLabeller([ONE[0], (THREE[0][0], np.zeros(THREE[0][1].shape, bool))], None, seg)
    with pytest.raises(BadReferenceError, match='reference 1: expected an'): CanvasLabeller([ONE[0][0]], None, seg)
    with pytest.raises(SegwlError, match='unknown setting'): CanvasLabeller(ONE, None, seg, minscore=1)
    flat = np.zeros((4, 90, 3), np.uint8)
    with pytest.raises(SegwlError, match='too small'): CanvasLabeller(ONE, None, seg).label(flat)
    broken = Scripted(lambda hw, boxes: (np.zeros((2, 10, 10), bool), np.zeros(2)))
    with pytest.raises(SegwlError, match='returned masks'): CanvasLabeller(ONE, None, broken).label(ONE[0][0])
    assert CanvasLabeller(ONE, '  ', seg).text is None


def _scene_folder(folder, counts, hw=(150, 200)):
    folder.mkdir()
    truth = {}
    for i, n in enumerate(counts):
        im, m, _ = concept_scene(hw, n, seed=40 + i)
        Image.fromarray(im).save(folder/f'im{i}.png')
        truth[f'im{i}.png'] = m
    return truth


def test_label_folder_with_the_stand_in(tmp_path):
    truth = _scene_folder(tmp_path/'images', [0, 1, 2, 3])
    lab = CanvasLabeller(THREE, 'a red ellipse', ColourConcept(), min_instance_score=0.6)
    n = label_folder(lab, tmp_path/'images', tmp_path/'out', progress=False)
    assert (n['ok'], n['absent'], n['error']) == (3, 1, 0)
    rows = {r['file']: r for r in read_manifest(tmp_path/'out'/'manifest.jsonl')}
    assert rows['im0.png']['status'] == 'absent' and rows['im3.png']['status'] == 'ok'
    for f, m in truth.items(): assert iou(load_mask(tmp_path/'out'/'masks'/f), m) >= 0.95
    cfg = json.loads((tmp_path/'out'/'config.json').read_text())
    assert cfg['settings'] == CanvasSettings(min_instance_score=0.6).to_dict() and cfg['text'] == 'a red ellipse'
    again = label_folder(lab, tmp_path/'images', tmp_path/'out', progress=False)
    assert (again['skipped'], again['ok'] + again['absent']) == (4, 0)


def test_tiny_sam3_through_label_folder(tmp_path):
    from segwl.backends.sam3 import Sam3Segmenter
    _scene_folder(tmp_path/'images', [0, 1, 2], hw=(120, 170))
    seg = Sam3Segmenter.tiny_random()
    calls = []
    seg.model.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    lab = CanvasLabeller(THREE, 'a red ellipse', seg, min_instance_score=0.25)
    n = label_folder(lab, tmp_path/'images', tmp_path/'out', progress=False, config=dict(models=dict(
        concept=dict(name='sam3', weights='tiny-random'))))
    assert n['error'] == 0 and n['ok'] + n['absent'] == 3 and len(calls) == 3          # one vision pass per image
    rows = read_manifest(tmp_path/'out'/'manifest.jsonl')
    for r in rows:
        assert r['status'] in ('ok', 'absent') and (r['status'] == 'absent') == (r['score'] < 0.25)
        assert load_mask(tmp_path/'out'/'masks'/r['file']).shape == (120, 170)
    assert json.loads((tmp_path/'out'/'config.json').read_text())['versions']['transformers'] is not None


def test_tiny_sam2_seed_method_through_label_folder(tmp_path):
    from segwl.backends.sam2 import Sam2Segmenter
    from segwl.seed import SeedLabeller
    from segwl.testing import ColourScorer
    _scene_folder(tmp_path/'images', [1, 2], hw=(120, 170))
    lab = SeedLabeller(*ONE[0], 'a red ellipse', Sam2Segmenter.tiny_random(), ColourScorer(), trials=2)
    n = label_folder(lab, tmp_path/'images', tmp_path/'out', progress=False)
    assert (n['ok'], n['error']) == (2, 0)
    assert [load_mask(p).shape for p in sorted((tmp_path/'out'/'masks').glob('*.png'))] == [(120, 170)] * 2
