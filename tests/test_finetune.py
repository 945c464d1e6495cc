"Training, prediction and the train/predict/evaluate commands on tiny synthetic data (seconds, CPU)."
import json, os, random, shlex, shutil, signal, subprocess, time
from contextlib import contextmanager
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from conftest import checkout_env, segwl, segwl_argv
from segwl.data import load_mask, LayoutError
from segwl.folder import read_manifest
from segwl.finetune import (TrainSettings, ArchError, build_model, train, synthetic_dataset, load_model,
                            predict_folder, SMP_DECODERS, TV_ARCHS)

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread

TINY = dict(arch='tiny-unet', size=32, epochs=1, batch_size=2, pretrained=False, device='cpu')
TINY_FLAGS = ('--arch', 'tiny-unet', '--size', 32, '--batch-size', 2, '--no-pretrained', '--device', 'cpu')
quiet = dict(progress=False, log=lambda *a: None)


@pytest.fixture
def syn(tmp_path): return synthetic_dataset(tmp_path/'syn', n=6)

@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    "A model folder trained for one epoch at 32 px, and its synthetic data; copy it before changing it."
    d = tmp_path_factory.mktemp('tiny')
    imgs, msks = synthetic_dataset(d/'syn', n=4)
    torch.set_num_threads(1)
    train(imgs, msks, d/'model', TrainSettings(**TINY | dict(val_fraction=0)), **quiet)
    return d/'model', imgs, msks

def copy_model(tiny_model, dest: Path) -> Path:
    shutil.copytree(tiny_model[0], dest)
    return dest

def image_folder(folder: Path, n: int, side: int = 32, seed: int = 0) -> Path:
    "`n` small noise images in `folder`."
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder/f'i{i:03d}.png')
    return folder

def start(*argv) -> subprocess.Popen:
    "`segwl ARGV` in the background, in the environment conftest's `segwl` gives it."
    return subprocess.Popen(segwl_argv(*argv), env=checkout_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

def wait_for(cond, timeout=120, what='condition'):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout: raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

def parts(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob('*.part'))


@pytest.mark.parametrize('arch', list(TV_ARCHS) + [f'smp:{d}:resnet18' for d in SMP_DECODERS if d != 'Segformer']
                         + ['smp:Segformer:mit_b0'])
def test_every_registered_architecture_gives_one_logit_channel(arch):
    with torch.no_grad(): y = build_model(arch).eval()(torch.zeros(1, 3, 64, 64))
    assert y.shape == (1, 1, 64, 64)

def test_pretrained_offline_names_the_url_and_the_way_out(monkeypatch):
    import segmentation_models_pytorch.encoders as enc, torchvision.models._api as tvapi
    def offline(*a, **k): raise OSError('Temporary failure in name resolution')
    monkeypatch.setattr(enc, 'hf_hub_download', offline)
    monkeypatch.setattr(tvapi, 'load_state_dict_from_url', offline)
    with pytest.raises(ArchError, match=r'huggingface.co/smp-hub/resnet34.imagenet.*pretrained=False'):
        build_model('unet-resnet34', pretrained=True)
    with pytest.raises(ArchError, match=r'download.pytorch.org/models/lraspp.*pretrained=False'):
        build_model('lraspp_mobilenet_v3_large', pretrained=True)

def test_pretrained_offline_and_not_cached_fails_at_once(monkeypatch, tmp_path):
    "No network, no cache: one connection attempt, no download tried, the message at once (was 23 s of retries)."
    import socket, huggingface_hub.constants as hc, segmentation_models_pytorch.encoders as enc
    monkeypatch.setattr(hc, 'HF_HUB_CACHE', str(tmp_path/'hf'))             # an empty cache
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path/'torch'))
    looked_up, downloads = [], []
    def no_network(host, *a, **k):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_network)                   # every connection starts here
    monkeypatch.setattr(enc, 'hf_hub_download', lambda *a, **k: downloads.append(a))
    for arch, host in [('unet-resnet34', 'huggingface.co'), ('lraspp_mobilenet_v3_large', 'download.pytorch.org')]:
        looked_up.clear()
        with pytest.raises(ArchError,
                           match=r'not cached and https://' + host + r'.* cannot be reached.*pretrained=False'):
            build_model(arch, pretrained=True)
        assert looked_up == [host] and downloads == []

