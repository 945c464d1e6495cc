"""A message names its fix the way the caller sets things, and one cause gives one exit code (issue 25, item 4): the
command line (`--sam-checkpoint PATH`, exit 2), a papermill job (`-p pretrained False`, exit 2), Python and Jupyter
(`segmenter_options=dict(checkpoint=PATH)`, one line, no traceback)."""
import json, socket
import nbformat
import pytest
import torch
from PIL import Image
from conftest import segwl, cli as run
from segwl.data import SegwlError
from segwl.testing import synthetic_scene, scene_folder

torch.set_num_threads(1)
STAND_INS = ['--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer']


@pytest.fixture
def offline(monkeypatch, tmp_path):
    "SAM's official weights are not cached (an empty cache) and cannot be downloaded (nothing listens there)."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    monkeypatch.setenv('SEGWL_SAM_BASE_URL', f'http://127.0.0.1:{port}/segment_anything')
    (tmp_path/'cache').mkdir()
    return tmp_path/'cache'


@pytest.fixture
def scenes(tmp_path):
    scene_folder(tmp_path/'images', [(48, 64), (64, 48)], seed=3)
    ref, m = synthetic_scene((64, 80), seed=1)
    Image.fromarray(ref).save(tmp_path/'ref.png')
    Image.fromarray(m).save(tmp_path/'ref_mask.png')
    return tmp_path




def test_cli_says_flags(scenes, offline):
    d = scenes
    code, _, err = run('label', '--reference', d/'ref.png', d/'ref_mask.png', '--text', 'a red ellipse',
                       '--images', d/'images', '--out', d/'labels', '--segmenter', 'sam-vit_b', '--scorer',
                       'colour-scorer', '--cache-dir', offline, '--no-progress')
    assert code == 2 and 'or pass --sam-checkpoint PATH' in err and 'Traceback' not in err, err
    code, _, err = run('label', '--reference', d/'ref.png', d/'ref_mask.png', '--text', 'a red ellipse',
                       '--images', d/'images', '--out', d/'labels', *STAND_INS, '--trials', '2', '--no-progress')
    assert code == 0, err
    code, _, err = run('train', '--images', d/'images', '--masks', d/'labels'/'masks', '--out', d/'model',
                       '--arch', 'tiny-unet', '--pretrained', '--size', 32, '--epochs', 1, '--device', 'cpu', '--quiet')
    assert code == 2 and err.strip().endswith('train it with --no-pretrained'), err


def test_python_says_arguments(scenes, offline):
    "Python names the argument: the panel's `segmenter_options`, `TrainSettings(pretrained=False)`; never a flag."
    from segwl.panels import TuningPanel
    from segwl.finetune import TrainSettings, train
    from segwl.trainset import synthetic_dataset
    d = scenes
    with pytest.raises(SegwlError) as e:
        TuningPanel.from_names(d/'ref.png', d/'ref_mask.png', 'a red ellipse', d/'images', segmenter='sam-vit_b',
                               scorer='colour-scorer', segmenter_options=dict(cache_dir=offline))
    assert 'or pass segmenter_options=dict(checkpoint=PATH)' in str(e.value) and '--' not in str(e.value)
    imgs, msks = synthetic_dataset(d/'syn', n=2)
    with pytest.raises(SegwlError, match=r'train it with TrainSettings\(pretrained=False\)$'):
        train(imgs, msks, d/'m', TrainSettings(arch='tiny-unet', size=32, epochs=1, device='cpu'), progress=False)


def _pipeline(d, *params):
    "`segwl run-notebook pipeline` on the scenes with the stand-ins, a test-size training, and `params`."
    return segwl('run-notebook', 'pipeline', d/'ran.ipynb', '--no-progress', '-p', 'reference_image', d/'ref.png',
                 '-p', 'reference_mask', d/'ref_mask.png', '-p', 'text', 'a red ellipse', '-p', 'images', d/'images',
                 '-p', 'out', d/'job', '-p', 'device', 'cpu', '-p', 'epochs', '1', *params, cwd=d)


def _error_output(path) -> dict:
    "The error output of the failed cell of the executed notebook at `path`."
    nb = nbformat.read(str(path), 4)
    return next(o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.output_type == 'error')


def test_job_says_parameters_and_exits_2(scenes, offline):
    "The issue's run: stand-ins, a pretrained encoder asked for offline; then SAM's weights missing: -p, exit 2."
    d = scenes
    r = _pipeline(d, '-p', 'segmenter', 'colour-segmenter', '-p', 'scorer', 'colour-scorer', '-p', 'pretrained', 'True')
    assert r.returncode == 2, r.stderr[-2000:]
    assert 'ArchError: -p pretrained True: tiny-unet' in r.stderr and 'train it with -p pretrained False' in r.stderr
    err = _error_output(d/'ran.ipynb')                          # in the notebook: one line, no traceback
    assert err['ename'] == 'ArchError' and len(err['traceback']) == 1 and '-p pretrained False' in err['traceback'][0]
    m = json.loads((d/'job'/'labels'/'config.json').read_text())['models']
    assert {v['weights'] for v in m.values()} == {'stand-in'}
    r = _pipeline(d, '-p', 'segmenter', 'sam-vit_b', '-p', 'scorer', 'colour-scorer', '-p', 'cache_dir', offline)
    assert r.returncode == 2 and 'or pass -p sam_checkpoint PATH' in r.stderr, r.stderr[-2000:]


def test_jupyter_shows_one_line(scenes, offline, tmp_path):
    "A notebook that opens a panel offline: the error is one line naming the Python argument; exit 2 as the CLI's."
    d = scenes
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from segwl.panels import TuningPanel\n"
        f"TuningPanel.from_names({str(d/'ref.png')!r}, {str(d/'ref_mask.png')!r}, 'a red ellipse', "
        f"{str(d/'images')!r}, segmenter='sam-vit_b', scorer='colour-scorer', "
        f"segmenter_options=dict(cache_dir={str(offline)!r}))")])
    nbformat.write(nb, str(tmp_path/'panel.ipynb'))
    r = segwl('run-notebook', tmp_path/'panel.ipynb', tmp_path/'ran.ipynb', '--no-progress', cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    err = _error_output(tmp_path/'ran.ipynb')
    assert err['ename'] == 'SamError' and len(err['traceback']) == 1
    assert err['traceback'][0].startswith('SamError: cannot download SAM vit_b checkpoint')
    assert err['traceback'][0].endswith('or pass segmenter_options=dict(checkpoint=PATH)')
