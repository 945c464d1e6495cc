"""A manifest row names a file, never a path (issue 22, item 1); rows are whole or absent (item 4); one rule for
reviewed."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import checkout_env
import segwl.cli as cli
from segwl.errors import SegwlError
from segwl.folder import (ManifestWriter, ManifestError, read_manifest, manifest_row, name_problem, is_reviewed,
                          label_folder, REVIEWED)
from segwl.outputs import OutputError, save_mask
from segwl.testing import synthetic_scene, concept_scene

TINY_FLAGS = ('--arch', 'tiny-unet', '--size', 32, '--batch-size', 2, '--no-pretrained', '--device', 'cpu',
              '--epochs', 1)
BAD = ['../../elsewhere/secret.jpg', '/etc/passwd', 'a/b.jpg', '..\\x.jpg']

# ---------------------------------------------------------------- the reader
@pytest.mark.parametrize('name,why', [('../../elsewhere/secret.jpg', 'a path'), ('/etc/passwd', 'a path'),
                                      ('a/b.jpg', 'a path'), ('..\\x.jpg', 'a path'), ('..', 'names a folder'),
                                      ('C:x.jpg', 'drive'), ('a\x00.jpg', 'NUL'), ('', 'empty')])
def test_read_manifest_refuses_a_row_that_is_not_a_name(tmp_path, name, why):
    good = json.dumps(manifest_row('a.jpg'))
    (tmp_path/'manifest.jsonl').write_text(good + '\n' + json.dumps(manifest_row(name)) + '\n' + good + '\n')
    with pytest.raises(ManifestError) as e: read_manifest(tmp_path/'manifest.jsonl')
    assert isinstance(e.value, SegwlError) and why in str(e.value)
    assert f"{tmp_path/'manifest.jsonl'}, line 2: file {name!r}" in str(e.value)

def test_a_file_that_is_no_text_is_skipped_as_before(tmp_path):
    "A list names nothing: the row is skipped and its image redone (docs/reliability.md), not refused."
    (tmp_path/'manifest.jsonl').write_text(json.dumps(manifest_row(['x'])) + '\n' + json.dumps(manifest_row('a.jpg')))
    assert [r['file'] for r in read_manifest(tmp_path/'manifest.jsonl')] == ['a.jpg']

def test_plain_names_stay_names():
    assert [name_problem(n) for n in ('a.jpg', 'photo..jpg', '.x.png', 'ü ñ 名.png', '12:30.png')] == [None] * 5

# ---------------------------------------------------------------- every reader, through the command line
def _tree(root: Path, leave_out=()) -> dict:
    "`{relative path: bytes or 'dir'}` of everything under `root`, but `leave_out` (relative paths and their insides)."
    out = {}
    for p in sorted(root.rglob('*')):
        rel = p.relative_to(root).as_posix()
        if any(rel == x or rel.startswith(x + '/') for x in leave_out): continue
        out[rel] = 'dir' if p.is_dir() else p.read_bytes()
    return out

class Opens:
    "Records every file event (open, link, copy, listing) under the watched paths: an audit hook, on while `watch`."
    watch: list = []
    seen: list = []

    @classmethod
    def hook(cls, event, args):
        if not cls.watch or not event.startswith(('open', 'os.', 'shutil.')): return
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)):
                p = os.path.realpath(os.fsdecode(a))
                if any(p == w or p.startswith(w + os.sep) for w in cls.watch): cls.seen.append((event, p))

sys.addaudithook(Opens.hook)

@pytest.fixture
def job(tmp_path, capsys):
    "A canvas labelling run (colour stand-in) over data/images, the files a bad row points at, and the label argv."
    imgs = tmp_path/'data'/'images'
    (imgs/'a').mkdir(parents=True)
    for k, n in enumerate([1, 2]):
        Image.fromarray(concept_scene((60, 80), n, seed=300 + k)[0]).save(imgs/f'scene_{n}.png')
    Image.fromarray(synthetic_scene((40, 40), seed=9)[0]).save(imgs/'a'/'b.jpg')          # a/b.jpg: it exists
    Image.fromarray(synthetic_scene((40, 40), seed=8)[0]).save(tmp_path/'data'/'x.jpg')   # ..\x.jpg on Windows
    (tmp_path/'elsewhere').mkdir()
    Image.fromarray(synthetic_scene((40, 40), seed=7)[0]).save(tmp_path/'elsewhere'/'secret.jpg')
    ref, m = synthetic_scene((60, 90), seed=101)
    Image.fromarray(ref).save(tmp_path/'ref.png')
    Image.fromarray(m).save(tmp_path/'ref_mask.png')
    label = ['label', '--method', 'canvas', '--segmenter', 'colour-concept', '--reference', tmp_path/'ref.png',
             tmp_path/'ref_mask.png', '--images', imgs, '--out', tmp_path/'labels', '--no-progress']
    assert cli.main([str(a) for a in label]) == 0
    capsys.readouterr()
    watch = [tmp_path/'elsewhere', Path('/etc/passwd'), imgs/'a', tmp_path/'data'/'x.jpg']
    return tmp_path, imgs, label, [os.path.realpath(w) for w in watch]

COMMANDS = {
    'export-yolo': (lambda t, imgs, label: ['export', t/'labels', '--format', 'yolo', '--out', t/'exp'], 'exp'),
    'export-coco': (lambda t, imgs, label: ['export', t/'labels', '--format', 'coco', '--out', t/'exp'], 'exp'),
    'review': (lambda t, imgs, label: ['review', t/'labels', '--images', imgs, '--sheet', t/'sheet.png'], 'sheet.png'),
    'train': (lambda t, imgs, label: ['train', '--images', imgs, '--masks', t/'labels'/'masks', '--manifest',
                                      t/'labels'/'manifest.jsonl', '--out', t/'model', *TINY_FLAGS], 'model'),
    'label': (lambda t, imgs, label: label, 'labels/.segwl.lock'),
}

@pytest.mark.parametrize('bad', BAD)
@pytest.mark.parametrize('command', list(COMMANDS))
def test_a_row_naming_a_path_stops_every_reader_before_anything_is_written(job, capsys, command, bad):
    t, imgs, label, watch = job
    rows = (t/'labels'/'manifest.jsonl').read_text().splitlines()
    row = dict(json.loads(rows[0]), file=bad)
    (t/'labels'/'manifest.jsonl').write_text('\n'.join(rows + [json.dumps(row)]) + '\n')
    masks = sorted((t/'labels'/'masks').iterdir())
    (t/'labels'/'masks'/f'{Path(bad).stem}.png').write_bytes(masks[0].read_bytes())   # the row's mask is there
    argv, out = COMMANDS[command]
    before = _tree(t, [out])
    Opens.seen, Opens.watch = [], watch
    try: code = cli.main([str(a) for a in argv(t, imgs, label)])
    finally: Opens.watch = []
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"manifest.jsonl, line {len(rows) + 1}: file {bad!r} is refused" in err and 'never by a path' in err, err
    assert Opens.seen == []                                        # the outside file: never opened, linked, listed
    assert _tree(t, [out]) == before                               # the sources and the labels: byte-identical
    if (t/out).is_dir(): assert [p.name for p in (t/out).rglob('*')] in ([], ['.segwl.lock'])
    else: assert not (t/out).exists() or out.endswith('.segwl.lock')

# ---------------------------------------------------------------- one rule for reviewed
VERDICTS = ['accepted', 'rejected', 'fixed', 'yes', ['fixed'], True, 'Accepted', None]

def test_only_segwls_verdicts_count_as_reviewed():
    assert [is_reviewed(dict(reviewed=v)) for v in VERDICTS] == [True] * 3 + [False] * 5
    assert REVIEWED == ('accepted', 'rejected', 'fixed') and not is_reviewed(None)

class Boxes:
    "A labeller of a fixed square, its results carrying every field of the `LabelResult` protocol."
    text, references = None, []
    settings = type('S', (), dict(to_dict=lambda self: dict(side=4)))()
    def label(self, image):
        m = np.zeros(image.shape[:2], bool)
        m[:4, :4] = True
        return type('R', (), dict(mask=m, score=0.8, present=True, instances=None, text_score=None,
                                  candidate_scores=[]))()

@pytest.mark.parametrize('resume', [True, False])
def test_label_keeps_exactly_the_reviewed_rows(tmp_path, resume):
    imgs = tmp_path/'imgs'
    imgs.mkdir()
    for i in range(len(VERDICTS)): Image.fromarray(np.full((10, 10, 3), 50, np.uint8)).save(imgs/f'i{i}.png')
    out = tmp_path/'out'
    label_folder(Boxes(), imgs, out, progress=False)
    mine = np.zeros((10, 10), bool)
    mine[5:, 5:] = True                                             # a person's mask: not the labeller's
    rows = []
    for i, (r, v) in enumerate(zip(read_manifest(out/'manifest.jsonl'), VERDICTS)):
        save_mask(mine, out/'masks'/f'i{i}.png')
        rows.append(dict(r, status='error', reviewed=v) if v is not None else dict(r, status='error'))
    (out/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    n = label_folder(Boxes(), imgs, out, resume=resume, progress=False)
    kept = {r['file'] for r in read_manifest(out/'manifest.jsonl') if r['status'] == 'error'}
    assert kept == {f'i{i}.png' for i, v in enumerate(VERDICTS) if is_reviewed(dict(reviewed=v))}
    assert (n['skipped'], n['ok']) == (3, len(VERDICTS) - 3)
    for i, v in enumerate(VERDICTS):                               # a verdict's mask stays; the others are redone
        m = np.asarray(Image.open(out/'masks'/f'i{i}.png')) > 0
        assert (m == mine).all() == is_reviewed(dict(reviewed=v)), (v, m.sum())

def test_train_keeps_the_same_reviewed_rows_as_label(tmp_path):
    "Training with reviewed_only keeps exactly the rows is_reviewed says (the one rule, whoever reads it)."
    from segwl.finetune import select_training_data
    imgs, masks = tmp_path/'imgs', tmp_path/'masks'
    imgs.mkdir()
    masks.mkdir()
    rows = []
    for i, v in enumerate(VERDICTS):
        Image.fromarray(np.full((8, 8, 3), 9, np.uint8)).save(imgs/f'i{i}.png')
        save_mask(np.eye(8), masks/f'i{i}.png')
        rows.append(manifest_row(f'i{i}.png', score=0.9) | ({} if v is None else dict(reviewed=v)))
    (tmp_path/'m.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    pairs, counts = select_training_data(imgs, masks, tmp_path/'m.jsonl', reviewed_only=True)
    assert {p.name for p, _ in pairs} == {r['file'] for r in rows if is_reviewed(r)}
    assert counts['reviewed'] == 3 and counts['not_reviewed'] == len(VERDICTS) - 3

def test_review_sees_the_same_reviewed_rows_as_label_and_train(tmp_path):
    "The review's filters, its count and relabel ask is_reviewed too: 'yes', a list or True is not reviewed there."
    from segwl.review import REVIEWS, ReviewPanel, relabel
    imgs, out = tmp_path/'imgs', tmp_path/'out'
    imgs.mkdir()
    for i in range(len(VERDICTS)): Image.fromarray(np.full((10, 10, 3), 50, np.uint8)).save(imgs/f'i{i}.png')
    label_folder(Boxes(), imgs, out, progress=False)
    mine = np.zeros((10, 10), bool)
    mine[5:, 5:] = True                                             # a person's mask: not the labeller's
    rows = []
    for i, (r, v) in enumerate(zip(read_manifest(out/'manifest.jsonl'), VERDICTS)):
        save_mask(mine, out/'masks'/f'i{i}.png')
        rows.append(r if v is None else dict(r, reviewed=v))
    (out/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    verdicts = {r['file'] for r in rows if is_reviewed(r)}
    assert REVIEWS == REVIEWED and len(verdicts) == 3
    p = ReviewPanel(out, imgs)
    p.filter.value = 'reviewed'
    assert {r['file'] for _, r in p.ranking} == verdicts and '(reviewed 3)' in p.page_label.value
    p.filter.value = 'unreviewed'
    assert {r['file'] for _, r in p.ranking} == {r['file'] for r in rows} - verdicts
    n = relabel(Boxes(), out, imgs)
    assert set(n['ious']) == {r['file'] for r in rows} - verdicts
    for i, r in enumerate(rows):                                   # a verdict's mask stays; the others are relabelled
        m = np.asarray(Image.open(out/'masks'/f'i{i}.png')) > 0
        assert (m == mine).all() == (r['file'] in verdicts), (r.get('reviewed'), m.sum())

# ---------------------------------------------------------------- a row is whole or absent
def _lines_are_rows(path) -> list:
    "Every line of the manifest, each a whole JSON row (a strict reader's view, as pandas.read_json(lines=True))."
    return [json.loads(line) for line in Path(path).read_text().splitlines()]

FSIZE_WRITER = '''
import resource, sys, os
from segwl.folder import ManifestWriter, manifest_row
from segwl.errors import OutputError
w = ManifestWriter(sys.argv[1])
w.append(manifest_row('a.png'))
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1]) + 30, resource.RLIM_INFINITY))
try: w.append(manifest_row('b.png', error='x' * 200))
except OutputError as e: print('refused:', e)
w.close()
'''

def test_a_file_size_limit_mid_row_leaves_no_fragment(tmp_path):
    "RLIMIT_FSIZE lets 30 bytes of the row through, then EFBIG: the row is cut back, nothing is left to flush later."
    env = checkout_env()
    r = subprocess.run([sys.executable, '-c', FSIZE_WRITER, str(tmp_path/'m.jsonl')], env=env, capture_output=True,
                       text=True, timeout=120)
    assert 'refused: cannot write' in r.stdout and r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path/'m.jsonl').read_text() == json.dumps(manifest_row('a.png')) + '\n'

def test_a_write_that_fails_halfway_leaves_the_manifest_as_it_was(tmp_path, monkeypatch):
    path = tmp_path/'m.jsonl'
    real = os.write
    def half(fd, data):
        monkeypatch.setattr(os, 'write', real)
        real(fd, data[:len(data) // 2])
        raise OSError(28, 'No space left on device')
    with ManifestWriter(path) as w:
        w.append(manifest_row('a.png'))
        monkeypatch.setattr(os, 'write', half)
        with pytest.raises(OutputError, match='is full'): w.append(manifest_row('b.png'))
        w.append(manifest_row('c.png'))                              # the disk has room again: rows go on whole
    assert [r['file'] for r in _lines_are_rows(path)] == ['a.png', 'c.png']

def test_a_short_write_is_finished_not_cut(tmp_path, monkeypatch):
    "A write that takes part of the line and returns (a signal, a pipe-like file) is followed by the rest."
    real = os.write
    monkeypatch.setattr(os, 'write', lambda fd, data: real(fd, data[:7]))
    with ManifestWriter(tmp_path/'m.jsonl') as w: w.append(manifest_row('a.png'))
    monkeypatch.setattr(os, 'write', real)
    assert _lines_are_rows(tmp_path/'m.jsonl') == [manifest_row('a.png')]

FULL_DISK_RUN = '''
import resource, sys, os
import numpy as np
from segwl.folder import label_folder
class Fills:
    "Like a disk that fills up while the third image is labelled: only 40 more bytes fit in any file."
    text, references, calls = None, [], 0
    settings = type('S', (), dict(to_dict=lambda self: dict(side=4)))()
    def label(self, image):
        self.calls += 1
        if self.calls == 3:
            size = os.path.getsize(os.path.join(sys.argv[2], 'manifest.jsonl'))
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, resource.RLIM_INFINITY))
        m = np.zeros(image.shape[:2], bool)
        return type('R', (), dict(mask=m, score=0.5, present=True, instances=None, text_score=None,
                                  candidate_scores=[]))()
print(label_folder(Fills(), sys.argv[1], sys.argv[2], progress=False))
'''

def test_label_folder_on_a_disk_that_fills_while_appending(tmp_path):
    imgs = tmp_path/'imgs'
    imgs.mkdir()
    for i in range(5): Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs/f'i{i}.png')
    env = checkout_env()
    r = subprocess.run([sys.executable, '-c', FULL_DISK_RUN, str(imgs), str(tmp_path/'out')], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "'stopped': 'cannot write" in r.stdout, r.stdout + r.stderr
    assert [row['file'] for row in _lines_are_rows(tmp_path/'out'/'manifest.jsonl')] == ['i0.png', 'i1.png']
    n = label_folder(Boxes(), imgs, tmp_path/'out', progress=False)   # room again: the rerun finishes the rest
    assert (n['skipped'], n['ok']) == (2, 3) and len(_lines_are_rows(tmp_path/'out'/'manifest.jsonl')) == 5

def test_an_image_whose_name_a_row_cannot_hold_is_left_out_with_a_warning(tmp_path):
    "A Linux file named `a\\b.png`: labelling it would write a row every later read refuses; it is left out, named."
    imgs = tmp_path/'imgs'
    imgs.mkdir()
    for name in ('ok.png', 'a\\b.png'): Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(imgs/name)
    import re
    with pytest.warns(UserWarning, match=r"left out 1 image\(s\).*" + re.escape(repr('a\\b.png')) + '; rename them'):
        n = label_folder(Boxes(), imgs, tmp_path/'out', progress=False)
    assert n == dict(ok=1, absent=0, error=0, skipped=0, total=1)
    assert [r['file'] for r in read_manifest(tmp_path/'out'/'manifest.jsonl')] == ['ok.png']