def test_pretrained_and_cached_offline_does_not_probe(monkeypatch, tmp_path):
    "Cached weights load without asking the network first."
    import socket, segwl.arch as ft
    monkeypatch.setattr(ft, 'weights_cached', lambda name: True)
    monkeypatch.setattr(socket, 'create_connection', lambda *a, **k: pytest.fail('probed the network'))
    built = []
    fake = ft.ARCH_FAMILIES['smp']._replace(build=lambda d, e, pre: built.append(pre) or torch.nn.Identity())
    monkeypatch.setitem(ft.ARCH_FAMILIES, 'smp', fake)
    build_model('unet-resnet34', pretrained=True)
    assert built == [True]

def test_time_budget_stops_mid_epoch(syn, tmp_path):
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=50, max_minutes=1e-4)), **quiet)
    assert info['stopped'] == 'time' and len(info['history']) == 1 and info['history'][0]['partial']

def test_checkpoints_are_plain_tensors_and_no_temporary_files(syn, tmp_path):
    train(*syn, tmp_path/'m', TrainSettings(**TINY), **quiet)
    ck = torch.load(tmp_path/'m'/'last.pt', weights_only=True)
    assert {'model', 'optimizer', 'scaler', 'epoch', 'history', 'settings'} <= set(ck)
    torch.load(tmp_path/'m'/'best.pt', weights_only=True)
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['best.pt', 'history.csv', 'last.pt',
                                                                'model.json', 'smp']

def test_model_json_records_what_was_used(syn, tmp_path):
    rows = [dict(file=f'im{i}.png', status='ok', error=None, score=0.2 if i == 0 else 0.9, text_score=0.3, seconds=1)
            for i in range(5)]
    rows.append(dict(file='im5.png', status='error', error='SAM failed', score=None, text_score=None, seconds=1))
    (tmp_path/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(min_score=0.5)), manifest=tmp_path/'manifest.jsonl',
                 **quiet)
    c = info['data']['counts']
    assert (c['used'], c['error_rows'], c['below_min_score']) == (4, 1, 1)
    assert info['data']['train'] + info['data']['val'] == 4
    assert info['normalize']['mean'] == [0.485, 0.456, 0.406] and info['input_size'] == 32
    assert set(info['history'][0]) >= {'epoch', 'loss', 'val_iou', 'lr'}
    assert TrainSettings.from_dict(info['settings']) == TrainSettings(**TINY | dict(min_score=0.5))

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
    r = segwl('train', '--images', imgs, '--masks', msks, '--out', tmp_path/'model', '--epochs', 1, *TINY_FLAGS,
              '--ema', 0.9, check_rc=0)
    assert 'epoch 1' in r.stderr + r.stdout
    assert json.loads((tmp_path/'model'/'model.json').read_text())['settings']['ema'] == 0.9
    (tmp_path/'in').mkdir()
    for p in imgs.iterdir(): (tmp_path/'in'/p.name).write_bytes(p.read_bytes())
    (tmp_path/'in'/'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    r = segwl('predict', '--model', tmp_path/'model', '--images', tmp_path/'in', '--out', tmp_path/'pred', '--quiet',
              check_rc=1)
    assert 'broken.png' in r.stderr
    rows = [json.loads(line) for line in (tmp_path/'pred'/'manifest.jsonl').read_text().splitlines()]
    assert [r['status'] for r in rows].count('error') == 1 and len(rows) == 7
    assert load_mask(tmp_path/'pred'/'masks'/'im1.png').shape == load_mask(msks/'im1.png').shape
    segwl('evaluate', '--model', tmp_path/'model', '--images', imgs, '--masks', msks, '--out', tmp_path/'rep',
          '--quiet', check_rc=0)
    metrics = json.loads((tmp_path/'rep'/'metrics.json').read_text())
    per_image = (tmp_path/'rep'/'per_image.csv').read_text().splitlines()
    assert metrics['n_images'] == 6 and len(per_image) == 7       # a header and a row per image

