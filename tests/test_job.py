"The papermill job `nbs/jobs/pipeline.ipynb` run by `segwl run-notebook`: outputs, metrics, masks, parameter errors."
import hashlib, json, os, shutil, sys
from pathlib import Path
import nbformat
import numpy as np
import pytest
from PIL import Image
from segwl.pseudolabel import LabelSettings
from conftest import segwl, iou
from segwl.data import load_mask

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT/'examples'

def tree_digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob('*')):
        if p.is_file() and '.ipynb_checkpoints' not in p.parts:
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()

def test_packaged_copy_is_the_notebook():
    "`segwl run-notebook pipeline` runs segwl/jobs/pipeline.ipynb: it must be nbs/jobs/pipeline.ipynb byte for byte."
    src, copy = ROOT/'nbs'/'jobs'/'pipeline.ipynb', ROOT/'segwl'/'jobs'/'pipeline.ipynb'
    assert copy.read_bytes() == src.read_bytes(), \
        f"{copy} is stale: cp {src.relative_to(ROOT)} {copy.relative_to(ROOT)}"

def test_package_data_declared():
    "The copy is installed with the package (a wheel or a non-editable install), not only present in a clone."
    import tomllib
    pd = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['setuptools']['package-data']
    assert 'jobs/*.ipynb' in pd['segwl']

@pytest.fixture(scope='module')
def job(tmp_path_factory):
    """One run of the pipeline job on 3 images, tiny random models, a seconds-long training; from a folder outside the
    clone."""
    d = tmp_path_factory.mktemp('job')
    for sub in ('unlabeled/images', 'unlabeled/masks', 'test/images', 'test/masks'): (d/sub).mkdir(parents=True)
    for p in sorted((EX/'unlabeled'/'images').glob('*.jpg'))[:3]:
        shutil.copy(p, d/'unlabeled'/'images')
        shutil.copy(EX/'unlabeled'/'masks'/f'{p.stem}.png', d/'unlabeled'/'masks')
    for p in sorted((EX/'test'/'images').glob('*.jpg'))[:2]:
        shutil.copy(p, d/'test'/'images')
        shutil.copy(EX/'test'/'masks'/f'{p.stem}.png', d/'test'/'masks')
    LabelSettings(trials=2, n_object=3, n_background=3, n_text=2).save(d/'fast.json')
    before = tree_digest(ROOT/'nbs')
    r = segwl('run-notebook', 'pipeline', 'ran/pipeline.ipynb', '--no-progress',
              '-p', 'reference_image', EX/'reference'/'Abyssinian_88.jpg',
              '-p', 'reference_mask', EX/'reference'/'Abyssinian_88.png',
              '-p', 'images', 'unlabeled/images', '-p', 'out', 'out', '-p', 'models', 'tiny-random',
              '-p', 'config', 'fast.json',
              '-p', 'device', 'cpu', '-p', 'seed', '3', '-p', 'epochs', '2', '-p', 'max_minutes', '0.02',
              '-p', 'test_images', 'test/images', '-p', 'test_masks', 'test/masks', cwd=d)
    return d, r, before

def test_job_runs(job):
    d, r, before = job
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'pipeline ran (ok); executed notebook: ran/pipeline.ipynb' in r.stdout
    assert tree_digest(ROOT/'nbs') == before, "running the job changed files under nbs/"

def test_executed_notebook_where_asked(job):
    d, r, _ = job
    nb = nbformat.read(d/'ran'/'pipeline.ipynb', 4)
    injected = [c for c in nb.cells if 'injected-parameters' in c.metadata.get('tags', [])]
    assert len(injected) == 1 and "models = \"tiny-random\"" in injected[0].source and 'seed = 3' in injected[0].source
    assert any(o.get('output_type') == 'display_data' and 'image/png' in o.get('data', {})
               for c in nb.cells for o in c.get('outputs', []))

