"bench/bench_quality.py: its arguments, its table, its skip, and its scoring on stand-ins with known answers."
import pytest
from PIL import Image
from segwl.data import save_mask
from segwl.testing import concept_scene


@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_quality')


def test_arguments(bench):
    a = bench.parse([])
    assert (a.datasets, a.models, a.limit, a.sam2, a.only, a.json) == (['pets-cat', 'pets-dog'], 'real', None,
                                                                       'sam2.1-base-plus', None, None)
    a = bench.parse(['--models', 'tiny-random', '--limit', '4', '--datasets', 'pets-dog, x', '--sam2', 'sam2.1-tiny'])
    assert (a.models, a.limit, a.datasets, a.sam2) == ('tiny-random', 4, ['pets-dog', 'x'], 'sam2.1-tiny')
    for bad in (['--limit', '0'], ['--models', 'huge']):
        with pytest.raises(SystemExit): bench.parse(bad)


def test_rows(bench):
    assert [r.label for r in bench.rows('sam2.1-tiny')] == [
        'seed | sam-vit_b + clip | yes | 1', 'seed | sam2.1-tiny + clip | yes | 1', 'canvas | sam3 | yes | 1',
        'canvas | sam3 | no | 1', 'canvas | sam3 | yes | 3', 'canvas | sam3 | no | 3']


def test_table_format(bench):
    seed, canvas = bench.Row('seed', 'sam-vit_b', True, 1, 'clip'), bench.Row('canvas', 'sam3', False, 3)
    res = [dict(dataset='pets-cat', row=seed, images=56, mean_iou=0.81234, absent_rate=0.0, s_per_image=1.5),
           dict(dataset='pets-cat', row=canvas, images=56, mean_iou=0.9, absent_rate=2 / 56, s_per_image=0.25),
           dict(dataset='pets-dog', row=canvas, error='Sam3Error: gated')]
    lines = bench.table(res).splitlines()
    assert lines[:5] == bench.HEADER + [
        '| pets-cat | seed | sam-vit_b + clip | yes | 1 | 56 | 0.812 | 0% | 1.50 |',
        '| pets-cat | canvas | sam3 | no | 3 | 56 | 0.900 | 4% | 0.25 |',
        '| pets-dog | canvas | sam3 | no | 3 | — | not run: Sam3Error: gated | — | — |']
    assert all(line.count('|') == 10 for line in lines[:5])
    assert bench.MEANINGLESS not in bench.table(res) and f"**{bench.MEANINGLESS}**" in bench.table(res, tiny=True)


def test_missing_data_skips(bench, tmp_path, capsys):
    assert bench.main(['--data', str(tmp_path), '--models', 'tiny-random']) == 0
    err = capsys.readouterr().err
    assert 'skipped pets-cat: no dataset at' in err and 'skipped pets-dog' in err and 'nothing to run' in err
    assert 'meaningless' in err


@pytest.fixture
def scenes(tmp_path):
    "A dataset in segwl's layout from synthetic scenes: one red ellipse per image, no look-alikes."
    d = tmp_path/'red'
    for sub in ('reference', 'unlabeled/images', 'unlabeled/masks'): (d/sub).mkdir(parents=True)
    img, mask, _ = concept_scene((150, 110), 1, seed=1)
    Image.fromarray(img).save(d/'reference'/'ref.jpg', quality=98)
    save_mask(mask, d/'reference'/'ref.png')
    for i, hw in enumerate([(120, 160), (160, 120), (140, 180), (180, 240), (200, 150)]):
        img, mask, _ = concept_scene(hw, 1, seed=20 + i, lookalikes=0)
        Image.fromarray(img).save(d/'unlabeled'/'images'/f'im{i}.png')
        save_mask(mask, d/'unlabeled'/'masks'/f'im{i}.png')
    return d


def test_scoring_with_stand_ins(bench, scenes):
    "The colour stand-ins know the answer: both methods score near 1, nothing absent; a missing backend is a row."
    data = bench.find_data(scenes)
    assert len(data['unlabeled']) == 5 and data['reference'][0].name == 'ref.jpg'
    models = bench.Models(random=False, device='cpu')
    for row in (bench.Row('seed', 'colour-segmenter', True, 1, 'colour-scorer'),
                bench.Row('canvas', 'colour-concept', False, 1), bench.Row('canvas', 'colour-concept', False, 3)):
        r = bench.score_row(row, models, data, 'red', limit=2, log=lambda *a: None)
        assert r['images'] == 2 and r['absent_rate'] == 0.0 and r['s_per_image'] > 0, row
        assert r['mean_iou'] >= 0.9 and min(r['ious']) >= 0.8, (row, r['ious'])
    r = bench.score_row(bench.Row('canvas', 'no-such-backend', True), models, data, 'red', None)
    assert 'no-such-backend' in r['error'] and 'images' not in r