def test_cli_usage_errors(syn, tmp_path, capsys):
    from segwl.cli import main
    def run(*args):
        code = main(list(map(str, args)))
        return code, capsys.readouterr()
    code, out = run('train', '--images', syn[0], '--masks', tmp_path, '--out', tmp_path/'m', '--no-pretrained')
    assert code == 2 and 'no mask for 6 image(s)' in out.err
    code, out = run('train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--arch', 'unet-nope')
    assert code == 2 and 'unknown encoder' in out.err
    code, out = run('train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--epochs', 10**8)
    assert code == 2 and 'epochs=100000000: expected an integer in [1, 100000]' in out.err
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


# Reliability (issue 14): every case through the CLI, its message and its exit status.

@contextmanager
def read_only(folder: Path):
    "Make `folder` unwritable: mode 555, or for root (whom modes do not stop) the immutable attribute."
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try: yield
        finally: folder.chmod(0o755)
        return
    if not shutil.which('chattr') or subprocess.run(['chattr', '+i', str(folder)], capture_output=True).returncode:
        pytest.skip('root ignores file modes, and chattr +i is not available here')
    try: yield
    finally: subprocess.run(['chattr', '-i', str(folder)], check=True)

class Hostile:
    "A pickle that creates `marker` when it is loaded without `weights_only`."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (subprocess.call, (['touch', self.marker],))

def hostile_checkpoint(path: Path, marker: Path, fmt: str = 'torch'):
    if fmt == 'torch': torch.save({'net.w': Hostile(marker)}, path)
    else: path.write_bytes(__import__('pickle').dumps(Hostile(marker)))

def commands(model, imgs, msks, out) -> dict:
    "The argument lists of train, predict and evaluate writing to `out`."
    return dict(train=['train', '--images', imgs, '--masks', msks, '--out', out, '--epochs', 1, *TINY_FLAGS],
                predict=['predict', '--model', model, '--images', imgs, '--out', out, '--quiet', '--device', 'cpu'],
                evaluate=['evaluate', '--model', model, '--images', imgs, '--masks', msks, '--out', out, '--quiet',
                          '--device', 'cpu'])

def test_the_hostile_pickle_runs_its_code_when_trusted(tmp_path):
    "The fixture is real: loading it the unsafe way does create the marker, so the tests below can fail."
    hostile_checkpoint(tmp_path/'best.pt', tmp_path/'marker')
    torch.load(tmp_path/'best.pt', weights_only=False)
    assert (tmp_path/'marker').exists()

@pytest.mark.parametrize('command', ['train', 'predict', 'evaluate'])
def test_read_only_out_fails_before_any_work(command, tiny_model, tmp_path):
    out = tmp_path/'out'
    out.mkdir()
    with read_only(out):
        r = segwl(*commands(tiny_model[0], *tiny_model[1:], out)[command], check_rc=2)
    assert f"cannot write {out}" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert 'data:' not in r.stdout and 'epoch' not in r.stdout + r.stderr        # not one image was read

def test_read_only_out_with_an_earlier_run_fails_before_training(tiny_model, tmp_path):
    "The lock file of the earlier run can still be opened: the check must make a new file, not reopen that one."
    out = copy_model(tiny_model, tmp_path/'m')
    with read_only(out):
        r = segwl('train', '--images', tiny_model[1], '--masks', tiny_model[2], '--out', out, '--epochs', 2,
                  *TINY_FLAGS, check_rc=2)
    assert f"cannot write {out}" in r.stderr and 'epoch' not in r.stdout + r.stderr, r.stderr

@pytest.mark.parametrize('command', ['train', 'predict', 'evaluate'])
def test_out_that_is_a_file(command, tiny_model, tmp_path):
    out = tmp_path/'out.txt'
    out.write_text('not a folder')
    r = segwl(*commands(tiny_model[0], *tiny_model[1:], out)[command], check_rc=2)
    assert f"cannot write {out}" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert out.read_text() == 'not a folder'

@pytest.mark.parametrize('command, fmt', [('predict', 'torch'), ('predict', 'pickle'), ('evaluate', 'torch')])
def test_hostile_best_pt_is_refused_and_never_runs(command, fmt, tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path/'m')
    hostile_checkpoint(model/'best.pt', tmp_path/'marker', fmt)
    r = segwl(*commands(model, *tiny_model[1:], tmp_path/'out')[command], check_rc=2)
    assert f"{model/'best.pt'}: refused: loading it would run code" in r.stderr, r.stderr
    assert not (tmp_path/'marker').exists()