def test_metrics(job):
    d, r, _ = job
    m = json.loads((d/'out'/'metrics.json').read_text())
    assert {'n_images', 'labelled', 'failed', 'mean_score', 'mean_text_score', 'models', 'device', 'train',
            'label_quality', 'test'} <= set(m)
    assert (m['n_images'], m['labelled'], m['failed'], m['device']) == (3, 3, 0, 'cpu')
    assert m['models'] == dict(segmenter=dict(name='sam-vit_b', kind='segmenter', weights='tiny-random'),
                               scorer=dict(name='clip', kind='scorer', weights='tiny-random'))
    assert -1 <= m['mean_text_score'] <= 1 and np.isfinite(m['mean_score'])
    assert (m['train']['arch'] == 'tiny-unet' and 1 <= m['train']['epochs'] <= 2
            and m['train']['stopped'] in ('epochs', 'time'))
    assert json.loads((d/'out'/'model'/'model.json').read_text())['input_size'] == 64   # tiny-random: the quick size
    # label_masks='auto' found unlabeled/masks
    assert (m['label_quality']['n_images'], m['test']['n_images']) == (3, 2)
    ious = [iou(load_mask(q), load_mask(d/'unlabeled'/'masks'/q.name))            # the pseudo-labels, scored here
            for q in sorted((d/'out'/'labels'/'masks').glob('*.png'))]
    assert m['label_quality']['mean_iou'] == pytest.approx(np.mean(ious), abs=1e-6)
    cfg = json.loads((d/'out'/'labels'/'config.json').read_text())
    assert (cfg['settings']['trials'], cfg['settings']['seed']) == (2, 3)   # the config file, then the seed parameter

def test_masks(job):
    d, r, _ = job
    imgs = sorted((d/'unlabeled'/'images').iterdir())
    masks = sorted((d/'out'/'labels'/'masks').glob('*.png'))
    assert [p.stem for p in masks] == [p.stem for p in imgs]
    for p, q in zip(imgs, masks):
        m = Image.open(q)
        assert m.mode == 'L' and m.size == Image.open(p).size
        assert set(np.unique(np.asarray(m))) <= {0, 255}
    assert (d/'out'/'model'/'model.json').exists() and (d/'out'/'eval'/'metrics.json').exists()

def test_unknown_parameter(tmp_path):
    r = segwl('run-notebook', 'pipeline', 'x.ipynb', '-p', 'model', 'real', '-p', 'seed', '1', cwd=tmp_path)
    assert r.returncode == 2
    assert ('unknown parameter(s) model; valid names: reference_image, reference_mask, text, images, out, method'
            in r.stderr)
    assert not (tmp_path/'x.ipynb').exists()

def test_unknown_job(tmp_path):
    r = segwl('run-notebook', 'pipelin', 'x.ipynb', cwd=tmp_path)
    assert r.returncode == 2 and "'pipelin': not a job (pipeline)" in r.stderr

def test_bad_input_fails_fast_naming_the_parameter(tmp_path):
    "A bad path stops the job in its check cell, before any work: exit 2, the file named, later cells never run."
    r = segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'reference_image', 'missing.jpg',
              '-p', 'reference_mask', EX/'reference'/'Abyssinian_88.png', '-p', 'images', EX/'unlabeled'/'images',
              cwd=tmp_path)
    assert r.returncode == 2 and 'missing.jpg' in r.stderr and 'x.ipynb' in r.stderr, r.stderr[-2000:]
    cells = [c for c in nbformat.read(tmp_path/'x.ipynb', 4).cells if c.cell_type == 'code']
    ran = [i for i, c in enumerate(cells) if c.get('outputs')]
    assert ran and max(ran) <= 2                                  # parameters, injected parameters, the check
    r = segwl('run-notebook', 'pipeline', 'y.ipynb', '--no-progress', cwd=tmp_path)
    assert r.returncode == 2 and 'reference_image, reference_mask, images must be given' in r.stderr

def test_list_parameters(tmp_path):
    r = segwl('run-notebook', 'pipeline', '--list-parameters', cwd=tmp_path)
    assert r.returncode == 0 and 'images = None' in r.stdout and 'folder of images to label (required)' in r.stdout

