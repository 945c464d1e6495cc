"""Several classes end to end (issue 23), with known answers: a synthetic two-class folder (red and blue ellipses and
their look-alikes) through `segwl label --classes` (the colour stand-ins), `train`, `predict`, `evaluate` and
`export`; and the papermill job on the same folder, scoring label maps and training through the same functions."""
import json
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.classes import load_label_map, read_classes_json, save_label_map, write_classes_json
from segwl.testing import CLASS_COLOURS, classes_scene
from conftest import cli, segwl

pycocotools = pytest.importorskip('pycocotools')
from pycocotools.coco import COCO  # noqa: E402

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread

NAMES = ['red', 'blue']
COLOURS = [CLASS_COLOURS[n] for n in NAMES]
HW = (96, 128)
LABEL = ('--method', 'canvas', '--segmenter', 'colour-concept', '--no-progress')
TRAIN = ('--arch', 'tiny-unet', '--no-pretrained', '--size', '64', '--epochs', '40', '--batch-size', '4', '--lr',
         '1e-2', '--val-fraction', '0', '--device', 'cpu', '--quiet')




def two_class_folder(d: Path, n_train: int = 16, n_test: int = 6) -> dict:
    """`refs/classes.json` (one reference per class, paths relative to the file); `train/` and `test/` with images,
    true label maps and classes.json; 0 to 2 objects of each class per image. The parts of every image, by stem."""
    refs = d/'refs'
    refs.mkdir(parents=True)
    entries = []
    for i, n in enumerate(NAMES):
        im, lm, _ = classes_scene(HW, [int(j == i) for j in range(2)], colours=COLOURS, seed=10 + i)
        Image.fromarray(im).save(refs/f'{n}.png')
        Image.fromarray((lm > 0).astype(np.uint8) * 255).save(refs/f'{n}_mask.png')
        entries.append(dict(name=n, text=f'a {n} ellipse', references=[[f'{n}.png', f'{n}_mask.png']]))
    (refs/'classes.json').write_text(json.dumps({'classes': entries}, indent=1))
    rng, parts = np.random.default_rng(0), {}
    for split, n, s0 in (('train', n_train, 100), ('test', n_test, 500)):
        (d/split/'images').mkdir(parents=True)
        write_classes_json(d/split, NAMES)
        for k in range(n):
            im, lm, ps = classes_scene(HW, [int(c) for c in rng.integers(0, 3, 2)], colours=COLOURS, seed=s0 + k)
            Image.fromarray(im).save(d/split/'images'/f'{split}{k}.png')
            save_label_map(lm, d/split/'masks'/f'{split}{k}.png')
            parts[f'{split}{k}'] = ps
    return parts




@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp('chain')
    return d, two_class_folder(d)


