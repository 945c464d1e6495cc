"Training, prediction and the train/predict commands on tiny synthetic data (seconds, CPU)."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from segwl.data import load_mask, LayoutError
from segwl.finetune import (TrainSettings, ArchError, build_model, train, synthetic_dataset, load_model,
                            predict_folder, SMP_DECODERS, TV_ARCHS)

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(size=32, epochs=1, batch_size=2, pretrained=False, device='cpu')
quiet = dict(progress=False, log=lambda *a: None)

@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(n)

@pytest.fixture
def syn(tmp_path): return synthetic_dataset(tmp_path/'syn', n=6)

def segwl(*args, check_rc=None):
    env = os.environ | {'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-c', 'import sys; from segwl.cli import main; sys.exit(main(sys.argv[1:]))', *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
    if check_rc is not None: assert r.returncode == check_rc, r.stdout + r.stderr
    return r

@pytest.mark.parametrize('arch', list(TV_ARCHS) + [f'smp:{d}:resnet18' for d in SMP_DECODERS if d != 'Segformer'] + ['smp:Segformer:mit_b0'])
def test_every_registered_architecture_gives_one_logit_channel(arch):
    with torch.no_grad(): y = build_model(arch).eval()(torch.zeros(1, 3, 64, 64))
    assert y.shape == (1, 1, 64, 64)

def test_pretrained_offline_names_the_url_and_the_way_out(monkeypatch):
    import segmentation_models_pytorch.encoders as enc, torchvision.models._api as tvapi
    def offline(*a, **k): raise OSError('Temporary failure in name resolution')
    monkeypatch.setattr(enc, 'hf_hub_download', offline)
    monkeypatch.setattr(tvapi, 'load_state_dict_from_url', offline)
    with pytest.raises(ArchError, match=r'huggingface.co/smp-hub/resnet34.imagenet.*--no-pretrained'):
        build_model('unet-resnet34', pretrained=True)
    with pytest.raises(ArchError, match=r'download.pytorch.org/models/lraspp.*--no-pretrained'):
        build_model('lraspp_mobilenet_v3_large', pretrained=True)

def test_time_budget_stops_mid_epoch(syn, tmp_path):
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=50, max_minutes=1e-4)), **quiet)
    assert info['stopped'] == 'time' and len(info['history']) == 1 and info['history'][0]['partial']

def test_checkpoints_are_plain_tensors_and_no_temporary_files(syn, tmp_path):
    train(*syn, tmp_path/'m', TrainSettings(**TINY), **quiet)
    ck = torch.load(tmp_path/'m'/'last.pt', weights_only=True)
    assert {'model', 'optimizer', 'scaler', 'epoch', 'history', 'settings'} <= set(ck)
    torch.load(tmp_path/'m'/'best.pt', weights_only=True)
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['best.pt', 'last.pt', 'model.json']

def test_model_json_records_what_was_used(syn, tmp_path):
    rows = [dict(file=f'im{i}.png', status='ok', error=None, score=0.2 if i == 0 else 0.9, text_score=0.3, seconds=1) for i in range(5)]
    rows.append(dict(file='im5.png', status='error', error='SAM failed', score=None, text_score=None, seconds=1))
    (tmp_path/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(min_score=0.5)), manifest=tmp_path/'manifest.jsonl', **quiet)
    c = info['data']['counts']
    assert (c['used'], c['error_rows'], c['below_min_score']) == (4, 1, 1)
    assert info['data']['train'] + info['data']['val'] == 4
    assert info['normalize']['mean'] == [0.485, 0.456, 0.406] and info['input_size'] == 32
    assert set(info['history'][0]) >= {'epoch', 'loss', 'val_iou', 'lr'}