def test_hostile_last_pt_is_refused_on_resume(tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path/'m')
    hostile_checkpoint(model/'last.pt', tmp_path/'marker')
    r = segwl(*commands(model, *tiny_model[1:], model)['train'], check_rc=2)
    assert f"{model/'last.pt'}: refused" in r.stderr and not (tmp_path/'marker').exists(), r.stderr

@pytest.mark.parametrize('command, text, message', [
    ('predict', '{"arch": ', 'model.json: not valid JSON'),
    ('predict', '[]', 'model.json: expected a JSON object, got list'),
    ('predict', '{"arch": "smp:Unet:resnet18"}', "model.json: no 'input_size'"),
    ('evaluate', '[]', 'model.json: expected a JSON object, got list')])
def test_broken_model_json(command, text, message, tiny_model, tmp_path):
    model = copy_model(tiny_model, tmp_path/'m')
    (model/'model.json').write_text(text)
    r = segwl(*commands(model, *tiny_model[1:], tmp_path/'out')[command], check_rc=2)
    assert message in r.stderr and 'Traceback' not in r.stderr, r.stderr

def test_two_predicts_into_one_folder(tiny_model, tmp_path):
    "The second run refuses, naming the first; the first finishes with one row per image."
    imgs, out = image_folder(tmp_path/'imgs', 150), tmp_path/'out'
    first = start('predict', '--model', tiny_model[0], '--images', imgs, '--out', out, '--quiet', '--device', 'cpu')
    wait_for(lambda: len(read_manifest(out/'manifest.jsonl')) > 0 or first.poll() is not None, what='a first row')
    first.send_signal(signal.SIGSTOP)              # paused mid-run, holding the folder, however fast the machine
    still_running = first.poll() is None
    try: r = segwl('predict', '--model', tiny_model[0], '--images', imgs, '--out', out, '--quiet', '--device', 'cpu')
    finally: first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=600)
    assert still_running, 'the first run ended before its first row was seen: use more images'
    assert r.returncode == 2 and f"being written by another process (pid {first.pid}, segwl predict)" in r.stderr, \
        r.stderr
    assert first.returncode == 0, err
    assert sorted(r['file'] for r in read_manifest(out/'manifest.jsonl')) == sorted(p.name for p in imgs.iterdir())

def test_sigkill_predict_then_rerun(tiny_model, tmp_path):
    "Killed at a random moment, then rerun: every image has one ok row and a mask; done images are not redone."
    n, rng = 300, random.Random()
    imgs, out = image_folder(tmp_path/'imgs', n), tmp_path/'out'
    argv = ('predict', '--model', tiny_model[0], '--images', imgs, '--out', out, '--quiet', '--device', 'cpu')
    run = start(*argv)
    wait_for(lambda: len(read_manifest(out/'manifest.jsonl')) > 0 or run.poll() is not None, what='a first row')
    time.sleep(delay := rng.uniform(0, 1.0))       # ~40 images a second here: the kill lands mid-run
    assert run.poll() is None, f'finished before the kill ({delay:.2f} s): use more images'
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = {r['file']: (out/'masks'/f"{Path(r['file']).stem}.png").stat().st_mtime_ns
            for r in read_manifest(out/'manifest.jsonl')}
    assert 0 < len(done) < n, (delay, len(done))
    segwl(*argv, check_rc=0)
    rows = read_manifest(out/'manifest.jsonl')
    assert sorted(r['file'] for r in rows) == sorted(p.name for p in imgs.iterdir())      # one row each
    assert {r['status'] for r in rows} == {'ok'} and len(list((out/'masks').iterdir())) == n
    assert all((out/'masks'/f"{Path(f).stem}.png").stat().st_mtime_ns == t for f, t in done.items())
    assert parts(out) == []

