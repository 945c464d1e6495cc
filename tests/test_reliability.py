"""Issue 14, labelling side: every bad input or broken output is a clear message and exit 2, never a traceback or a
silent loss; one writer per folder; files readable by colleagues. (Train, predict, evaluate: tests/test_finetune.py;
weights files: tests/test_weights_security.py.)"""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import checkout_env, cli as run
from segwl.folder import read_manifest
from segwl.testing import synthetic_scene, scene_folder

FAST = ['--trials', '2', '--n-object', '3', '--n-background', '3', '--no-progress',
        '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer']




@pytest.fixture
def job(tmp_path):
    "A reference, a folder of 4 scenes, and the `segwl label` argv that labels them into `out`."
    ref, m = synthetic_scene((90, 120), seed=1)
    Image.fromarray(ref).save(tmp_path/'ref.png')
    Image.fromarray(m).save(tmp_path/'ref_mask.png')
    scene_folder(tmp_path/'imgs', [(40, 60), (60, 40), (50, 50), (30, 90)], seed=3)
    def argv(out, *more, ref_mask=tmp_path/'ref_mask.png'):
        return ['label', '--reference', tmp_path/'ref.png', ref_mask, '--text', 'a red ellipse',
                '--images', tmp_path/'imgs', '--out', out, *FAST, *more]
    return argv


def mount_tmpfs(path: Path, opts: str):
    "Mount a tmpfs at `path` (root only); skip the test with the reason where that is not allowed."
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', str(path)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f"needs to mount a tmpfs (root): {r.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    "Mount points made by the test, unmounted afterwards."
    made = []
    def make(name, opts):
        p = tmp_path/name
        mount_tmpfs(p, opts)
        made.append(p)
        return p
    yield make
    for p in made: subprocess.run(['umount', '-l', str(p)])


# ---------------------------------------------------------------- outputs that cannot be written
def test_read_only_out(tmp_path, job, tmpfs):
    ro = tmpfs('ro', 'ro,size=1m')
    code, out, err = run(*job(ro/'labels'))
    assert code == 2 and 'read-only file system' in err and str(ro/'labels') in err, err


def test_out_is_a_file(tmp_path, job):
    (tmp_path/'afile').write_text('x')
    code, out, err = run(*job(tmp_path/'afile'))
    assert code == 2 and 'cannot write' in err and 'afile' in err, err


def test_full_disk_stops_with_a_summary_and_no_half_line(tmp_path, job, tmpfs):
    disk = tmpfs('small', 'size=64k')
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk/'filler').write_bytes(b'\0' * (free - 6 * 4096))        # room for a few small files only
    scene_folder(tmp_path/'imgs', [(64, 64)] * 12, seed=40)
    code, out, err = run(*job(disk/'labels'))
    assert code == 2 and 'is full' in err and str(disk) in err, (out, err)
    assert 'labelled' in out                                        # the summary still printed
    text = (disk/'labels'/'manifest.jsonl').read_text() if (disk/'labels'/'manifest.jsonl').exists() else ''
    assert text == '' or text.endswith('\n')                        # no half line
    for r in read_manifest(disk/'labels'/'manifest.jsonl'):
        assert (disk/'labels'/'masks'/f"{Path(r['file']).stem}.png").exists()
    assert not list((disk/'labels').rglob('*.part'))


# ---------------------------------------------------------------- config files people edit
@pytest.mark.parametrize('content, message', [
    (b'\xff\xfe{"trials": 2}', 'not UTF-8'),
    (b'[' * 100_000, 'nested too deeply'),
    (b'[]', 'expected a JSON object, got list'),
    (b'{"trials": 2,', 'not valid JSON'),
])
def test_bad_settings_file(tmp_path, job, content, message):
    (tmp_path/'s.json').write_bytes(content)
    code, out, err = run(*job(tmp_path/'out'), '--config', tmp_path/'s.json')
    assert code == 2 and message in err and 's.json' in err, err


def test_millions_of_unknown_keys_give_one_short_line(tmp_path, job):
    (tmp_path/'s.json').write_text('{' + ', '.join(f'"k{i}": 0' for i in range(2_500_000)) + '}')  # json.dumps's text
    code, out, err = run(*job(tmp_path/'out'), '--config', tmp_path/'s.json')
    assert code == 2 and 'unknown setting(s) k0, k1' in err and '(+2499990 more)' in err and len(err) < 2000


