"`segwl export` of a multi-class labels folder (classes.json, palette label maps): every format names each class."
import json
import xml.etree.ElementTree as ET
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.classes import load_label_map, save_label_map, write_classes_json
from segwl.export import coco_segment, export_labels
from segwl.folder import manifest_row

pycocotools = pytest.importorskip('pycocotools')
from pycocotools.coco import COCO  # noqa: E402

NAMES = ['cat', 'dog']


def _maps(h=40, w=56):
    "Two label maps with known discs: class 1 and class 2 in the first, two class-2 discs and one class 1 in the other."
    yy, xx = np.mgrid[:h, :w]
    disc = lambda cy, cx, r: (yy - cy)**2 + (xx - cx)**2 < r**2
    a = np.zeros((h, w), np.uint8)
    a[disc(12, 12, 8)] = 1
    a[disc(26, 38, 9)] = 2
    b = np.zeros((h, w), np.uint8)
    b[disc(10, 40, 7)] = 2
    b[disc(30, 12, 6)] = 2
    b[disc(28, 40, 8)] = 1
    return dict(one=a, two=b)


@pytest.fixture
def labels(tmp_path):
    "A two-class labels folder as a multi-class `segwl label` leaves it."
    rng = np.random.default_rng(0)
    root, lab = tmp_path/'images', tmp_path/'labels'
    root.mkdir()
    rows = []
    for stem, lm in _maps().items():
        Image.fromarray(rng.integers(0, 255, lm.shape + (3,), dtype=np.uint8)).save(root/f'{stem}.png')
        save_label_map(lm, lab/'masks'/f'{stem}.png')
        rows.append(manifest_row(f'{stem}.png', 'ok', score=0.8))
    (lab/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (lab/'config.json').write_text(json.dumps(dict(images=str(root))))
    write_classes_json(lab, NAMES)
    return lab


def _classes(lab):
    return json.loads((lab/'classes.json').read_text())


def test_coco_has_the_categories_and_decodes_to_the_label_maps(labels, tmp_path):
    s = export_labels(labels, tmp_path/'coco', 'coco', min_area=0)
    assert (s['images'], s['objects']) == (2, 5)
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    assert coco.loadCats(coco.getCatIds()) == [dict(id=1, name='cat', supercategory='cat'),
                                               dict(id=2, name='dog', supercategory='dog')]
    for img in coco.loadImgs(coco.getImgIds()):
        lm = _maps()[Path(img['file_name']).stem]
        got = np.zeros_like(lm)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
            m = coco.annToMask(a).astype(bool)
            assert not got[m].any()                          # instances do not overlap
            got[m] = a['category_id']
        np.testing.assert_array_equal(got, lm)


def test_coco_instances_files_keep_or_derive_the_class(labels, tmp_path):
    lm = _maps()['one']
    (labels/'instances').mkdir()
    (labels/'instances'/'one.json').write_text(json.dumps([      # an older file without category_id, then one with
        {'rle': coco_segment(lm == 2)['segmentation'], 'score': 0.7},
        {'rle': coco_segment(lm == 1)['segmentation'], 'score': 0.6, 'category_id': 1}]))
    export_labels(labels, tmp_path/'coco', 'coco', min_area=0)
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    one = next(i for i in coco.loadImgs(coco.getImgIds()) if i['file_name'] == 'one.png')
    anns = coco.loadAnns(coco.getAnnIds(imgIds=one['id']))
    assert [(a['category_id'], a['score']) for a in anns] == [(2, 0.7), (1, 0.6)]


def test_yolo_lines_carry_class_ids_from_zero_and_data_yaml_the_names(labels, tmp_path):
    s = export_labels(labels, tmp_path/'yolo', 'yolo', min_area=0)
    assert s['objects'] == 5
    ids = {p.stem: sorted(int(line.split()[0]) for line in p.read_text().splitlines())
           for p in (tmp_path/'yolo'/'labels').glob('*.txt')}
    assert ids == dict(one=[0, 1], two=[0, 1, 1])
    yaml = (tmp_path/'yolo'/'data.yaml').read_text()
    assert 'names:\n  0: "cat"\n  1: "dog"\n' in yaml


def test_voc_pngs_carry_the_class_values_and_palette(labels, tmp_path):
    export_labels(labels, tmp_path/'voc', 'voc')
    for stem, lm in _maps().items():
        p = tmp_path/'voc'/'SegmentationClass'/f'{stem}.png'
        np.testing.assert_array_equal(load_label_map(p), lm)
        pal = np.array(Image.open(p).getpalette()[:9]).reshape(3, 3)
        assert pal.tolist() == [[0, 0, 0]] + [e['colour'] for e in _classes(labels)]
    lines = (tmp_path/'voc'/'labelmap.txt').read_text().splitlines()[1:]
    want = ['background:0,0,0::'] + [f"{e['name']}:{','.join(map(str, e['colour']))}::" for e in _classes(labels)]
    assert lines == want


def test_label_studio_config_lists_each_class_and_results_name_theirs(labels, tmp_path):
    s = export_labels(labels, tmp_path/'ls', 'label-studio', min_area=0)
    assert s['objects'] == 5
    root = ET.parse(tmp_path/'ls'/'label_config.xml').getroot()
    assert [lab.get('value') for lab in root.iter('Label')] == NAMES
    tasks = json.loads((tmp_path/'ls'/'tasks.json').read_text())
    got = sorted(r['value']['brushlabels'][0] for t in tasks for r in t['predictions'][0]['result'])
    assert got == ['cat', 'cat', 'dog', 'dog', 'dog']


def test_a_bad_category_id_names_the_file(labels, tmp_path):
    (labels/'instances').mkdir()
    (labels/'instances'/'one.json').write_text(json.dumps([
        {'rle': coco_segment(_maps()['one'] == 2)['segmentation'], 'category_id': 5}]))
    with pytest.warns(Warning, match='category_id 5 is not a class'):
        s = export_labels(labels, tmp_path/'coco', 'coco', min_area=0)
    assert s['left_out'] == dict(unreadable=1)