def test_predict_with_another_model_is_refused_until_no_resume(tiny_model, tmp_path, capsys):
    "A folder predicted with one model: a rerun with another (here its threshold) is refused, naming --no-resume."
    from segwl.cli import main
    imgs, out, other = image_folder(tmp_path/'imgs', 3), tmp_path/'out', copy_model(tiny_model, tmp_path/'other')
    info = json.loads((other/'model.json').read_text())
    (other/'model.json').write_text(json.dumps(info | dict(threshold=0.9)))
    argv = lambda model, *more: [str(a) for a in ('predict', '--model', model, '--images', imgs, '--out', out,
                                                  '--quiet', '--device', 'cpu', *more)]
    assert main(argv(tiny_model[0])) == 0
    done = {p.name: p.stat().st_mtime_ns for p in (out/'masks').iterdir()}
    assert main(argv(other)) == 2
    err = capsys.readouterr().err
    assert 'threshold differ' in err and '--no-resume' in err, err
    assert {p.name: p.stat().st_mtime_ns for p in (out/'masks').iterdir()} == done        # nothing touched
    assert json.loads((out/'config.json').read_text())['threshold'] == 0.5
    assert main(argv(other, '--no-resume')) == 0
    assert json.loads((out/'config.json').read_text())['threshold'] == 0.9
    assert all(p.stat().st_mtime_ns > done[p.name] for p in (out/'masks').iterdir())     # every image again
    with pytest.raises(SystemExit): main(['predict', '--help'])
    assert 'predicted with another model' in ' '.join(capsys.readouterr().out.split())

def test_sigkill_train_then_rerun(syn, tmp_path):
    "Killed at a random moment after epoch 1 (mid-epoch or mid-checkpoint), then rerun: a whole run, no .part files."
    out, rng = tmp_path/'m', random.Random()
    argv = ('train', '--images', syn[0], '--masks', syn[1], '--out', out, '--epochs', 40, *TINY_FLAGS, '--quiet')
    run = start(*argv)
    wait_for(lambda: (out/'model.json').exists() or run.poll() is not None, what='the first epoch')
    time.sleep(delay := rng.uniform(0, 1.0))        # a tiny-unet epoch is a fraction of a second here
    assert run.poll() is None, f'finished before the kill ({delay:.2f} s): use more epochs'
    run.send_signal(signal.SIGKILL)
    run.wait()
    left = parts(out)
    segwl(*argv, check_rc=0)
    info = json.loads((out/'model.json').read_text())
    assert [h['epoch'] for h in info['history']] == list(range(1, 41)), (delay, left)
    assert torch.load(out/'last.pt', weights_only=True)['epoch'] == 40
    assert parts(out) == [], (delay, left)

def test_written_files_are_0644_under_umask_022(tiny_model, tmp_path):
    old = os.umask(0o022)
    try:
        for command, argv in commands(tmp_path/'t', *tiny_model[1:], tmp_path/'x').items():
            out = tmp_path/command[0]
            argv[argv.index(tmp_path/'x')] = out
            segwl(*argv, check_rc=0)
    finally: os.umask(old)
    files = [p for d in 'tpe' for p in (tmp_path/d).rglob('*') if p.is_file()]
    assert {'best.pt', 'last.pt', 'model.json', 'manifest.jsonl', 'config.json', 'metrics.json', 'per_image.csv',
            'im0.png'} <= {p.name for p in files}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != 0o644} == {}

def test_a_failed_write_inside_torch_save_is_named(tiny_model, tmp_path):
    "A write refused by the system (here a file-size limit: EFBIG) while saving a checkpoint: segwl's message."
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try: r = segwl(*commands(None, *tiny_model[1:], tmp_path/'m')['train'], check_rc=2, process=True)
    finally: resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert f"cannot write {tmp_path/'m'/'best.pt'}: File too large" in r.stderr and 'Traceback' not in r.stderr, \
        r.stderr
    assert parts(tmp_path/'m') == []

def segwl_on_small_disk(size: str, mount: Path, *argv) -> subprocess.CompletedProcess:
    "Run segwl with `mount` a fresh tmpfs of `size` in a private mount namespace (root only; else skip)."
    if os.geteuid() != 0 or not shutil.which('unshare'): pytest.skip('a small disk needs root and unshare')
    mount.mkdir(parents=True, exist_ok=True)
    cmd = ' '.join(map(shlex.quote, segwl_argv(*argv)))
    script = f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mount))} || exit 99; exec {cmd}"
    r = subprocess.run(['unshare', '-m', 'sh', '-c', script], env=checkout_env(), capture_output=True, text=True,
                       timeout=600)
    if r.returncode == 99: pytest.skip(f'cannot mount a tmpfs here: {r.stderr[:200]}')
    return r