@pytest.mark.slow
def test_label_train_predict_evaluate_export(scenes):
    d, parts = scenes
    code, out, err = cli('label', '--classes', d/'refs'/'classes.json', '--images', d/'train'/'images',
                         '--out', d/'labels', *LABEL)
    absent = sum(not ps for stem, ps in parts.items() if stem.startswith('train'))
    assert code == 0 and f"{16 - absent} labelled, {absent} absent, 0 failed" in out, out + err
    assert [c['name'] for c in read_classes_json(d/'labels')] == NAMES
    for p in sorted((d/'train'/'masks').iterdir()):                      # the stand-ins' answers are exact
        np.testing.assert_array_equal(load_label_map(d/'labels'/'masks'/p.name, 2), load_label_map(p, 2))
    code, out, err = cli('evaluate', '--pred', d/'labels'/'masks', '--masks', d/'train'/'masks', '--out', d/'lq',
                         '--quiet')
    assert code == 0 and out.startswith('mIoU 1.0000 (majority class background 0.0000)'), out + err

    code, out, err = cli('train', '--images', d/'train'/'images', '--masks', d/'labels'/'masks', '--manifest',
                         d/'labels'/'manifest.jsonl', '--out', d/'model', *TRAIN)
    assert code == 0, out + err
    assert json.loads((d/'model'/'model.json').read_text())['classes'] == read_classes_json(d/'labels')

    code, out, err = cli('predict', '--model', d/'model', '--images', d/'test'/'images', '--out', d/'pred',
                         '--device', 'cpu', '--quiet')
    assert code == 0 and '6 masks written' in out, out + err
    assert read_classes_json(d/'pred') == read_classes_json(d/'labels')
    code, out, err = cli('evaluate', '--model', d/'model', '--images', d/'test'/'images', '--masks',
                         d/'test'/'masks', '--out', d/'report', '--device', 'cpu', '--quiet')
    assert code == 0, out + err
    m = json.loads((d/'report'/'metrics.json').read_text())
    # measured on this machine: mIoU 0.495 (red 0.414, blue 0.576) against the majority class's 0.0
    base = m['baseline_majority']
    assert (base['class'], base['miou']) == ('background', 0.0)
    assert m['miou'] > base['miou'] + 0.35, m
    assert all(v['iou'] > 0.25 for v in m['per_class'].values()), m['per_class']
    cm = np.array(m['confusion'], float)
    assert cm[1, 2] + cm[2, 1] < 0.05 * (cm[1].sum() + cm[2].sum())      # red and blue are not taken for each other
    code, out, err = cli('evaluate', '--pred', d/'pred'/'masks', '--masks', d/'test'/'masks', '--out', d/'report2',
                         '--quiet')
    assert code == 0 and json.loads((d/'report2'/'metrics.json').read_text())['miou'] == pytest.approx(m['miou'])

    code, out, err = cli('export', d/'labels', '--format', 'coco', '--out', d/'coco')
    assert code == 0, out + err
    coco = COCO(str(d/'coco'/'annotations.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == NAMES
    imgs = coco.loadImgs(coco.getImgIds())
    assert len(imgs) == 16 - absent
    for img in imgs:
        truth = load_label_map(d/'train'/'masks'/f"{Path(img['file_name']).stem}.png", 2)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
        got = np.zeros_like(truth)
        for a in anns: got[coco.annToMask(a).astype(bool)] = a['category_id']
        np.testing.assert_array_equal(got, truth)                           # every pixel in its class
        assert sorted(a['category_id'] for a in anns) == sorted(k for k, _ in parts[Path(img['file_name']).stem])
    code, out, err = cli('export', d/'labels', '--format', 'yolo', '--out', d/'yolo')
    assert code == 0, out + err
    assert 'names:\n  0: "red"\n  1: "blue"\n' in (d/'yolo'/'data.yaml').read_text()
    for p in sorted((d/'yolo'/'labels').glob('*.txt')):
        ids = sorted(int(line.split()[0]) for line in p.read_text().splitlines())
        assert ids == sorted(k - 1 for k, _ in parts[p.stem]), p.name      # one line per object, ids from 0


@pytest.mark.slow
def test_job_scores_label_maps_and_trains_as_the_cli(scenes, tmp_path):
    "The job on the same folder: label maps scored against the true ones, and a model of the two classes evaluated."
    d, _ = scenes
    r = segwl('run-notebook', 'pipeline', 'ran.ipynb', '--no-progress', '-p', 'classes', 'refs/classes.json',
              '-p', 'method', 'canvas', '-p', 'segmenter', 'colour-concept', '-p', 'images', 'train/images',
              '-p', 'out', 'job', '-p', 'device', 'cpu', '-p', 'epochs', '3', '-p', 'max_minutes', '5',
              '-p', 'test_images', 'test/images', '-p', 'test_masks', 'test/masks', cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    m = json.loads((d/'job'/'metrics.json').read_text())
    assert m['classes'] == NAMES and m['failed'] == 0
    q = m['label_quality']                                   # label_masks 'auto': train/masks, label maps
    assert (q['miou'], q['n_images'], set(q['per_class'])) == (1.0, 16, set(NAMES))
    assert m['train']['epochs'] == 3 and m['test']['n_images'] == 6 and set(m['test']['per_class']) == set(NAMES)
    info = json.loads((d/'job'/'model'/'model.json').read_text())
    assert (info['channels'], [c['name'] for c in info['classes']]) == (3, NAMES)
    code, out, err = cli('evaluate', '--model', d/'job'/'model', '--images', d/'test'/'images', '--masks',
                         d/'test'/'masks', '--out', tmp_path/'again', '--device', 'cpu', '--quiet')
    assert code == 0, out + err                              # the CLI scores the job's model as the job did
    again = json.loads((tmp_path/'again'/'metrics.json').read_text())
    assert again['miou'] == pytest.approx(m['test']['miou']) and again['per_class'] == m['test']['per_class']
    cfg = json.loads((d/'job'/'labels'/'config.json').read_text())
    assert [c['name'] for c in cfg['classes']] == NAMES
    (d/'binary').mkdir()
    Image.fromarray(np.zeros(HW, np.uint8)).save(d/'binary'/'test0.png')
    r = segwl('run-notebook', 'pipeline', 'bad.ipynb', '--no-progress', '-p', 'classes', 'refs/classes.json',
              '-p', 'method', 'canvas', '-p', 'segmenter', 'colour-concept', '-p', 'images', 'train/images',
              '-p', 'out', 'job2', '-p', 'test_images', 'test/images', '-p', 'test_masks', 'binary', cwd=d)
    assert r.returncode == 2, r.stdout + r.stderr[-3000:]     # refused before any labelling
    assert 'parameter test_masks: binary holds single-class 0/255 masks' in r.stderr, r.stderr[-2000:]
    assert not (d/'job2').exists()