def test_training_learns_the_synthetic_discs(syn, tmp_path):
    "A learning check, not only a smoke test: 30 quick epochs must beat predicting everything as object."
    s = TrainSettings(**TINY | dict(size=32, epochs=30, batch_size=3, val_fraction=0, lr=3e-3))
    train(*syn, tmp_path/'m', s, **quiet)
    rows = predict_folder(load_model(tmp_path/'m', 'cpu'), syn[0], tmp_path/'pred', progress=False)
    ious = []
    for r in rows:
        p, g = load_mask(tmp_path/'pred'/'masks'/r['file']), load_mask(syn[1]/r['file'])
        ious.append((p & g).sum() / max(1, (p | g).sum()))
    all_fg = np.mean([load_mask(m).mean() for m in sorted(syn[1].iterdir())])
    assert np.mean(ious) > max(0.6, all_fg + 0.3), (np.mean(ious), all_fg)

def test_cli_train_predict_evaluate_end_to_end(syn, tmp_path):
    imgs, msks = syn
    r = segwl('train', '--images', imgs, '--masks', msks, '--out', tmp_path/'model', '--size', 32, '--epochs', 1,
              '--batch-size', 2, '--no-pretrained', '--device', 'cpu', '--ema', 0.9, check_rc=0)
    assert 'epoch 1' in r.stderr + r.stdout
    assert json.loads((tmp_path/'model'/'model.json').read_text())['settings']['ema'] == 0.9
    (tmp_path/'in').mkdir()
    for p in imgs.iterdir(): (tmp_path/'in'/p.name).write_bytes(p.read_bytes())
    (tmp_path/'in'/'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    r = segwl('predict', '--model', tmp_path/'model', '--images', tmp_path/'in', '--out', tmp_path/'pred', '--quiet', check_rc=1)
    assert 'broken.png' in r.stderr
    rows = [json.loads(l) for l in (tmp_path/'pred'/'manifest.jsonl').read_text().splitlines()]
    assert [r['status'] for r in rows].count('error') == 1 and len(rows) == 7
    m = load_mask(tmp_path/'pred'/'masks'/'im1.png'); assert m.shape == load_mask(msks/'im1.png').shape
    segwl('evaluate', '--model', tmp_path/'model', '--images', imgs, '--masks', msks, '--out', tmp_path/'rep', '--quiet', check_rc=0)
    metrics = json.loads((tmp_path/'rep'/'metrics.json').read_text())
    assert metrics['n_images'] == 6 and 0 <= metrics['mean_iou'] <= 1

def test_cli_usage_errors(syn, tmp_path, capsys):
    from segwl.cli import main
    def run(*args):
        code = main(list(map(str, args))); return code, capsys.readouterr()
    code, out = run('train', '--images', syn[0], '--masks', tmp_path, '--out', tmp_path/'m', '--no-pretrained')
    assert code == 2 and 'no mask for 6 image(s)' in out.err
    code, out = run('train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--arch', 'unet-nope')
    assert code == 2 and 'unknown encoder' in out.err
    code, out = run('predict', '--model', tmp_path, '--images', syn[0], '--out', tmp_path/'p')
    assert code == 2 and 'no model.json' in out.err
    with pytest.raises(SystemExit): run('train', '--help')
    assert 'smp:DECODER:ENCODER' in capsys.readouterr().out

def test_manifest_of_a_killed_labelling_run(syn, tmp_path):
    "A run killed while appending leaves a half-written last row: training uses the complete rows, as resuming does."
    from segwl.finetune import select_training_data
    rows = [dict(file=f'im{i}.png', status='ok', error=None, score=0.9, text_score=0.3, seconds=1) for i in range(4)]
    (tmp_path/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows) + '{"file": "im4.png", "sta')
    pairs, c = select_training_data(*syn, manifest=tmp_path/'manifest.jsonl')
    assert (c['used'], c['not_in_manifest']) == (4, c['images'] - 4)
    with pytest.raises(LayoutError, match='nope.jsonl: file not found'):
        select_training_data(*syn, manifest=tmp_path/'nope.jsonl')