def test_kernel_is_this_python(tmp_path):
    "Jupyter's registered kernels do not matter: a 'python3' kernelspec that cannot start is never used."
    spec = tmp_path/'jupyter'/'kernels'/'python3'
    spec.mkdir(parents=True)
    (spec/'kernel.json').write_text(json.dumps(dict(argv=['/bin/false', '{connection_file}'], display_name='broken',
                                                    language='python')))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={'tags': ['parameters']}),
                                         nbformat.v4.new_code_cell("import sys, segwl; print(sys.executable, x)")])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='python3', language='python')
    nbformat.write(nb, tmp_path/'k.ipynb')
    os.environ['JUPYTER_PATH'], old = str(tmp_path/'jupyter'), os.environ.get('JUPYTER_PATH')
    try: r = segwl('run-notebook', 'k.ipynb', 'k_out.ipynb', '-p', 'x', '5', '--no-progress', cwd=tmp_path)
    finally:
        if old is None: del os.environ['JUPYTER_PATH']
        else: os.environ['JUPYTER_PATH'] = old
    assert r.returncode == 0, r.stderr[-2000:]
    assert nbformat.read(tmp_path/'k_out.ipynb', 4).cells[-1].outputs[0]['text'] == f"{sys.executable} 5\n"


def test_failed_files_exit_1_like_segwl_label(tmp_path):
    "A job whose labelling fails on some files exits 1, as `segwl label` does, and says how many."
    (tmp_path/'imgs').mkdir()
    for p in sorted((EX/'unlabeled'/'images').glob('*.jpg'))[:1]: shutil.copy(p, tmp_path/'imgs')
    (tmp_path/'imgs'/'broken.jpg').write_bytes(b'not a jpeg')
    r = segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'reference_image',
              EX/'reference'/'Abyssinian_88.jpg', '-p', 'reference_mask', EX/'reference'/'Abyssinian_88.png',
              '-p', 'images', 'imgs', '-p', 'out', 'out', '-p', 'models', 'tiny-random', '-p', 'train', 'False',
              '-p', 'device', 'cpu', cwd=tmp_path)
    assert r.returncode == 1 and '1 of 2 images failed' in r.stdout, r.stdout + r.stderr[-2000:]
    m = json.loads((tmp_path/'out'/'metrics.json').read_text())
    assert (m['labelled'], m['failed']) == (1, 1)


def test_canvas_job_with_two_references(tmp_path):
    "The job runs the canvas method too: two references, scenes with 0 to 2 objects, absent counted."
    from segwl.testing import concept_scene, synthetic_scene
    (tmp_path/'imgs').mkdir()
    for k in range(2):
        im, m = synthetic_scene((80, 110), seed=300 + k)
        Image.fromarray(im).save(tmp_path/f'r{k}.png')
        Image.fromarray(m).save(tmp_path/f'r{k}_mask.png')
    for n in range(3):
        Image.fromarray(concept_scene((90, 120), n, seed=400 + n)[0]).save(tmp_path/'imgs'/f's{n}.png')
    r = segwl('run-notebook', 'pipeline', 'x.ipynb', '--no-progress', '-p', 'method', 'canvas',
              '-p', 'segmenter', 'colour-concept', '-p', 'reference_image', 'r0.png', '-p', 'reference_mask',
              'r0_mask.png', '-r', 'more_references', '[["r1.png", "r1_mask.png"]]', '-p', 'images', 'imgs',
              '-p', 'out', 'out', '-p', 'train', 'False', '-p', 'device', 'cpu', cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    m = json.loads((tmp_path/'out'/'metrics.json').read_text())
    assert (m['method'], m['labelled'], m['absent'], m['failed']) == ('canvas', 2, 1, 0)
    cfg = json.loads((tmp_path/'out'/'labels'/'config.json').read_text())
    assert len(cfg['reference']) == 2 and cfg['models']['concept']['name'] == 'colour-concept'
