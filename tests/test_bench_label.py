"The labelling benchmark's arithmetic and its skip, on made-up numbers (the measurement is in bench/, not a test)."
import json
import pytest

@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_label')

def _steps(bench, **kw):
    s = {k: 0.0 for k in (*bench.STEPS, 'other')}
    s.update(kw)
    s['total'] = sum(v for k, v in s.items() if k != 'total')
    return s

def test_summary_known_answer(bench):
    # pipeline: encoder 10 s + 10 decoder calls of 0.1 s + CLIP 0.5 s = 11.5 s
    # seed: 10 x (10 + 0.1) + CLIP 1.5 = 102.5 s
    pipe = [_steps(bench, set_image=10.0, predict=1.0, text_map=0.5)] * 2
    seed = [_steps(bench, predict=101.0, text_map=1.5)]
    r = bench.summarise(pipe, seed, [10.0, 10.0], None, trials=10)
    assert r['encoder_s'] == 10.0 and r['pipeline_s_per_image'] == pytest.approx(11.5)
    assert r['overhead_ratio'] == pytest.approx(1.15) and r['overhead_ratio_in_run'] == pytest.approx(1.15)
    assert r['seed_pattern_s_per_image'] == pytest.approx(102.5)
    seed_s, pipe_s = r['seed_pattern_s_per_image'], r['pipeline_s_per_image_on_seed_images']
    assert r['speedup_vs_seed'] == pytest.approx(seed_s / pipe_s)
    assert r['speedup_vs_seed'] == pytest.approx(102.5 / 11.5)
    assert r['speedup_bound_sam_only'] == pytest.approx(10 * 10.1 / 11.0)    # 10 (E + d) / (E + 10 d)
    assert r['speedup_vs_seed_same_encoder'] == pytest.approx((10 * 10.1 + 1.5) / 11.5)
    assert r['speedup_vs_seed_clip_once'] == pytest.approx((102.5 - 0.9 * 1.5) / 11.5)   # nine of ten maps taken away
    assert r['steps_s_per_image']['text_map'] == pytest.approx(0.5)

def test_table_and_json_keys(bench):
    r = bench.summarise([_steps(bench, set_image=2.0, predict=0.5)], [], [2.0], None, trials=5)
    res = dict(models=dict(sam='vit_b', clip='ViT-B-32'), data='d', images=1, trials=5, **r, peak_rss_mb=100.0,
               machine=dict(device='cpu', cpu='x', cpu_count=2, torch_threads=2), versions=dict(torch='t'),
               load_average_start=(1.0, 1.0, 1.0), load_average_end=(2.0, 2.0, 2.0))
    json.dumps(res)                                                   # JSON-serialisable as written by --json
    for k in ('encoder_s', 'pipeline_s_per_image', 'overhead_ratio', 'seed_pattern_s_per_image', 'speedup_vs_seed'):
        assert k in res
    t = bench.table(res)
    assert '| `overhead_ratio` = pipeline / encoder pass (goal <= 1.15) | 1.250 |' in t
    assert '| SAM decoder calls (all trials; seed: full passes, encoder included) | 0.500 | — |' in t
    assert 'CLIP map windows None / stride None px' in t
    dense = bench.table(dict(res, clip_map='dense', clip_dense_side=448))
    assert 'CLIP map dense (one pass, longer side 448 px)' in dense

def test_missing_data_skips(bench, tmp_path, capsys):
    assert bench.main(['--data', str(tmp_path/'nothing'), '--tiny']) == 0
    assert 'skipped: no dataset at' in capsys.readouterr().err


# ---------------------------------------------------------------- the canvas method (#13)
def _canvas_steps(bench, **kw):
    s = {k: 0.0 for k in (*bench.CANVAS_STEPS, 'other')}
    s.update(kw)
    s['total'] = sum(v for k, v in s.items() if k != 'total')
    return s

