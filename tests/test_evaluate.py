"Evaluation: known answers, clear failures, and the all-foreground baseline of the pets data."
import json
import numpy as np
import pytest
from PIL import Image
from conftest import segwl
from segwl.data import save_mask, list_images, load_mask
from segwl.evaluate import evaluate_folder, EvaluationError, image_metrics, boundary_iou, summary_line, overlay

TINY = {'segmenter': {'name': 'sam-vit_b', 'kind': 'segmenter', 'weights': 'tiny-random'},
        'scorer': {'name': 'clip-vit-b32', 'kind': 'scorer', 'weights': 'real'}}

@pytest.fixture
def folders(tmp_path):
    gt = np.zeros((12, 16), bool)
    gt[2:8, 3:11] = True                                                # 48 pixels
    for d in ('gt', 'pred', 'ign'): (tmp_path/d).mkdir()
    ign = np.zeros_like(gt)
    ign[8:10] = True                                      # the two rows only the shifted prediction covers
    for name, g, p, i in [('a', gt, np.roll(gt, 2, axis=0), ign), ('b', gt, gt, np.zeros_like(gt))]:
        save_mask(g, tmp_path/'gt'/f'{name}.png')
        save_mask(p, tmp_path/'pred'/f'{name}.png')
        save_mask(i, tmp_path/'ign'/f'{name}.png')
    return tmp_path

def test_known_answers_with_and_without_ignore(folders):
    m = evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', progress=False, figures=False)
    assert m['mean_iou'] == pytest.approx((32/64 + 1) / 2) and m['dataset_iou'] == pytest.approx(80/112)
    assert m['precision'] == pytest.approx(80/96) and m['recall'] == pytest.approx(80/96) and not m['ignore_used']
    m = evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', ignore_dir=folders/'ign', progress=False,
                        figures=False)
    assert m['mean_iou'] == pytest.approx((32/48 + 1) / 2) and m['ignore_used']
    assert m['precision'] == pytest.approx(1.0)                          # the ignored rows held every false positive
    # all-foreground: 48 truth pixels of 192 (a: 160 scored, the ignored rows left out): IoU 48/160 and 48/192
    assert m['baseline_all_foreground'] == pytest.approx(dict(mean_iou=(48/160 + 48/192) / 2,
                                                              dice=(96/208 + 96/240) / 2))

def test_baseline_says_below_doing_nothing(tmp_path):
    "A prediction worse than calling everything object reads so, in metrics.json and in the summary line."
    gt = np.zeros((10, 10), bool)
    gt[:, :6] = True                                                    # 60% object: all-foreground IoU 0.6
    pred = np.zeros_like(gt)
    pred[:, :3] = True                                                  # IoU 0.5
    save_mask(gt, tmp_path/'gt'/'a.png')
    save_mask(pred, tmp_path/'pred'/'a.png')
    m = evaluate_folder(tmp_path/'gt', tmp_path/'r', pred_dir=tmp_path/'pred', progress=False, figures=False)
    saved = json.loads((tmp_path/'r'/'metrics.json').read_text())
    assert m['mean_iou'] == 0.5 and saved['baseline_all_foreground'] == pytest.approx(dict(mean_iou=0.6, dice=0.75))
    assert summary_line(m).startswith('mean IoU 0.5000 (all-foreground 0.6000: below doing nothing), ')
    assert 'TINY' not in summary_line(m)
    assert (saved['tiny_random'], saved['models']) == (False, dict(labels=None, model=None))

def test_tiny_random_labels_stamp_metrics_line_and_figures(folders):
    "Masks from a tiny-random labelling run: metrics.json records the backends, the line and titles are stamped."
    (folders/'config.json').write_text(json.dumps({'models': TINY, 'text': 'a box'}))   # beside pred/, as label does
    m = evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', progress=False)
    saved = json.loads((folders/'r'/'metrics.json').read_text())
    assert (saved['models']['labels'], saved['tiny_random']) == (TINY, True)
    assert saved['warning'].startswith('TINY RANDOM MODELS: meaningless')
    assert summary_line(m).endswith(' [TINY RANDOM MODELS: meaningless]')

def test_a_model_trained_on_tiny_random_labels_is_stamped(folders, tmp_path):
    "Through a model: its model.json's labels_models reach metrics.json, by CLI too."
    import torch
    from segwl.finetune import synthetic_dataset, train, TrainSettings
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=3)
    (tmp_path/'syn'/'config.json').write_text(json.dumps({'models': TINY}))
    torch.set_num_threads(1)
    train(imgs, msks, tmp_path/'model', TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2,
                                                     val_fraction=0, pretrained=False, device='cpu'),
          progress=False, log=print)
    r = segwl('evaluate', '--model', tmp_path/'model', '--images', imgs, '--masks', msks, '--out', tmp_path/'rep',
              '--device', 'cpu', '--quiet', check_rc=0)
    saved = json.loads((tmp_path/'rep'/'metrics.json').read_text())
    assert (saved['models']['model']['arch'], saved['models']['labels'], saved['tiny_random']) == \
        ('tiny-unet', TINY, True)
    assert 'mean IoU' in r.stdout

