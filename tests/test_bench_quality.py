"bench/bench_quality.py: its arguments, its table, its skip, and its scoring on stand-ins with known answers."
import pytest
from PIL import Image
from segwl.data import save_mask
from segwl.testing import concept_scene


@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_quality')


def test_arguments(bench):
    a = bench.parse([])
    assert (a.datasets, a.models, a.limit, a.sam2, a.only, a.json, a.packing) == (
        ['pets-cat', 'pets-dog'], 'real', None, 'sam2.1-base-plus', None, None, [1, 3])
    a = bench.parse(['--models', 'tiny-random', '--limit', '4', '--datasets', 'pets-dog, x', '--sam2', 'sam2.1-tiny'])
    assert (a.models, a.limit, a.datasets, a.sam2) == ('tiny-random', 4, ['pets-dog', 'x'], 'sam2.1-tiny')
    assert bench.parse(['--packing', '2']).packing == [2]
    for bad in (['--limit', '0'], ['--models', 'huge'], ['--packing', '0'], ['--packing', '9'], ['--packing', 'x']):
        with pytest.raises(SystemExit): bench.parse(bad)


def test_rows(bench):
    assert [r.label for r in bench.rows('sam2.1-tiny')] == [
        'seed | sam-vit_b + clip | yes | 1 | 1', 'seed | sam2.1-tiny + clip | yes | 1 | 1',
        'canvas | sam3 | yes | 1 | 1', 'canvas | sam3 | no | 1 | 1', 'canvas | sam3 | yes | 3 | 1',
        'canvas | sam3 | no | 3 | 1']
    assert [r.label for r in bench.rows('sam2.1-tiny', (1, 3))][:3] == [
        'seed | sam-vit_b + clip | yes | 1 | 1', 'seed | sam-vit_b + clip | yes | 1 | 3',
        'seed | sam2.1-tiny + clip | yes | 1 | 1']


def test_table_format(bench):
    seed, canvas = bench.Row('seed', 'sam-vit_b', True, 1, 'clip'), bench.Row('canvas', 'sam3', False, 3)
    res = [dict(dataset='pets-cat', row=seed, images=56, mean_iou=0.81234, absent_rate=0.0, s_per_image=1.5),
           dict(dataset='pets-cat', row=seed._replace(targets=3), images=56, mean_iou=0.8, absent_rate=0.0,
                s_per_image=0.55),
           dict(dataset='pets-cat', row=canvas, images=56, mean_iou=0.9, absent_rate=2 / 56, s_per_image=0.25),
           dict(dataset='pets-dog', row=canvas, error='Sam3Error: gated')]
    lines = bench.table(res).splitlines()
    assert lines[:6] == bench.HEADER + [
        '| pets-cat | seed | sam-vit_b + clip | yes | 1 | 1 | 56 | 0.812 | 0% | 1.50 | — |',
        '| pets-cat | seed | sam-vit_b + clip | yes | 1 | 3 | 56 | 0.800 | 0% | 0.55 | -0.012 |',
        '| pets-cat | canvas | sam3 | no | 3 | 1 | 56 | 0.900 | 4% | 0.25 | — |',
        '| pets-dog | canvas | sam3 | no | 3 | 1 | — | not run: Sam3Error: gated | — | — | — |']
    assert all(line.count('|') == 12 for line in lines[:6])
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


def test_packing_changes_nothing_with_stand_ins(bench, scenes):
    "Three targets a canvas against one, on the same images: the stand-ins' answers are the same up to the edges."
    from conftest import same_up_to_edge
    from segwl.data import load_mask
    data = bench.find_data(scenes)
    truths = [load_mask(m) for _, m in data['unlabeled'][bench.N_EXTRA:]]
    models = bench.Models(random=False, device='cpu')
    for row in (bench.Row('seed', 'colour-segmenter', True, 1, 'colour-scorer'),
                bench.Row('canvas', 'colour-concept', False, 1)):
        one, three = [bench.score_row(row._replace(targets=n), models, data, 'red', limit=None, log=lambda *a: None,
                                      masks=True) for n in (1, 3)]
        assert one['images'] == three['images'] == 3 and one['absent_rate'] == three['absent_rate'] == 0.0
        assert one['ious'] == [1.0] * 3                                       # one a canvas: exact
        assert all(same_up_to_edge(a, b, t) for a, b, t in zip(three['masks'], one['masks'], truths))
        assert bench.against_one(dict(three, dataset='d', row=row._replace(targets=3)),
                                 [dict(one, dataset='d', row=row)]) == f"{three['mean_iou'] - 1:+.3f}"
