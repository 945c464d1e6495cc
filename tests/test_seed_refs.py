"Issue 13: the seed method with k references (one stitch per reference, the best answer wins), known answers."
import itertools, json
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import segwl, iou
from segwl.pseudolabel import PseudoLabeler
from segwl.folder import read_manifest
from segwl.testing import ColourSegmenter, synthetic_scene

FAST = ['--trials', '2', '--n-object', '3', '--n-background', '3', '--n-text', '2', '--n-text-background', '1',
        '--no-progress', '--device', 'cpu']


@pytest.fixture(scope='module')
def bench(bench_module):
    torch.set_num_threads(1)
    return bench_module('bench_seed_refs')


@pytest.fixture(scope='module')
def looks(bench):
    "References (red 60x200, blue 90x150, red 120x120) and 8 targets, red and blue in turn, of varied sizes."
    return bench.families(8)


def labeller(bench, refs, seg=None, **kw):
    return PseudoLabeler(refs, 'an object', seg or ColourSegmenter(), bench.LooksScorer(window=4, stride=2),
                         trials=4, min_text_score=0.001, **kw)


def pooled_iou(masks, trues) -> float:
    "IoU of all targets together: every intersection over every union."
    return sum((m & t).sum() for m, t in zip(masks, trues)) / sum((m | t).sum() for m, t in zip(masks, trues))