def test_full_disk_while_saving_a_checkpoint(tiny_model, tmp_path):
    r = segwl_on_small_disk('1m', tmp_path/'m', *commands(None, *tiny_model[1:], tmp_path/'m')['train'])
    assert r.returncode == 2 and f"the disk {tmp_path/'m'} is full" in r.stderr, r.stderr
    assert 'best.pt' in r.stderr and 'Traceback' not in r.stderr

def test_full_disk_while_saving_masks(tiny_model, tmp_path):
    imgs = image_folder(tmp_path/'imgs', 20, side=256)
    r = segwl_on_small_disk('16k', tmp_path/'p', *commands(tiny_model[0], imgs, None, tmp_path/'p')['predict'])
    assert r.returncode == 2 and f"the disk {tmp_path/'p'} is full" in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_model_folder_records_history_curve_and_smp_format(syn, tmp_path):
    "history.csv a row per epoch, training.png from 3 epochs on, and the smp folder loads without segwl."
    import segmentation_models_pytorch as smp
    lines = []
    train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=2)), progress=False, log=lines.append)
    assert not (tmp_path/'m'/'training.png').exists()
    assert 'training.png: not drawn, 2 epoch(s) (a curve needs 3)' in lines
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=3)), progress=False, log=lines.append)
    rows = (tmp_path/'m'/'history.csv').read_text().splitlines()
    assert (rows[0] == 'epoch,loss,val_iou,lr,elapsed_s,partial'
            and [r.split(',')[0] for r in rows[1:]] == ['1', '2', '3'])
    assert rows[3].split(',')[1] == str(info['history'][2]['loss'])
    assert Image.open(tmp_path/'m'/'training.png').size == (600, 360)
    assert info['smp_pretrained'] == 'smp' and json.loads((tmp_path/'m'/'model.json').read_text())['smp_pretrained']
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = load_model(tmp_path/'m', 'cpu').net(x), smp.from_pretrained(str(tmp_path/'m'/'smp')).eval()(x)
    assert torch.allclose(ours, theirs, atol=1e-5)

def test_torchvision_model_has_no_smp_folder(syn, tmp_path):
    info = train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(arch='lraspp_mobilenet_v3_large')), **quiet)
    assert info['smp_pretrained'] is None and not (tmp_path/'m'/'smp').exists()

def test_tensorboard_events_when_installed(syn, tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=2)), **quiet)
    ea = EventAccumulator(str(tmp_path/'m'/'tensorboard'))
    ea.Reload()
    assert [e.step for e in ea.Scalars('loss')] == [1, 2]

def test_no_tensorboard_no_events(syn, tmp_path):
    import importlib.util
    if importlib.util.find_spec('tensorboard'): pytest.skip('tensorboard is installed here')
    train(*syn, tmp_path/'m', TrainSettings(**TINY), **quiet)
    assert not (tmp_path/'m'/'tensorboard').exists()

def test_one_progress_bar_with_the_latest_numbers(syn, tmp_path, capsys):
    "Training shows one bar for the run, ending on the last epoch's numbers, not a line per epoch."
    train(*syn, tmp_path/'m', TrainSettings(**TINY | dict(epochs=3)), progress=True, log=lambda *a: None)
    err = capsys.readouterr().err
    last = err.rstrip('\n').split('\r')[-1]
    assert err.count('\n') == 1 and 'train' in last and 'epoch 3/3, loss ' in last and 'val IoU' in last, err

def test_tiny_random_labels_are_recorded_and_stamped(syn, tmp_path):
    "The labelling run's backends reach model.json, and a tiny-random one stamps the log and the curve's title."
    imgs, msks = syn
    rec = {'segmenter': {'name': 'sam-vit_b', 'kind': 'segmenter', 'weights': 'tiny-random'},
           'scorer': {'name': 'clip-vit-b32', 'kind': 'scorer', 'weights': 'real'}}
    (msks.parent/'config.json').write_text(json.dumps({'models': rec, 'text': 'a disc'}))
    lines = []
    info = train(imgs, msks, tmp_path/'m', TrainSettings(**TINY), progress=False, log=lines.append)
    assert (info['labels_models'], info['tiny_random']) == (rec, True)
    assert json.loads((tmp_path/'m'/'model.json').read_text())['labels_models'] == rec
    assert lines[-1].endswith('[TINY RANDOM MODELS: meaningless]')
    rec['segmenter']['weights'] = 'real'
    (msks.parent/'config.json').write_text(json.dumps({'models': rec}))
    info = train(imgs, msks, tmp_path/'m2', TrainSettings(**TINY), progress=False, log=lines.append)
    assert (info['labels_models'], info['tiny_random']) == (rec, False) and 'TINY' not in lines[-1]