def test_counts_have_upper_bounds(tmp_path, job):
    code, out, err = run(*job(tmp_path/'out'), '--n-object', '100000000')
    assert code == 2 and 'n_object=100000000: expected an integer in [0, 256]' in err


@pytest.mark.parametrize('content, message', [(b'[]', 'expected a JSON object'), (b'{oops', 'not valid JSON')])
def test_broken_config_of_an_earlier_run(tmp_path, job, content, message):
    (tmp_path/'out').mkdir()
    (tmp_path/'out'/'config.json').write_bytes(content)
    code, out, err = run(*job(tmp_path/'out'))
    assert code == 2 and message in err and 'config.json' in err, err
    code, out, err = run(*job(tmp_path/'out'), '--no-resume')   # starting over is the way out
    assert code == 0, err


def test_tampered_manifest_rows_are_redone(tmp_path, job):
    assert run(*job(tmp_path/'out'))[0] == 0
    man = tmp_path/'out'/'manifest.jsonl'
    lines = man.read_bytes().splitlines()
    bad = json.loads(lines[0])
    bad['file'] = [bad['file']]                                     # a list where a name belongs
    man.write_bytes(b'\n'.join([json.dumps(bad).encode(), b'\x80\x81 binary \xff', *lines[2:]]) + b'\n')
    code, out, err = run(*job(tmp_path/'out'))
    assert code == 0 and '2 labelled, 0 absent, 0 failed, 2 already done' in out, (out, err)
    assert sorted(r['file'] for r in read_manifest(man)) == sorted(p.name for p in (tmp_path/'imgs').iterdir())


# ---------------------------------------------------------------- references that are not masks
def test_photo_given_as_the_mask(tmp_path, job):
    code, out, err = run(*job(tmp_path/'out', ref_mask=tmp_path/'ref.png'))
    assert code == 2 and 'ref.png' in err and 'looks like a photo' in err, err


def test_nearly_all_object_mask(tmp_path, job):
    m = np.full((90, 120), 255, np.uint8)
    m[0, :20] = 0
    Image.fromarray(m).save(tmp_path/'nearly.png')
    code, out, err = run(*job(tmp_path/'out', ref_mask=tmp_path/'nearly.png'))
    assert code == 2 and 'nearly.png' in err and 'almost no background' in err, err


# ---------------------------------------------------------------- starting over, permissions
def test_no_resume_empties_masks(tmp_path, job):
    assert run(*job(tmp_path/'out'))[0] == 0
    (tmp_path/'out'/'masks'/'old_run_only.png').write_bytes(b'')
    for p in sorted((tmp_path/'imgs').iterdir())[:2]: p.unlink()
    with pytest.warns(Warning, match='removing 5 mask'):
        code, out, err = run(*job(tmp_path/'out'), '--no-resume')
    assert code == 0
    stems = lambda d: sorted(p.stem for p in d.iterdir())
    assert stems(tmp_path/'out'/'masks') == stems(tmp_path/'imgs')


def test_files_follow_the_umask(tmp_path, job):
    old = os.umask(0o022)
    try: assert run(*job(tmp_path/'out'))[0] == 0
    finally: os.umask(old)
    out = tmp_path/'out'
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in [out/'config.json', out/'manifest.jsonl',
                                                             *(out/'masks').iterdir()]}
    assert set(modes.values()) == {'0o644'}, modes


# ---------------------------------------------------------------- one writer per folder
SLOW_LABEL = '''
import sys, time
from segwl.registry import register_backend
from segwl.testing import ColourSegmenter
class Slow(ColourSegmenter):
    def predict(self, *a, **k):
        time.sleep(0.25)
        return super().predict(*a, **k)
register_backend('slow-colour', 'segmenter', Slow)
from segwl.cli import main
sys.exit(main(sys.argv[1:]))
'''


