"Evaluation: known answers, clear failures, and the all-foreground baseline of the pets data."
import numpy as np
import pytest
from conftest import segwl
from segwl.data import save_mask, list_images, load_mask
from segwl.evaluate import evaluate_folder, EvaluationError, image_metrics, boundary_iou

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
    assert sorted(p.name for p in (folders/'rep').iterdir()) == ['.segwl.lock', 'best_worst.png', 'iou_histogram.png',
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
