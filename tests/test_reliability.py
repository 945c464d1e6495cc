"""Issue 14, labelling side: every bad input or broken output is a clear message and exit 2, never a traceback or a
silent loss; one writer per folder; files readable by colleagues. (Train, predict, evaluate: tests/test_finetune.py;
weights files: tests/test_weights_security.py.)"""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
import segwl.cli as cli
from segwl.folder import read_manifest
from segwl.testing import synthetic_scene, scene_folder

ROOT = Path(__file__).resolve().parent.parent
FAST = ['--trials', '2', '--n-object', '3', '--n-background', '3', '--no-progress',
        '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer']


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


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
def test_read_only_out(tmp_path, capsys, job, tmpfs):
    ro = tmpfs('ro', 'ro,size=1m')
    code, out, err = run(capsys, *job(ro/'labels'))
    assert code == 2 and 'read-only file system' in err and str(ro/'labels') in err, err


def test_out_is_a_file(tmp_path, capsys, job):
    (tmp_path/'afile').write_text('x')
    code, out, err = run(capsys, *job(tmp_path/'afile'))
    assert code == 2 and 'cannot write' in err and 'afile' in err, err


def test_full_disk_stops_with_a_summary_and_no_half_line(tmp_path, capsys, job, tmpfs):
    disk = tmpfs('small', 'size=64k')
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk/'filler').write_bytes(b'\0' * (free - 6 * 4096))        # room for a few small files only
    scene_folder(tmp_path/'imgs', [(64, 64)] * 12, seed=40)
    code, out, err = run(capsys, *job(disk/'labels'))
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
def test_bad_settings_file(tmp_path, capsys, job, content, message):
    (tmp_path/'s.json').write_bytes(content)
    code, out, err = run(capsys, *job(tmp_path/'out'), '--config', tmp_path/'s.json')
    assert code == 2 and message in err and 's.json' in err, err


def test_millions_of_unknown_keys_give_one_short_line(tmp_path, capsys, job):
    (tmp_path/'s.json').write_text('{' + ', '.join(f'"k{i}": 0' for i in range(2_500_000)) + '}')  # json.dumps's text
    code, out, err = run(capsys, *job(tmp_path/'out'), '--config', tmp_path/'s.json')
    assert code == 2 and 'unknown setting(s) k0, k1' in err and '(+2499990 more)' in err and len(err) < 2000


def test_counts_have_upper_bounds(tmp_path, capsys, job):
    code, out, err = run(capsys, *job(tmp_path/'out'), '--n-object', '100000000')
    assert code == 2 and 'n_object=100000000: expected an integer in [0, 256]' in err


@pytest.mark.parametrize('content, message', [(b'[]', 'expected a JSON object'), (b'{oops', 'not valid JSON')])
def test_broken_config_of_an_earlier_run(tmp_path, capsys, job, content, message):
    (tmp_path/'out').mkdir()
    (tmp_path/'out'/'config.json').write_bytes(content)
    code, out, err = run(capsys, *job(tmp_path/'out'))
    assert code == 2 and message in err and 'config.json' in err, err
    code, out, err = run(capsys, *job(tmp_path/'out'), '--no-resume')   # starting over is the way out
    assert code == 0, err


def test_tampered_manifest_rows_are_redone(tmp_path, capsys, job):
    assert run(capsys, *job(tmp_path/'out'))[0] == 0
    man = tmp_path/'out'/'manifest.jsonl'
    lines = man.read_bytes().splitlines()
    bad = json.loads(lines[0])
    bad['file'] = [bad['file']]                                     # a list where a name belongs
    man.write_bytes(b'\n'.join([json.dumps(bad).encode(), b'\x80\x81 binary \xff', *lines[2:]]) + b'\n')
    code, out, err = run(capsys, *job(tmp_path/'out'))
    assert code == 0 and '2 labelled, 0 absent, 0 failed, 2 already done' in out, (out, err)
    assert sorted(r['file'] for r in read_manifest(man)) == sorted(p.name for p in (tmp_path/'imgs').iterdir())


# ---------------------------------------------------------------- references that are not masks
def test_photo_given_as_the_mask(tmp_path, capsys, job):
    code, out, err = run(capsys, *job(tmp_path/'out', ref_mask=tmp_path/'ref.png'))
    assert code == 2 and 'ref.png' in err and 'looks like a photo' in err, err


def test_nearly_all_object_mask(tmp_path, capsys, job):
    m = np.full((90, 120), 255, np.uint8)
    m[0, :20] = 0
    Image.fromarray(m).save(tmp_path/'nearly.png')
    code, out, err = run(capsys, *job(tmp_path/'out', ref_mask=tmp_path/'nearly.png'))
    assert code == 2 and 'nearly.png' in err and 'almost no background' in err, err


# ---------------------------------------------------------------- starting over, permissions
def test_no_resume_empties_masks(tmp_path, capsys, job):
    assert run(capsys, *job(tmp_path/'out'))[0] == 0
    (tmp_path/'out'/'masks'/'old_run_only.png').write_bytes(b'')
    for p in sorted((tmp_path/'imgs').iterdir())[:2]: p.unlink()
    with pytest.warns(Warning, match='removing 5 mask'):
        code, out, err = run(capsys, *job(tmp_path/'out'), '--no-resume')
    assert code == 0
    assert sorted(p.stem for p in (tmp_path/'out'/'masks').iterdir()) == sorted(p.stem for p in (tmp_path/'imgs').iterdir())


def test_files_follow_the_umask(tmp_path, capsys, job):
    old = os.umask(0o022)
    try: assert run(capsys, *job(tmp_path/'out'))[0] == 0
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
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
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