def spawn(argv):
    env = checkout_env()
    return subprocess.Popen([sys.executable, '-c', SLOW_LABEL, *map(str, argv)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_rows(man, n, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout and len(read_manifest(man)) < n: time.sleep(0.01)


def test_two_runs_one_folder_one_refuses_no_row_lost(tmp_path, job):
    scene_folder(tmp_path/'imgs', [(48, 64)] * 16, seed=50)
    argv = [*job(tmp_path/'out'), '--segmenter', 'slow-colour']
    first = spawn(argv)
    wait_rows(tmp_path/'out'/'manifest.jsonl', 1)
    first.send_signal(signal.SIGSTOP)              # paused mid-run, holding the folder, however slow the second starts
    try:
        second = spawn(argv)
        out2, err2 = second.communicate(timeout=120)
    finally: first.send_signal(signal.SIGCONT)
    out1, err1 = first.communicate(timeout=300)
    assert second.returncode == 2 and 'being written by another process' in err2 and f'pid {first.pid}' in err2
    assert first.returncode == 0, err1
    rows = read_manifest(tmp_path/'out'/'manifest.jsonl')
    assert len(rows) == 16 and len({r['file'] for r in rows}) == 16


def test_sigkill_at_random_moments_then_rerun(tmp_path, job):
    "Killed three times at random moments, then rerun: every image labelled once, no temporary file left."
    scene_folder(tmp_path/'imgs', [(48, 64)] * 16, seed=60)
    argv = [*job(tmp_path/'out'), '--segmenter', 'slow-colour']
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = spawn(argv)
        time.sleep(float(rng.uniform(2.0, 6.0)))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    p = spawn(argv)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    rows = read_manifest(tmp_path/'out'/'manifest.jsonl')
    assert sorted(r['file'] for r in rows) == sorted(q.name for q in (tmp_path/'imgs').iterdir())
    assert not list((tmp_path/'out').rglob('*.part'))


# ---------------------------------------------------------------- issue 22: exports never touch their sources
def snapshot(root: Path) -> dict:
    "Every folder, file and link under `root`: a file's bytes, a link's target; to compare before and after."
    out = {}
    for here, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(here)/n
            out[str(p.relative_to(root))] = (('link', os.readlink(p)) if p.is_symlink() else
                                              'dir' if p.is_dir() else p.read_bytes())
    return out


@pytest.fixture
def project(tmp_path):
    "A project folder as a user keeps it: images/ and, in labels/, what `segwl label` writes (two ok rows, an absent)."
    from segwl.data import save_mask
    from segwl.folder import manifest_row
    root, rng, rows = tmp_path/'project', np.random.default_rng(0), []
    (root/'images').mkdir(parents=True)
    yy, xx = np.mgrid[:40, :60]
    for i, status in enumerate(['ok', 'ok', 'absent']):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(root/'images'/f'im{i}.png')
        d2 = (yy - 20)**2 + (xx - 20 - 5*i)**2
        m = ((d2 < 12**2) & (d2 >= 5**2)) if status == 'ok' else np.zeros((40, 60), bool)
        m[34:36, 52:55] = status == 'ok'                             # a speck: a second, small part
        save_mask(m, root/'labels'/'masks'/f'im{i}.png')
        rows.append(manifest_row(f'im{i}.png', status, score=[0.5, 0.6, 0.7][i]))
    (root/'labels'/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (root/'labels'/'config.json').write_text(json.dumps(dict(text='a photo of a cat', images=str(root/'images'))))
    return root


FORMATS = ['coco', 'yolo', 'voc', 'label-studio']


@pytest.mark.parametrize('format', FORMATS)
@pytest.mark.parametrize('where, how, what', [
    ('.', 'contains', 'labels folder'),                 # the issue's case: DIR holds images/ and labels/
    ('labels', 'is', 'labels folder'), ('images', 'is', 'images folder'),
    ('labels/export', 'lies inside', 'labels folder'), ('images/export', 'lies inside', 'images folder'),
    ('labels/masks', 'lies inside', 'labels folder'), ('link-to-labels', 'is', 'labels folder'),
    ('link-to-images/sub', 'lies inside', 'images folder')])
def test_export_out_overlapping_the_sources_is_refused(tmp_path, project, format, where, how, what):
    "Refused before anything is touched (exit 2, naming both folders); symlinks resolved; every file as it was."
    for name in ('labels', 'images'): os.symlink(project/name, project/f'link-to-{name}')
    before = snapshot(tmp_path)
    out = project/where
    code, _, err = run('export', project/'labels', '--format', format, '--out', out)
    assert code == 2 and 'Traceback' not in err, err
    assert f"--out {out} {how} the {what} {project/what.split()[0]}" in err, err
    assert f"apart from the labels folder {project/'labels'} and the images folder {project/'images'}" in err, err
    assert snapshot(tmp_path) == before                          # sources byte-identical, nothing written anywhere


@pytest.mark.parametrize('format', FORMATS)
def test_export_out_holding_other_files_is_refused(tmp_path, project, format):
    (tmp_path/'mine'/'images').mkdir(parents=True)
    (tmp_path/'mine'/'images'/'holiday.jpg').write_bytes(b'my photo')
    (tmp_path/'mine'/'notes.txt').write_text('mine')
    before = snapshot(tmp_path)
    code, _, err = run('export', project/'labels', '--format', format, '--out', tmp_path/'mine')
    assert code == 2 and f"--out {tmp_path/'mine'} holds files a {format} export does not write" in err, err
    assert 'notes.txt' in err and 'an export writes only into a new or empty folder' in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize('format', FORMATS)
def test_export_writes_only_its_own_folder_and_leaves_no_lock(tmp_path, project, format):
    "A fresh export: nothing outside --out changes; --out holds the format's files only (no .segwl.lock to zip)."
    from segwl.export import _foreign
    before = snapshot(tmp_path)
    code, out, err = run('export', project/'labels', '--format', format, '--out', tmp_path/'exported')
    assert code == 0, err
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith('exported')} == before
    assert _foreign(tmp_path/'exported', format, {'im0.png', 'im1.png'}) == []
    assert not list((tmp_path/'exported').rglob('.segwl.lock')) and not list((tmp_path/'exported').rglob('.*.part'))
    code, out, err = run('export', project/'labels', '--format', format, '--out', tmp_path/'exported')
    assert code == 0, err                                         # a re-export into its own folder is fine


# ---------------------------------------------------------------- issue 22: export-model never writes over its input
@pytest.fixture(scope='module')
def model_folder(tmp_path_factory) -> Path:
    import torch
    from segwl.finetune import TrainSettings, synthetic_dataset, train
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('model')
    train(*synthetic_dataset(d/'data', n=4, size=32), d/'model', TrainSettings(arch='tiny-unet', size=32, epochs=1,
          batch_size=2, pretrained=False, device='cpu', val_fraction=0), progress=False, log=lambda *a: None)
    return d/'model'


@pytest.mark.parametrize('target, message', [
    ('best.pt', 'is best.pt of the model folder {m}, which the model needs'),
    ('model.json', 'is model.json of the model folder {m}, which the model needs'),
    ('.', 'is the model folder'), ('link.pt', 'is best.pt of the model folder {m}')])
def test_export_model_never_writes_over_its_input(tmp_path, model_folder, target, message):
    m = tmp_path/'m'
    shutil.copytree(model_folder, m)
    os.symlink(m/'best.pt', tmp_path/'link.pt')
    out = tmp_path/'link.pt' if target == 'link.pt' else m/target
    before = snapshot(tmp_path)
    code, _, err = run('export-model', m, '--format', 'torchscript', '--out', out)
    assert code == 2 and f"--out {out} {message.format(m=m)}" in err and 'Traceback' not in err, err
    assert snapshot(tmp_path) == before
    code, _, err = run('predict', '--model', m, '--images', model_folder.parent/'data'/'images', '--out',
                       tmp_path/'pred', '--device', 'cpu', '--quiet')
    assert code == 0, err                                         # the model still predicts


def test_export_model_writes_a_new_file_in_the_model_folder(tmp_path, model_folder):
    m = tmp_path/'m'
    shutil.copytree(model_folder, m)
    before = snapshot(m)
    code, out, err = run('export-model', m, '--format', 'torchscript', '--out', m/'model.torchscript.pt')
    assert code == 0, err
    assert {k: v for k, v in snapshot(m).items() if k != 'model.torchscript.pt'} == before


@pytest.mark.parametrize('n', ['0', '-1', '100000'])
def test_export_model_check_images_bounds(tmp_path, model_folder, n):
    code, _, err = run('export-model', model_folder, '--out', tmp_path/'m.pt', '--check-images', n)
    assert code == 2 and f"--check-images {n}: expected a whole number from 1 to 64" in err, err
    assert not (tmp_path/'m.pt').exists()


# ---------------------------------------------------------------- issue 22: hostile or odd instances files and scores
def _instances(project, stem, items):
    (project/'labels'/'instances').mkdir(exist_ok=True)
    (project/'labels'/'instances'/f'{stem}.json').write_text(json.dumps(items))


def _rle(h=40, w=60):
    from segwl.export import coco_segment
    m = np.zeros((h, w), bool)
    m[5:20, 5:30] = True
    return coco_segment(m)['segmentation']


def test_a_65_byte_instances_file_declaring_40000x40000_is_not_decoded(tmp_path, project):
    "The declared size is checked before decoding: the image is left out with a message, memory stays small."
    side = project/'labels'/'instances'/'im0.json'
    side.parent.mkdir()
    side.write_text('[{"rle": {"size": [40000, 40000], "counts": "0"}, "score": 0.9}]')
    assert len(side.read_bytes()) < 70
    # the peak of the export alone: VmHWM (ru_maxrss survives exec, so it would be pytest's own peak)
    code = ('import re, sys\nfrom segwl.cli import main\nrc = main(sys.argv[1:])\n'
            'hwm = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]\n'
            'print("maxrss", hwm, "rc", rc)')
    env = checkout_env()
    r = subprocess.run([sys.executable, '-c', code, 'export', str(project/'labels'), '--format', 'coco', '--out',
                        str(tmp_path/'coco')], env=env, capture_output=True, text=True, timeout=120)
    kb, rc = int(r.stdout.split('maxrss ')[1].split()[0]), int(r.stdout.split(' rc ')[1])
    assert rc == 1 and 'Traceback' not in r.stderr, r.stderr
    assert f"instances file {side}: item 0 declares 40000x40000 (WxH), the mask is 60x40" in r.stderr
    assert kb < 600_000, f"peak {kb / 1e3:.0f} MB"               # 3.1 GB when the RLE was decoded first
    assert json.loads((tmp_path/'coco'/'annotations.json').read_text())['images'][0]['file_name'] == 'im1.png'


@pytest.mark.parametrize('score', ['"0.9"', '[0.9]', '{"a": 1}', 'true'])
def test_an_instance_score_that_is_not_a_number(tmp_path, project, score):
    "One image's instances file with a string or list score: that image is left out, named (exit 1, no traceback)."
    (project/'labels'/'instances').mkdir()
    (project/'labels'/'instances'/'im0.json').write_text(f'[{{"rle": {json.dumps(_rle())}, "score": {score}}}]')
    code, out, err = run('export', project/'labels', '--format', 'coco', '--out', tmp_path/'coco')
    assert code == 1 and 'Traceback' not in err, err
    assert f"instances file {project/'labels'/'instances'/'im0.json'}: item 0: score " in err
    assert 'is not a number' in err and '1 images, ' in out


def test_a_manifest_score_that_is_not_a_number(tmp_path, project):
    man = project/'labels'/'manifest.jsonl'
    rows = [json.loads(line) for line in man.read_text().splitlines()]
    rows[0]['score'] = 'high'
    man.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    code, out, err = run('export', project/'labels', '--format', 'label-studio', '--out', tmp_path/'ls')
    assert code == 1 and f"{man}, the row of im0.png: score 'high' is not a number" in err, err


def _strict_json(path):
    "The JSON at `path`, refusing NaN and Infinity (which Python's json reads, and no other reader does)."
    def refuse(c): raise ValueError(f"{path}: {c} is not JSON")
    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.mark.parametrize('format', ['coco', 'label-studio'])
def test_nan_and_infinite_scores_never_reach_the_json(tmp_path, project, format):
    "A NaN score (manifest) or an infinite one (instances file): valid JSON, the object kept without it, counted."
    man = project/'labels'/'manifest.jsonl'
    man.write_text(man.read_text().replace('"score": 0.5', '"score": NaN'))
    _instances(project, 'im1', [{'rle': _rle(), 'score': float('inf')}, {'rle': _rle(), 'score': 0.7}])
    code, out, err = run('export', project/'labels', '--format', format, '--out', tmp_path/'x',
                         '--min-area', '0')
    assert code == 0, err
    assert '3 objects written without their score (NaN or infinite)' in out, out      # im0's 2 parts, im1's inf
    doc = _strict_json(tmp_path/'x'/('annotations.json' if format == 'coco' else 'tasks.json'))
    if format == 'coco': assert [a.get('score') for a in doc['annotations']] == [None, None, None, 0.7]
    else: assert [[r.get('score') for r in t['predictions'][0]['result']] for t in doc] == [[None, None], [None, 0.7]]


def test_nan_scores_never_pass_min_score(tmp_path, project):
    man = project/'labels'/'manifest.jsonl'
    man.write_text(man.read_text().replace('"score": 0.5', '"score": NaN'))
    code, out, err = run('export', project/'labels', '--format', 'coco', '--out', tmp_path/'x',
                         '--min-score', '0.1', '--min-area', '0')
    assert code == 0, err
    doc = _strict_json(tmp_path/'x'/'annotations.json')
    assert [a['image_id'] for a in doc['annotations']] == [2, 2]          # im0's NaN-scored parts left out
    assert '2 scoring below 0.1 or without a score (--min-score)' in out, out
    code, out, err = run('export', project/'labels', '--format', 'voc', '--out', tmp_path/'v',
                         '--min-score', '0.1')
    assert code == 2 and 'voc writes pixels, not objects' in err


@pytest.mark.parametrize('template, message', [
    ('/d/{stem}', 'unknown field {stem}'), ('/d/{name', "expected '}' before end of string"),
    ('/d/}{name}', "Single '}' encountered"), ('/d/{name:99999999}', '{name} takes no format spec'),
    ('/d/{path!r}', '{path} takes no format spec or conversion'), ('/d/{0}', 'unknown field {0}')])
def test_image_url_templates_that_cannot_be_filled(tmp_path, project, template, message):
    before = snapshot(tmp_path)
    code, _, err = run('export', project/'labels', '--format', 'label-studio', '--out', tmp_path/'ls',
                       '--image-url', template)
    assert code == 2 and f"image URL template {template!r} (--image-url): {message}" in err, err
    assert 'fields allowed: {name} (the image\'s file name) and {path} (its absolute path)' in err
    assert snapshot(tmp_path) == before


def test_the_summary_says_how_many_small_parts_were_left_out(tmp_path, project):
    "754 parts -> 13 objects used to pass in silence: the summary line now says how many and why."
    code, out, err = run('export', project/'labels', '--format', 'coco', '--out', tmp_path/'c',
                         '--min-area', '0.005')
    assert code == 0 and ('objects left out: 2 smaller than 0.005 of their image (--min-area; 0 keeps every part)'
                          in out), out


# ---------------------------------------------------------------- issue 22: run-notebook into a read-only place
def test_run_notebook_read_only_output(tmp_path, tmpfs):
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('n = 1', metadata={'tags': ['parameters']})])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='python3', language='python')
    nbformat.write(nb, tmp_path/'job.ipynb')
    ro = tmpfs('ro', 'ro,size=1m')
    code, out, err = run('run-notebook', tmp_path/'job.ipynb', ro/'ran.ipynb', '--no-progress')
    assert code == 2 and f"cannot write {ro/'ran.ipynb'}: read-only file system" in err, err
    assert 'Traceback' not in err