def test_a_second_reference_finds_what_the_first_misses(bench, looks):
    refs, scenes = looks['two looks']
    trues = [m for _, m in scenes]
    one = [labeller(bench, refs[:1]).label(im).mask for im, _ in scenes]
    assert [iou(m, t) for m, t in zip(one, trues)][1::2] == [0.0] * 4          # red reference, blue targets: missed
    assert pooled_iou(one, trues) < 0.6
    seg = ColourSegmenter()
    two = [labeller(bench, refs[:2], seg).label(im) for im, _ in scenes]
    assert pooled_iou([r.mask for r in two], trues) >= 0.95 and min(iou(r.mask, t) for r, t in zip(two, trues)) >= 0.95
    assert all(r.present for r in two)
    assert [r.best_trial // 4 for r in two] == [0, 1] * 4                     # the reference of the target's look won
    assert (seg.set_image_calls, seg.predict_calls) == (2 * 8, 2 * 4 * 8)      # one stitch per reference, 4 trials each
    assert all(len(r.candidate_scores) == 8 for r in two)


def test_references_of_one_look_and_varied_shapes(bench, looks):
    refs, scenes = looks['one look']
    for k in (1, 3):
        masks = [labeller(bench, refs[:k]).label(im).mask for im, _ in scenes]
        assert pooled_iou(masks, [m for _, m in scenes]) == 1.0


def test_the_order_of_the_references_never_matters(bench, looks):
    refs, scenes = looks['two looks']
    results = {order: [labeller(bench, [refs[i] for i in order]).label(im) for im, _ in scenes[:4]]
               for order in itertools.permutations(range(3))}
    first = results[(0, 1, 2)]
    for order, rs in results.items():
        assert all(np.array_equal(r.mask, f.mask) and r.score == f.score and r.present == f.present
                   for r, f in zip(rs, first)), order


class Stripe:
    "A segmenter whose one mask is canvas column 70 to 75 with score 0.9 whatever it is shown: every stitch ties."
    def set_image(self, image): self.hw = image.shape[:2]
    def predict(self, points, labels, multimask=True):
        m = np.zeros((1, *self.hw), bool)
        m[:, :, 70:75] = True
        return m, np.array([0.9])


def test_tied_answers_are_united_in_any_order(bench):
    "Two references of different widths put the target at different canvas columns: tied stripes, united."
    a, b = synthetic_scene((60, 40), seed=1), synthetic_scene((60, 20), seed=2)
    target = synthetic_scene((60, 80), seed=3)[0]
    stitch_widths = [40, 20]                                                  # each reference at the target's height
    want = np.zeros((60, 80), bool)
    for w in stitch_widths: want[:, 70 - w:75 - w] = True
    for refs in ([a, b], [b, a]):
        r = PseudoLabeler(refs, 'x', Stripe(), bench.LooksScorer(), trials=2).label(target)
        assert np.array_equal(r.mask, want) and r.score == 0.9 and r.present


def test_absent_stays_absent_with_k_references(bench, looks):
    refs, scenes = looks['absent']
    for k in (1, 2, 3):
        seg = ColourSegmenter()
        rs = [labeller(bench, refs[:k], seg).label(im) for im, _ in scenes]
        assert all(not r.present and not r.mask.any() and r.mask.shape == im.shape[:2]
                   for r, (im, _) in zip(rs, scenes))
        assert seg.set_image_calls == 0                                        # the text gate: no stitch at all


def test_one_reference_two_ways_gives_the_same_labels(bench, looks):
    (ref, mask), *_ = looks['one look'][0]
    im = looks['one look'][1][0][0]
    old = PseudoLabeler(ref, mask, 'x', ColourSegmenter(), bench.LooksScorer(), trials=3).label(im)
    new = PseudoLabeler([(ref, mask)], 'x', ColourSegmenter(), bench.LooksScorer(), trials=3).label(im)
    assert np.array_equal(old.mask, new.mask) and old.candidate_scores == new.candidate_scores
    assert all(np.array_equal(old.points[k], new.points[k]) for k in old.points)


def _write_refs(folder, n: int) -> list:
    "`n` reference pairs written as PNG files: `['--reference', image, mask, ...]`."
    folder.mkdir(parents=True, exist_ok=True)
    args = []
    for i in range(n):
        im, m = synthetic_scene((60 + 10 * i, 90 - 5 * i), seed=i)
        Image.fromarray(im).save(folder/f'r{i}.png')
        Image.fromarray(m.astype(np.uint8) * 255).save(folder/f'r{i}_mask.png')
        args += ['--reference', folder/f'r{i}.png', folder/f'r{i}_mask.png']
    return args


def test_cli_two_references_tiny_random(tmp_path):
    pytest.importorskip('segment_anything')
    pytest.importorskip('open_clip')
    refs = _write_refs(tmp_path/'refs', 2)
    (tmp_path/'imgs').mkdir()
    for i, hw in enumerate([(48, 64), (64, 40)]):
        Image.fromarray(synthetic_scene(hw, seed=10 + i)[0]).save(tmp_path/'imgs'/f't{i}.png')
    r = segwl('label', '--method', 'seed', *refs, '--text', 'a red ellipse', '--images', tmp_path/'imgs',
              '--out', tmp_path/'out', '--models', 'tiny-random', *FAST, check_rc=0)
    assert '2 labelled' in r.stdout and 'MEANINGLESS' in r.stderr
    rows = read_manifest(tmp_path/'out'/'manifest.jsonl')
    assert sorted(row['file'] for row in rows) == ['t0.png', 't1.png']
    assert all(row['status'] in ('ok', 'absent') for row in rows)
    cfg = json.loads((tmp_path/'out'/'config.json').read_text())
    assert cfg['method'] == 'seed' and len(cfg['reference']) == 2
    d = (tmp_path/'refs').resolve()
    want = [(str(d/f'r{i}.png'), str(d/f'r{i}_mask.png')) for i in (0, 1)]
    assert [(p['image'], p['mask']) for p in cfg['reference']] == want


def test_cli_more_than_five_references_is_refused(tmp_path):
    refs = _write_refs(tmp_path/'refs', 6)
    (tmp_path/'imgs').mkdir()
    Image.fromarray(synthetic_scene((48, 64), seed=1)[0]).save(tmp_path/'imgs'/'t.png')
    r = segwl('label', '--method', 'seed', *refs, '--text', 'a red ellipse', '--images', tmp_path/'imgs',
              '--out', tmp_path/'out', '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', *FAST,
              check_rc=2)
    assert '6 references: the seed method takes 1 to 5' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'out'/'manifest.jsonl').exists()


def test_bench_table_known_rows(bench):
    "The bench's own known answers, small: stitches find both looks, one reference half, canvases pay one set_image."
    rows = {(r['family'], r['k'], r['method']): r for r in bench.run(n=4, trials=4)}
    assert len(rows) == 3 * (1 + 2 * len(bench.METHODS))
    assert rows[('two looks', 1, 'one stitch (k = 1)')]['iou'] == 0.5
    assert rows[('two looks', 2, 'stitches, best')]['iou'] == rows[('two looks', 3, 'stitches, best')]['iou'] == 1.0
    assert rows[('two looks', 3, 'canvas, row')]['iou'] < 0.95
    assert [rows[('one look', 3, m)]['set_image'] for m in bench.METHODS] == [3, 3, 1, 1]
    assert all(r['absent_rate'] == 1.0 and r['set_image'] == 0 for (f, _, _), r in rows.items() if f == 'absent')
    table = bench.table(list(rows.values()))
    assert table.count('\n') == len(rows) + 1 and '| two looks | 2 | stitches, best | 1.000 |' in table
