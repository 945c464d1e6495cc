"`segwl demo` (what `make demo` runs): the whole chain label -> train -> evaluate on examples/."
import json, os, subprocess, sys
from conftest import ROOT

def _demo(tmp_path, *extra, env=None):
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), 'segwl'), 'demo',
                           '--examples', str(ROOT/'examples'), '--out', str(tmp_path/'out'), *extra],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **(env or {})}, timeout=600)

def test_demo_chain_with_tiny_models(tmp_path):
    r = _demo(tmp_path, '--models', 'tiny-random', '--device', 'cpu', '--max-minutes', '0.02')
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/'out'
    rows = [json.loads(l) for l in (out/'labels'/'manifest.jsonl').read_text().splitlines()]
    assert sorted(r['file'] for r in rows) == sorted(p.name for p in (ROOT/'examples'/'unlabeled'/'images').iterdir())
    assert {r['status'] for r in rows} <= {'ok', 'absent'}
    assert json.loads((out/'model'/'model.json').read_text())['arch'] == 'tiny-unet'   # the test-size net
    test = json.loads((out/'eval'/'metrics.json').read_text())
    quality = json.loads((out/'label-quality'/'metrics.json').read_text())
    assert (test['n_images'], quality['n_images']) == (4, 5)
    assert test['tiny_random'] and quality['tiny_random']                # both stamped as meaningless
    from segwl.cli import TINY_WARNING
    assert TINY_WARNING in r.stderr                                   # the tiny-random warning is loud
    assert "--text 'a photo of a cat'" in r.stdout                    # echoed commands paste back into a shell
    line = next(x for x in r.stdout.splitlines() if x.startswith('fine-tuned model on the test split: '))
    assert f"mean IoU {test['mean_iou']:.4f}" in line and 'all-foreground' in line and 'TINY RANDOM MODELS' in line

def test_demo_offline_stops_at_labelling_with_the_fix(tmp_path):
    # Nothing listens on port 9 of this machine: the real download fails at once, as it does offline.
    env = {'SEGWL_CACHE': str(tmp_path/'cache'), 'SEGWL_SAM_BASE_URL': 'http://127.0.0.1:9/', 'HF_HUB_OFFLINE': '1'}
    r = _demo(tmp_path, env=env)
    assert r.returncode == 2
    assert 'sam_vit_b_01ec64.pth' in r.stderr and str(tmp_path/'cache') in r.stderr and '--sam-checkpoint' in r.stderr
    assert not (tmp_path/'out'/'model').exists()                      # nothing trained on nothing
