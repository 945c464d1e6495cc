"Several classes downstream: train, predict, export and evaluate on label maps (issue 23), a known answer in seconds."
import json, shutil, warnings
import numpy as np
import pytest
import torch
from PIL import Image
from segwl.classes import read_classes_json, load_label_map, save_label_map, is_label_map_folder
from segwl.data import load_mask, load_image
from segwl.evaluate import evaluate_folder
from segwl.export import export_model
from segwl.finetune import TrainSettings, train, load_model, synthetic_dataset
from segwl.trainset import synthetic_classes_dataset
from conftest import cli

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread

TINY_FLAGS = ('--arch', 'tiny-unet', '--no-pretrained', '--device', 'cpu', '--quiet')
quiet = dict(progress=False, log=lambda *a: None)






@pytest.fixture(scope='module')
def two(tmp_path_factory):
    "A two-class training folder, a test folder drawn apart, and the model `segwl train` made of the first."
    d = tmp_path_factory.mktemp('two')
    ti, tm = synthetic_classes_dataset(d/'train', n=24, size=64, seed=1)
    vi, vm = synthetic_classes_dataset(d/'test', n=8, size=64, seed=2)
    torch.set_num_threads(1)
    code, out, err = cli('train', '--images', ti, '--masks', tm, '--out', d/'model', '--size', 64, '--epochs', 6,
                         '--batch-size', 4, '--lr', 3e-3, '--val-fraction', 0, *TINY_FLAGS)
    assert code == 0, out + err
    return dict(dir=d, train=(ti, tm), test=(vi, vm), model=d/'model')


def test_train_records_the_classes(two):
    info = json.loads((two['model']/'model.json').read_text())
    assert (info['channels'], 'threshold' in info) == (3, False)
    assert info['classes'] == read_classes_json(two['dir']/'train')          # names and palette of the labels
    sd = torch.load(two['model']/'best.pt', weights_only=True)
    assert sd['net.segmentation_head.0.weight'].shape[0] == 3                 # background, disc, square
    assert (two['model']/'smp'/'config.json').is_file()


def test_known_answer_beats_the_majority_class(two):
    "train + evaluate on the synthetic discs and squares: far above predicting the background everywhere."
    (vi, vm), rep = two['test'], two['dir']/'report'
    code, out, err = cli('evaluate', '--model', two['model'], '--images', vi, '--masks', vm, '--out', rep,
                         '--device', 'cpu', '--quiet')
    assert code == 0, out + err
    m = json.loads((rep/'metrics.json').read_text())
    base = m['baseline_majority']
    assert base['class'] == 'background' and base['miou'] == 0.0
    assert m['miou'] > base['miou'] + 0.3, m
    assert m['pixel_accuracy'] > base['pixel_accuracy'], m
    assert set(m['per_class']) == {'disc', 'square'}
    assert all(v['iou'] > 0.3 and v['dice'] > 0.45 for v in m['per_class'].values()), m['per_class']
    assert m['miou'] == pytest.approx(np.mean([v['iou'] for v in m['per_class'].values()]))
    assert out.startswith(f"mIoU {m['miou']:.4f} (majority class background 0.0000)")
    cm = np.array(m['confusion'], float)
    share = cm / cm.sum(1, keepdims=True)
    assert cm.shape == (3, 3) and all(share[k, k] == share[k].max() for k in range(3)), share   # a bright diagonal
    assert share[1, 2] < 0.05 and share[2, 1] < 0.05                           # discs and squares not confused
    assert Image.open(rep/'confusion.png').size[0] >= 500
    assert (rep/'best_worst.png').is_file() and is_label_map_folder(rep/'masks')
    lm = load_label_map(rep/'masks'/'im0.png', 2)
    assert lm.shape == load_label_map(vm/'im0.png').shape


def test_predict_writes_label_maps_in_the_palette(two):
    vi, _ = two['test']
    out = two['dir']/'pred'
    code, o, e = cli('predict', '--model', two['model'], '--images', vi, '--out', out, '--device', 'cpu', '--quiet')
    assert code == 0, o + e
    assert read_classes_json(out) == read_classes_json(two['dir']/'train')
    im = Image.open(out/'masks'/'im3.png')
    assert im.mode == 'P' and im.getpalette()[3:9] == [128, 0, 0, 0, 128, 0]
    tm = load_model(two['model'], 'cpu')
    assert np.array_equal(load_label_map(out/'masks'/'im3.png', 2), tm.predict(load_image(vi/'im3.png')))
    row = json.loads((out/'manifest.jsonl').read_text().splitlines()[3])
    assert row['status'] == 'ok' and set(row['classes']) == {'disc', 'square'}
    m = evaluate_folder(two['test'][1], two['dir']/'rep-pred', pred_dir=out/'masks', progress=False, figures=False)
    assert m['miou'] > 0.3                                                     # the same predictions, read back