@pytest.mark.parametrize('value, message', [
    ('[["b.jpg", "b.png"]', 'parameter more_references: not JSON ('),
    ('[["b.jpg"]]', """parameter more_references='[["b.jpg"]]': expected a JSON list of [image, mask] pairs""")])
def test_malformed_more_references_job_parameter_exits_2(tmp_path, value, message):
    "The pipeline job checks more_references first: exit 2 with the parameter's name, as the docs say (it was 1)."
    ref, m = synthetic_scene((60, 80), seed=1)
    Image.fromarray(ref).save(tmp_path/'ref.png')
    Image.fromarray(m).save(tmp_path/'ref_mask.png')
    scene_folder(tmp_path/'imgs', [(40, 60)], seed=3)
    code, out, err = run('run-notebook', 'pipeline', tmp_path/'ran.ipynb', '-p', 'reference_image',
                         tmp_path/'ref.png', '-p', 'reference_mask', tmp_path/'ref_mask.png', '-p', 'images',
                         tmp_path/'imgs', '-p', 'method', 'canvas', '-p', 'segmenter', 'colour-concept',
                         '-p', 'more_references', value, '-p', 'out', tmp_path/'job', '--no-progress')
    assert code == 2 and 'SegwlError: ' + message in err, err
    assert not (tmp_path/'job').exists()