def test_masks_of_segwl_predict_name_the_model(folders, tmp_path):
    "A --pred folder written by segwl predict: its config.json names the model, whose labels are followed."
    from segwl.finetune import synthetic_dataset, train, TrainSettings, predict_folder
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=2)
    (tmp_path/'syn'/'config.json').write_text(json.dumps({'models': TINY}))
    train(imgs, msks, tmp_path/'model', TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2,
                                                     val_fraction=0, pretrained=False, device='cpu'),
          progress=False, log=print)
    predict_folder(tmp_path/'model', imgs, tmp_path/'pred', device='cpu', progress=False)
    m = evaluate_folder(msks, tmp_path/'r', pred_dir=tmp_path/'pred'/'masks', progress=False, figures=False)
    assert (m['models']['model']['dir'], m['tiny_random']) == (str(tmp_path/'model'), True)

def test_overlay_draws_outlines_not_a_fill():
    "The prediction's outline in magenta inside it, the truth's in cyan outside it; the image shows through."
    img = np.full((40, 40, 3), (200, 120, 40), np.uint8)               # ginger
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    o = overlay(img, gt, gt)
    assert o[10, 20].tolist() == [255, 0, 255] and o[9, 20].tolist() == [0, 255, 255]
    assert o[20, 20].tolist() == [200, 120, 40] and o[0, 0].tolist() == [200, 120, 40]   # inside and far: untouched

def test_boundary_iou_notices_a_sloppy_outline_that_iou_forgives():
    gt, pred = np.zeros((100, 100), bool), np.zeros((100, 100), bool)
    gt[10:90, 10:90] = True
    pred[13:87, 13:87] = True                                           # 3 px too small all round
    m = image_metrics(pred, gt)
    assert m['iou'] == pytest.approx(74**2 / 80**2) and m['boundary_iou'] == 0.0
    # by hand, d = round(0.02 * hypot(100, 100)) = 3: bands are 80^2 - 74^2 and 74^2 - 68^2 pixels, and disjoint
    assert boundary_iou(pred, gt) == 0.0

def test_missing_ignore_and_unreadable_prediction_are_named(folders):
    (folders/'ign'/'b.png').unlink()
    with pytest.raises(EvaluationError, match=r'no ignore mask for 1 .*b\.png'):
        evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', ignore_dir=folders/'ign',
                        progress=False)
    (folders/'pred'/'a.png').write_bytes(b'garbage')
    with pytest.raises(EvaluationError, match=r'pred/a\.png'):
        evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', progress=False)

def test_cli_evaluate_pred_and_usage(folders):
    r = segwl('evaluate', '--pred', folders/'pred', '--masks', folders/'gt', '--out', folders/'rep', '--quiet')
    assert r.returncode == 0 and 'mean IoU 0.7500' in r.stdout, r.stderr
    png = Image.open(folders/'rep'/'best_worst.png')
    assert png.size == (288, 603)                                   # 2 images: best 1 above, worst 1 below
    assert sorted(p.name for p in (folders/'rep').iterdir()) == ['best_worst.png', 'iou_histogram.png',
                                                                 'metrics.json', 'per_image.csv']
    r = segwl('evaluate', '--model', folders, '--masks', folders/'gt', '--out', folders/'rep2')
    assert r.returncode == 2 and 'needs --images' in r.stderr
    r = segwl('evaluate', '--masks', folders/'gt', '--out', folders/'rep2')
    assert r.returncode == 2 and 'one of the arguments --model --pred is required' in r.stderr

def test_all_foreground_baseline_on_pets(pets_cat, tmp_path):
    "The README's baseline: predicting every pixel as cat scores a mean IoU of 0.457 on the pets test split."
    for m in list_images(pets_cat/'test'/'masks'): save_mask(np.ones(load_mask(m).shape), tmp_path/'all'/m.name)
    m = evaluate_folder(pets_cat/'test'/'masks', tmp_path/'r', pred_dir=tmp_path/'all', progress=False,
                        figures=False)
    assert (m['n_images'], round(m['mean_iou'], 3), m['recall']) == (40, 0.457, 1.0)
    assert m['baseline_all_foreground']['mean_iou'] == pytest.approx(m['mean_iou'])   # the baseline is that very number

def test_problems_are_listed_at_once_and_capped(folders):
    "Every missing prediction is named in one error, and a thousand of them make one line, not a page."
    for i in range(30): save_mask(np.zeros((12, 16), bool), folders/'gt'/f'x{i:02d}.png')
    with pytest.raises(EvaluationError, match=r'no predicted mask for 30 ground-truth mask\(s\): x00.png, .*x09.png '
                                              r'\.\.\. \(\+20 more\)'):
        evaluate_folder(folders/'gt', folders/'r', pred_dir=folders/'pred', progress=False)

def test_report_folder_is_locked_while_written(folders):
    "A second evaluation into a report folder that another process is writing is refused, naming that process."
    import subprocess, sys
    code = ("from segwl.data import output_lock\nimport sys, time\nwith output_lock(sys.argv[1], 'segwl evaluate'):\n"
            "    print('held', flush=True)\n    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, '-c', code, str(folders/'rep')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        r = segwl('evaluate', '--pred', folders/'pred', '--masks', folders/'gt', '--out', folders/'rep', '--quiet')
    finally: holder.kill()
    assert r.returncode == 2 and f"(pid {holder.pid}, segwl evaluate)" in r.stderr, r.stderr
