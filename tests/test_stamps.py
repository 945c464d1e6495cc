"""Results of backends that are not real weights say so, on every surface: tiny random models and the colour stand-ins
each with their own stamp (issue 25, item 1)."""
import io, json
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import cli as run
from segwl.data import save_mask
from segwl.registry import STAND_IN_STAMP, TINY_STAMP, weights_stamp
from segwl.testing import synthetic_scene, scene_folder

torch.set_num_threads(1)
STAND_INS = ['--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer']
FAST = ['--trials', '2', '--n-object', '3', '--n-background', '3', '--no-progress']




@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    "Four synthetic scenes, their true masks, and a reference of the same kind."
    d = tmp_path_factory.mktemp('stamps')
    truth = scene_folder(d/'images', [(48, 64), (64, 48), (56, 56), (40, 72)], seed=7)
    for p, m in truth.items(): save_mask(m, d/'gt'/f'{p.stem}.png')
    ref, m = synthetic_scene((64, 80), seed=1)
    Image.fromarray(ref).save(d/'ref.png')
    Image.fromarray(m).save(d/'ref_mask.png')
    return d


def test_stand_ins_are_recorded_and_stamped_everywhere(scenes, tmp_path):
    "label, train, evaluate (model and masks), review: the records say stand-in, the outputs carry its stamp."
    d, labels = scenes, tmp_path/'labels'
    code, out, err = run('label', '--reference', d/'ref.png', d/'ref_mask.png', '--text', 'a red ellipse',
                         '--images', d/'images', '--out', labels, *STAND_INS, *FAST)
    assert code == 0, err
    assert out.rstrip().endswith(f'[{STAND_IN_STAMP}]') and 'colour-segmenter, colour-scorer: test stand-ins' in err
    cfg = json.loads((labels/'config.json').read_text())
    assert ({m['weights'] for m in cfg['models'].values()} == {'stand-in'}
            and weights_stamp(cfg['models']) == STAND_IN_STAMP)

    code, out, err = run('train', '--images', d/'images', '--masks', labels/'masks', '--manifest',
                         labels/'manifest.jsonl', '--out', tmp_path/'model', '--arch', 'tiny-unet', '--no-pretrained',
                         '--size', 32, '--epochs', 1, '--device', 'cpu', '--quiet')
    assert code == 0, err
    assert f'labels made without real weights: {STAND_IN_STAMP}' in out and f'[{STAND_IN_STAMP}]' in out
    info = json.loads((tmp_path/'model'/'model.json').read_text())
    assert (info['stamp'], info['tiny_random'], info['labels_models']) == (STAND_IN_STAMP, False, cfg['models'])

    for how, argv in (('model', ['--model', tmp_path/'model', '--images', d/'images']),
                      ('masks', ['--pred', labels/'masks', '--images', d/'images'])):
        code, out, err = run('evaluate', *argv, '--masks', d/'gt', '--out', tmp_path/how, '--device', 'cpu',
                             '--quiet')
        assert code == 0 and f'[{STAND_IN_STAMP}]' in out, (how, out, err)
        m = json.loads((tmp_path/how/'metrics.json').read_text())
        assert (m['stamp'], m['tiny_random'], m['warning'].startswith(STAND_IN_STAMP)) == (STAND_IN_STAMP, False, True)
        assert (tmp_path/how/'best_worst.png').is_file() and (tmp_path/how/'iou_histogram.png').is_file()

    code, out, err = run('review', labels, '--sheet', tmp_path/'sheet.png')     # images: from config.json
    assert code == 0, err
    from segwl.review import _sheet_title, ReviewPanel
    assert _sheet_title(labels, 4, 'all').endswith('\n' + STAND_IN_STAMP.upper())
    banner = ReviewPanel(labels, d/'images').backends.value
    assert STAND_IN_STAMP in banner and 'segmenter <b>colour-segmenter</b> (stand-in)' in banner


def _red_band(jpeg: bytes) -> bool:
    "Whether the top centre of the panel's figure is the stamp's red band."
    r, g, b = np.asarray(Image.open(io.BytesIO(jpeg)))[8, :].astype(int).T
    return bool(((r > 150) & (g < 90) & (b < 90)).mean() > 0.1)


def test_tuning_panel_stamps_stand_ins_and_keeps_the_trial_titles(scenes):
    "The banner and the figure say stand-in; the figure grows by the band, so the trials' titles stay readable."
    from segwl.panels import TuningPanel, render_result
    from segwl.seed import SeedSettings
    d = scenes
    p = TuningPanel.from_names(d/'ref.png', d/'ref_mask.png', 'a red ellipse', d/'images', segmenter='colour-segmenter',
                               scorer='colour-scorer', settings=SeedSettings(trials=2))
    assert p.error is None and STAND_IN_STAMP in p.backends.value and TINY_STAMP not in p.backends.value
    assert _red_band(p.view.value)
    plain = render_result(p.reference, p.reference_mask, p.target, p.result, p.candidates)
    stamped = render_result(p.reference, p.reference_mask, p.target, p.result, p.candidates, stamp=STAND_IN_STAMP)
    (w0, h0), (w1, h1) = Image.open(io.BytesIO(plain)).size, Image.open(io.BytesIO(stamped)).size
    assert (w1, h1 - h0) == (w0, round(0.4 * 72)) and not _red_band(plain)     # a band of its own, over nothing