def test_cli_train_stamps_tiny_random_labels(syn, tmp_path):
    imgs, msks = syn
    (msks.parent/'config.json').write_text(json.dumps({'models': {'concept': {'name': 'sam3', 'kind': 'concept',
                                                                              'weights': 'tiny-random'}}}))
    r = segwl('train', '--images', imgs, '--masks', msks, '--out', tmp_path/'m', '--epochs', 1, *TINY_FLAGS,
              '--quiet', check_rc=0)
    assert 'TINY RANDOM MODELS: meaningless' in r.stdout, r.stdout

def _rows(files, **fields) -> str:
    return ''.join(json.dumps(dict(file=f, status='ok', error=None, score=0.9, text_score=0.3, seconds=1) | fields)
                   + '\n' for f in files)

def test_reviewed_rows_are_preferred_by_the_cli(syn, tmp_path):
    "Reviewed rows pass the score filter; --reviewed-only keeps them alone; model.json counts them; weights recorded."
    imgs, msks = syn
    names = sorted(p.name for p in imgs.iterdir())
    man = tmp_path/'manifest.jsonl'
    man.write_text(_rows(names[:2], score=0.2, reviewed='accepted') + _rows(names[2:4], score=0.2) + _rows(names[4:]))
    base = ('train', '--images', imgs, '--masks', msks, '--manifest', man, '--epochs', 1, *TINY_FLAGS, '--quiet')
    r = segwl(*base, '--out', tmp_path/'a', '--min-score', 0.5, '--weight-by-score', check_rc=0)
    assert 'data: 4 of 6 images used (2 reviewed), 2 below min score; weighted by score, mean weight 0.95' in r.stdout
    data = json.loads((tmp_path/'a'/'model.json').read_text())['data']
    assert (data['counts']['reviewed'], data['counts']['below_min_score']) == (2, 2)
    assert data['weights']['min'] == 0.9 and data['weights']['mean'] >= 0.9
    r = segwl(*base, '--out', tmp_path/'b', '--reviewed-only', check_rc=0)
    assert 'data: 2 of 6 images used (2 reviewed), 4 not reviewed' in r.stdout
    r = segwl('train', '--images', imgs, '--masks', msks, '--out', tmp_path/'c', '--weight-by-score', *TINY_FLAGS,
              check_rc=2)
    assert ('--weight-by-score: these read the rows of a labelling manifest: '
            'give --manifest LABELS/manifest.jsonl too' in r.stderr)

def test_weight_by_score_learns_past_low_scored_wrong_labels(tmp_path):
    "Half the labels are wrong (the background marked) with low scores: weighing by score learns the discs anyway."
    imgs, msks = synthetic_dataset(tmp_path/'syn', n=8)
    truth = {p.name: load_mask(p) for p in msks.iterdir()}
    wrong = sorted(truth)[::2]
    for f in wrong: Image.fromarray(((~truth[f]) * 255).astype(np.uint8)).save(msks/f)
    (tmp_path/'m.jsonl').write_text(_rows(wrong, score=0.05) + _rows(sorted(set(truth) - set(wrong)), score=0.95))
    def mean_iou(weigh: bool) -> float:
        s = TrainSettings(**TINY | dict(epochs=30, batch_size=4, val_fraction=0, lr=3e-3, weight_by_score=weigh))
        train(imgs, msks, tmp_path/f'm{weigh}', s, manifest=tmp_path/'m.jsonl', **quiet)
        rows = predict_folder(load_model(tmp_path/f'm{weigh}', 'cpu'), imgs, tmp_path/f'p{weigh}', progress=False)
        masks = {r['file']: load_mask(tmp_path/f'p{weigh}'/'masks'/r['file']) for r in rows}
        return float(np.mean([(masks[f] & truth[f]).sum() / max(1, (masks[f] | truth[f]).sum()) for f in truth]))
    plain, weighed = mean_iou(False), mean_iou(True)
    assert weighed > 0.6 and weighed > plain + 0.2, (plain, weighed)