def test_canvas_summary_and_table(bench):
    # encoder 10 s; pipeline: its own encoder step 10 s + segment 0.6 s + canvas 0.2 s + keep 0.2 s = 11 s
    steps = [_canvas_steps(bench, set_image=10.0, segment=0.6, canvas=0.2, keep=0.2)] * 2
    r = bench.summarise_canvas(steps, [10.0, 9.0, 11.0])
    assert r['encoder_s'] == 10.0 and r['pipeline_s_per_image'] == pytest.approx(11.0)
    assert r['overhead_ratio'] == pytest.approx(1.1) and r['overhead_ratio_in_run'] == pytest.approx(1.1)
    assert r['images_per_s'] == pytest.approx(1 / 11) and r['steps_s_per_image']['segment'] == pytest.approx(0.6)
    res = dict(models=dict(sam3='tiny'), data='d', images=2, text=None, **r, peak_rss_mb=900.0, cuda_peak_mb=None,
               machine=dict(device='cpu', cpu='x', cpu_count=2, torch_threads=2), versions=dict(torch='t'))
    t = bench.table_canvas(res)
    assert '| `overhead_ratio` = pipeline / encoder pass (goal <= 1.10) | 1.100 |' in t
    assert '| SAM 3 text, DETR and mask decoder (segment) | 0.600 |' in t and '| **total** | **11.00** |' in t
    assert 'GPU peak' not in t and 'GPU peak 2048 MB' in bench.table_canvas(dict(res, cuda_peak_mb=2048.0))

def test_canvas_arguments(bench):
    a = bench.parse(['--method', 'canvas', '--segmenter', 'sam3', '--no-text', '--dtype', 'bfloat16'])
    assert (a.method, a.segmenter, a.no_text, a.dtype) == ('canvas', 'sam3', True, 'bfloat16')
    assert bench.parse(['--method', 'canvas']).segmenter == 'sam3'
    for bad in (['--method', 'canvas', '--segmenter', 'sam-vit_b'], ['--method', 'canvas', '--memory', '4'],
                ['--segmenter', 'sam3'], ['--dtype', 'float16']):
        with pytest.raises(SystemExit): bench.parse(bad)

def test_canvas_runs_with_the_tiny_sam3(bench, tmp_path, capsys):
    "The canvas code path end to end with the tiny SAM 3 (real-size SAM 3 takes minutes per image on a CPU)."
    import json
    from PIL import Image
    from segwl.data import save_mask
    from segwl.testing import concept_scene
    d = tmp_path/'data'
    for sub in ('reference', 'unlabeled/images'): (d/sub).mkdir(parents=True)
    img, mask, _ = concept_scene((120, 90), 1, seed=1)
    Image.fromarray(img).save(d/'reference'/'r.jpg')
    save_mask(mask, d/'reference'/'r.png')
    for i in range(2):
        Image.fromarray(concept_scene((100, 140), 2, seed=5 + i)[0]).save(d/'unlabeled'/'images'/f'{i}.png')
    out = tmp_path/'res.json'
    assert bench.main(['--method', 'canvas', '--tiny', '--data', str(d), '--images', '2', '--text', 'red',
                       '--json', str(out)]) == 0
    t = capsys.readouterr().out
    assert 'Canvas method, SAM 3 `tiny`, 2 images of' in t and '(goal <= 1.10)' in t
    res = json.loads(out.read_text())
    assert (res['method'], res['images'], res['text'], len(res['per_image']), len(res['encoder_per_image'])) == (
        'canvas', 2, 'red', 2, 2)
    assert res['overhead_ratio'] == pytest.approx(res['pipeline_s_per_image'] / res['encoder_s'])
    assert all(s['set_image'] > 0 and s['segment'] > 0 for s in res['per_image']) and res['peak_rss_mb'] > 0


# ---------------------------------------------------------------- several targets on one canvas (#24)
def _packed_rows(bench, method, n_images, passes, **kw):
    rows = []
    for _ in range(n_images):
        r = {k: 0.0 for k in (*bench.PACKED_STEPS[method], 'other')}
        r.update(kw, passes=passes, instances=0, grid='2x2', vs_single=0.9)
        r['total'] = sum(v for k, v in r.items() if k in (*bench.PACKED_STEPS[method], 'other'))
        rows.append(r)
    return rows

