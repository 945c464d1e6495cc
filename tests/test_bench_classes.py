"""The several-classes benchmark's counting and arithmetic, on the colour stand-in and made-up numbers (the
measurement is in bench/, not a test)."""
from types import SimpleNamespace
import pytest
from segwl.multiclass import MulticlassLabeller
from segwl.testing import ColourConcept, classes_scene

@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_classes')

def test_counted_counts_and_times_every_call(bench):
    "The wrapper sees one set_image per image and one segment per class, as the labeller makes them."
    refs = [(n, None, [(lambda s: (s[0], s[1] > 0))(classes_scene((60, 80), [1 if j == i else 0 for j in range(3)],
                                                                    seed=i))]) for i, n in enumerate('abc')]
    c = bench.Counted(ColourConcept())
    lab = MulticlassLabeller(refs, c, method='canvas')
    for s in range(2): lab.label(classes_scene((90, 120), [1, 1, 1], seed=10 + s)[0])
    assert (c.set_image_calls, c.segment_calls) == (2, 6) and c.set_image_s > 0 and c.segment_s > 0

def test_summary_known_answer(bench):
    "Encoder 10 s, a class's segment call 1 s: K classes cost 10 + K s an image; K=3 / K=1 = 13 / 11."
    calls = lambda k: SimpleNamespace(set_image_calls=2, segment_calls=2 * k, set_image_s=20.0, segment_s=2.0 * k)
    seconds = {'single': [11.0, 11.0], 'K=1': [11.0, 11.0], 'K=2': [12.0, 12.0], 'K=3': [12.0, 14.0]}
    cpu = {k: [2 * x for x in v] for k, v in seconds.items()}                      # two threads busy
    r = bench.summarise(seconds, {'single': calls(1), 'K=1': calls(1), 'K=2': calls(2), 'K=3': calls(3)}, cpu)
    k3 = r['results']['K=3']
    assert k3['seconds_per_image'] == 13.0 and k3['vs_k1'] == pytest.approx(13 / 11) and r['goal_met_wall']
    assert k3['cpu_s_per_image'] == 26.0 and k3['cpu_vs_k1'] == pytest.approx(13 / 11) and r['goal_met']
    assert (k3['set_image_per_image'], k3['segment_per_image'], k3['segment_s_per_image']) == (1, 3, 3.0)
    cpu['K=3'] = [30.0, 30.0]                                                       # 30 / 22 > 1.3
    r2 = bench.summarise(seconds, {k: calls(1) for k in seconds}, cpu)
    assert (r2['goal_met'], r2['goal_met_wall']) == (False, True)
    res = dict(model='m', images=2, classes=['a', 'b', 'c'], machine=dict(device='cpu', cpu='x', cpu_count=2,
               torch_threads=2, load_average_1min=1.0), **r)
    t = bench.table(res)
    assert "| MulticlassLabeller, 3 classes | 26.00 | **1.182** | 13.00 | 1.182 | 1 | 3 |" in t, t
    assert 'Goal: K=3 at most 1.3x the time of K=1 per image: met in CPU time (K=3 / K=1 = 1.182)' in t

def test_no_data_says_so(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as e: bench.main(['--tiny', '--data', str(tmp_path)])
    assert e.value.code == 0 and 'no pets data' in capsys.readouterr().out
