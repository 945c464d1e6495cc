"The labelling benchmark's arithmetic and its skip, on made-up numbers (the measurement itself is in bench/, not a test)."
import json
import pytest

@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_label')

def _steps(bench, **kw):
    s = {k: 0.0 for k in (*bench.STEPS, 'other')}
    s.update(kw); s['total'] = sum(v for k, v in s.items() if k != 'total')
    return s

def test_summary_known_answer(bench):
    # pipeline: encoder 10 s + 10 decoder calls of 0.1 s + CLIP 0.5 s = 11.5 s; seed: 10 x (10 + 0.1) + CLIP 1.5 = 102.5 s
    pipe = [_steps(bench, set_image=10.0, predict=1.0, text_map=0.5)] * 2
    seed = [_steps(bench, predict=101.0, text_map=1.5)]
    r = bench.summarise(pipe, seed, [10.0, 10.0], None, trials=10)
    assert r['encoder_s'] == 10.0 and r['pipeline_s_per_image'] == pytest.approx(11.5)
    assert r['overhead_ratio'] == pytest.approx(1.15) and r['overhead_ratio_in_run'] == pytest.approx(1.15)
    assert r['seed_pattern_s_per_image'] == pytest.approx(102.5)
    assert r['speedup_vs_seed'] == pytest.approx(r['seed_pattern_s_per_image'] / r['pipeline_s_per_image_on_seed_images'])
    assert r['speedup_vs_seed'] == pytest.approx(102.5 / 11.5)
    assert r['speedup_bound_sam_only'] == pytest.approx(10 * 10.1 / 11.0)    # 10 (E + d) / (E + 10 d)
    assert r['speedup_vs_seed_same_encoder'] == pytest.approx((10 * 10.1 + 1.5) / 11.5)
    assert r['speedup_vs_seed_clip_once'] == pytest.approx((102.5 - 0.9 * 1.5) / 11.5)   # nine of its ten maps taken away
    assert r['steps_s_per_image']['text_map'] == pytest.approx(0.5)

def test_table_and_json_keys(bench):
    r = bench.summarise([_steps(bench, set_image=2.0, predict=0.5)], [], [2.0], None, trials=5)
    res = dict(models=dict(sam='vit_b', clip='ViT-B-32'), data='d', images=1, trials=5, **r, peak_rss_mb=100.0,
               machine=dict(device='cpu', cpu='x', cpu_count=2, torch_threads=2), versions=dict(torch='t'),
               load_average_start=(1.0, 1.0, 1.0), load_average_end=(2.0, 2.0, 2.0))
    json.dumps(res)                                                   # JSON-serialisable as written by --json
    for k in ('encoder_s', 'pipeline_s_per_image', 'overhead_ratio', 'seed_pattern_s_per_image', 'speedup_vs_seed'): assert k in res
    t = bench.table(res)
    assert '| `overhead_ratio` = pipeline / encoder pass (goal <= 1.15) | 1.250 |' in t
    assert '| SAM decoder calls (all trials; seed: full passes, encoder included) | 0.500 | — |' in t
    assert 'CLIP map windows None / stride None px' in t
    assert 'CLIP map dense (one pass, longer side 448 px)' in bench.table(dict(res, clip_map='dense', clip_dense_side=448))

def test_missing_data_skips(bench, tmp_path, capsys):
    assert bench.main(['--data', str(tmp_path/'nothing'), '--tiny']) == 0
    assert 'skipped: no dataset at' in capsys.readouterr().err