def test_packed_summary_and_table(bench):
    # encoder 12 s; N=1: its pass 12 s + decoder 0.6 + CLIP 0.3 = 12.9 s; N=3: a third of the pass 4 s + 0.6 + 0.3
    runs = {1: _packed_rows(bench, 'seed', 6, 1.0, set_image=12.0, predict=0.6, text_map=0.3),
            3: _packed_rows(bench, 'seed', 6, 1 / 3, set_image=4.0, predict=0.6, text_map=0.3)}
    r = bench.summarise_packed(runs, [12.0, 11.0, 13.0], 'seed')
    one, three = r['per_n']['1'], r['per_n']['3']
    assert r['encoder_s'] == 12.0 and three['encoder_passes_per_image'] == pytest.approx(1 / 3)
    assert one['target_cost'] == pytest.approx(12.9 / 12) and three['target_cost'] == pytest.approx(4.9 / 12)
    assert three['steps_in_passes']['predict'] == pytest.approx(0.05) and three['vs_single_min'] == 0.9
    assert three['encoder_s_in_run'] == pytest.approx(12.0) and three['target_cost_in_run'] == pytest.approx(4.9 / 12)
    res = dict(method='seed', models=dict(sam='vit_b', clip='ViT-B-32'), data='d', images=6, floor_images=3, **r,
               machine=dict(device='cpu', cpu='x', cpu_count=2, torch_threads=2), versions=dict(torch='t'),
               load_average_start=(1.0, 1.0, 1.0), load_average_end=(2.0, 2.0, 2.0))
    t = bench.table_packed(res)
    assert '| measure | N=1 | N=3 |' in t and '| encoder passes per image | 1.000 | 0.333 |' in t
    assert "(goal at N=3: <= 0.45) | **1.075** | **0.408** |" in t
    assert "own encoder passes (`set_image` per canvas) | 1.075 (12.00 s) | 0.408 (12.00 s) |" in t
    assert '| image encoder (set_image): its share of the canvas | 1.000 | 0.333 |' in t
    assert '| SAM decoder calls (all trials) | 0.050 | 0.050 |' in t

def test_packed_arguments(bench):
    assert bench.parse(['--packing', '1, 3']).packing == [1, 3] and bench.parse([]).packing is None
    for bad in (['--packing', '0,3'], ['--packing', '9'], ['--packing', 'a'], ['--packing', '3', '--memory', '4']):
        with pytest.raises(SystemExit): bench.parse(bad)

def test_packed_runs_with_the_tiny_sam3(bench, tmp_path, capsys):
    "N = 1 and 2 in one run on three scenes: 1 and 2/3 of an encoder pass per image, counted, not assumed."
    import json
    from PIL import Image
    from segwl.data import save_mask
    from segwl.testing import concept_scene
    d = tmp_path/'data'
    for sub in ('reference', 'unlabeled/images'): (d/sub).mkdir(parents=True)
    img, mask, _ = concept_scene((120, 90), 1, seed=1)
    Image.fromarray(img).save(d/'reference'/'r.jpg')
    save_mask(mask, d/'reference'/'r.png')
    for i in range(3):
        Image.fromarray(concept_scene((100, 140), 2, seed=5 + i)[0]).save(d/'unlabeled'/'images'/f'{i}.png')
    out = tmp_path/'res.json'
    assert bench.main(['--method', 'canvas', '--tiny', '--data', str(d), '--images', '3', '--packing', '1,2',
                       '--floor-images', '1', '--json', str(out)]) == 0
    assert '| measure | N=1 | N=2 |' in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [res['per_n'][n]['encoder_passes_per_image'] for n in ('1', '2')] == [1.0, pytest.approx(2 / 3)]
    assert [r['grid'] for r in res['per_image']['2']][:2] != ['left', 'left'] and res['floor_images'] == 1


def test_memory_runs_record_rss_after_every_image(bench, tmp_path, capsys):
    """`--memory 2,3` with tiny models: a fresh process per size, an RSS reading after each image (none was taken once
    label_folder handed images over through label_many)."""
    from PIL import Image
    from segwl.data import save_mask
    from segwl.testing import synthetic_scene
    d = tmp_path/'data'
    for sub in ('reference', 'unlabeled/images'): (d/sub).mkdir(parents=True)
    img, mask = synthetic_scene((60, 90), seed=1)
    Image.fromarray(img).save(d/'reference'/'r.jpg')
    save_mask(mask, d/'reference'/'r.png')
    for i in range(3):
        Image.fromarray(synthetic_scene((50, 70), seed=5 + i)[0]).save(d/'unlabeled'/'images'/f'{i}.png')
    assert bench.main(['--tiny', '--data', str(d), '--trials', '2', '--memory', '2,3', '--memory-only']) == 0
    runs = json.loads(capsys.readouterr().out)['runs']                  # no results file: the memory part, printed
    assert [(r['images'], len(r['rss_per_image_mb'])) for r in runs] == [(2, 2), (3, 3)]
    assert all(v > 0 for r in runs for v in r['rss_per_image_mb'])