def test_export_keeps_every_class(two, tmp_path):
    s = export_model(two['model'], 'torchscript', tmp_path/'m.torchscript.pt', n_check=2)
    assert (s['channels'], s['max_abs_diff'] < 1e-5) == (3, True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)                        # torch: TorchScript is deprecated
        m = torch.jit.load(str(tmp_path/'m.torchscript.pt'))
    with torch.no_grad(): p = m(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    assert p.shape == (2, 3, 64, 64) and torch.allclose(p.sum(1), torch.ones(2, 64, 64), atol=1e-5)


def test_evaluate_refuses_a_model_of_other_classes(two, tmp_path):
    vi, vm = two['test']
    gt = tmp_path/'gt'
    shutil.copytree(vm, gt/'masks')
    (gt/'classes.json').write_text('[{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]')
    code, out, err = cli('evaluate', '--model', two['model'], '--images', vi, '--masks', gt/'masks', '--out',
                         tmp_path/'rep', '--quiet')
    assert code == 2 and 'has classes [disc, square]' in err and 'names [cat, dog]' in err, err
    assert not (tmp_path/'rep'/'metrics.json').exists()
    (gt/'classes.json').write_text('[{"id": 1, "name": "square"}, {"id": 2, "name": "disc"}]')   # the same, swapped
    for p in (gt/'masks').iterdir():
        save_label_map(np.array([0, 2, 1], np.uint8)[load_label_map(p)], p)
    m = evaluate_folder(gt/'masks', tmp_path/'rep2', model=two['model'], images_dir=vi, progress=False, figures=False)
    ref = evaluate_folder(vm, tmp_path/'rep3', model=two['model'], images_dir=vi, progress=False, figures=False)
    assert list(m['per_class']) == ['square', 'disc']
    assert m['per_class']['disc'] == ref['per_class']['disc']                 # matched by name, not by id
    assert m['miou'] == pytest.approx(ref['miou'])


def test_one_class_and_several_are_not_compared(two, tmp_path):
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=3)
    code, out, err = cli('evaluate', '--model', two['model'], '--images', imgs, '--masks', msks, '--out',
                         tmp_path/'rep', '--quiet')
    assert code == 2 and 'single-class 0/255 masks' in err, err
    vi, vm = two['test']
    code, out, err = cli('evaluate', '--pred', msks, '--masks', vm, '--out', tmp_path/'rep2', '--quiet')
    assert code == 2 and 'are single-class 0/255 masks' in err and 'names classes [disc, square]' in err, err


def test_train_refuses_ids_above_the_classes(tmp_path):
    ti, tm = synthetic_classes_dataset(tmp_path/'bad', n=4, size=32)
    lm = load_label_map(tm/'im2.png')
    lm[:4, :4] = 3
    save_label_map(lm, tm/'im2.png')
    code, out, err = cli('train', '--images', ti, '--masks', tm, '--out', tmp_path/'model', '--size', 32, '--epochs', 1,
                         '--batch-size', 2, *TINY_FLAGS)
    assert code == 2, out + err
    assert f"label map {tm/'im2.png'}: value(s) 3 above the 2 class(es)" in err, err
    assert not (tmp_path/'model'/'best.pt').exists()


def test_resume_refuses_other_classes(tmp_path):
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=4)
    st = TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2, val_fraction=0, pretrained=False,
                       device='cpu')
    train(imgs, msks, tmp_path/'model', st, **quiet)
    ti, tm = synthetic_classes_dataset(tmp_path/'two', n=4, size=32)
    code, out, err = cli('train', '--images', ti, '--masks', tm, '--out', tmp_path/'model', '--size', 32,
                         '--epochs', 2, '--batch-size', 2, *TINY_FLAGS)
    assert code == 2 and 'holds a run of one class (0/255 masks)' in err and 'classes disc, square' in err, err


def test_one_class_is_unchanged(tmp_path):
    "A folder of 0/255 masks (no classes.json): one channel, a threshold, 0/255 predictions, no classes.json."
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=4)
    st = TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2, val_fraction=0, pretrained=False,
                       device='cpu')
    info = train(imgs, msks, tmp_path/'model', st, **quiet)
    assert (info['channels'], info['threshold'], 'classes' in info) == (1, 0.5, False)
    code, out, err = cli('predict', '--model', tmp_path/'model', '--images', imgs, '--out', tmp_path/'pred',
                         '--device', 'cpu', '--quiet')
    assert code == 0, out + err
    assert not is_label_map_folder(tmp_path/'pred')
    assert set(np.unique(np.asarray(Image.open(tmp_path/'pred'/'masks'/'im0.png'))).tolist()) <= {0, 255}
    assert load_mask(tmp_path/'pred'/'masks'/'im0.png').dtype == bool
    m = evaluate_folder(msks, tmp_path/'rep', model=tmp_path/'model', images_dir=imgs, device='cpu', progress=False,
                        figures=False)
    assert 'mean_iou' in m and 'miou' not in m
