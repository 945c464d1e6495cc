"The notebook tools: `tools/nbpy.py` keeps the outputs of unchanged cells; `tools/run_notebooks.py` keeps cheap ones."
import base64, importlib.util, io, json, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def tool(name):
    spec = importlib.util.spec_from_file_location(name, ROOT/'tools'/f'{name}.py')
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


nbpy, runnb = tool('nbpy'), tool('run_notebooks')


def code(cid, src, outputs=(), count=None):
    return dict(cell_type='code', id=cid, metadata={}, source=src.splitlines(True), outputs=list(outputs),
                execution_count=count)


def png_b64(size=(8, 8), noise=False, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (*size, 3), np.uint8) if noise else np.zeros((*size, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format='PNG')
    return base64.b64encode(buf.getvalue()).decode() + '\n'


def test_pack_keeps_the_outputs_of_unchanged_cells(tmp_path):
    fig = dict(output_type='display_data', data={'image/png': png_b64()}, metadata={})
    res = dict(output_type='execute_result', data={'text/plain': ['3']}, metadata={}, execution_count=7)
    nb = dict(cells=[code('aaaa0001', 'x = 1\nx', [res], 7), code('aaaa0002', 'show(x)\n', [fig]),
                     code('aaaa0003', 'print(x)', [dict(output_type='stream', name='stdout', text=['1\n'])])],
              metadata={}, nbformat=4, nbformat_minor=5)
    nb_path, py = tmp_path/'n.ipynb', tmp_path/'n.py'
    nb_path.write_text(json.dumps(nb))
    nbpy.unpack(nb_path, py)
    text = py.read_text().replace('print(x)', 'print(x + 1)') + '\n# %% new\nx * 2\n'
    py.write_text(text)
    nbpy.pack(py, nb_path)
    cells = json.loads(nb_path.read_text())['cells']
    test = [(c['id'], c['execution_count'], c['outputs']) for c in cells[:3]]
    res_kept = dict(res, execution_count=None)
    assert test == [('aaaa0001', None, [res_kept]), ('aaaa0002', None, [fig]), ('aaaa0003', None, [])]
    assert len(cells) == 4 and cells[3]['outputs'] == [] and ''.join(cells[3]['source']) == 'x * 2'


def test_pack_drops_outputs_when_a_cell_moves_to_another_id(tmp_path):
    nb_path, py = tmp_path/'n.ipynb', tmp_path/'n.py'
    out = dict(output_type='stream', name='stdout', text=['1\n'])
    nb_path.write_text(json.dumps(dict(cells=[code('b1', 'print(1)', [out])], metadata={}, nbformat=4,
                                       nbformat_minor=5)))
    py.write_text('# %% new\nprint(1)\n\n# %% id=b1\nprint(1)\n')
    nbpy.pack(py, nb_path)
    test = [c['outputs'] for c in json.loads(nb_path.read_text())['cells']]
    assert test == [[], [out]]


@pytest.mark.parametrize('out, kept', [
    (dict(output_type='stream', name='stdout', text=['3 masks\n']), True),
    (dict(output_type='stream', name='stderr', text=['a warning\n']), False),
    (dict(output_type='stream', name='stdout', text=['10%|#  | 1/10\r']), False),
    (dict(output_type='stream', name='stdout', text=['took 1.3 s\n']), False),
    (dict(output_type='stream', name='stdout', text=['wrote /tmp/x/masks\n']), False),
    (dict(output_type='stream', name='stdout', text=[f'{ROOT}/nbs\n']), False),
    (dict(output_type='stream', name='stdout', text=['x\n'] * 41), False),
    (dict(output_type='execute_result', data={'text/plain': ['(2, 3)']}, metadata={}, execution_count=4), True),
    (dict(output_type='execute_result', data={'text/plain': ['<object at 0x7f3a2b1c0d>']}, metadata={},
          execution_count=4), False),
    (dict(output_type='display_data', data={'text/plain': ['VBox()'], 'application/vnd.jupyter.widget-view+json':
          {'model_id': 'abc', 'version_major': 2}}, metadata={}), False),
    (dict(output_type='display_data', data={'text/html': ['<b>x</b>'], 'application/javascript': ['f()']},
          metadata={}), True),
    (dict(output_type='error', ename='E', evalue='e', traceback=[]), False),
])
def test_keep_output_rule(out, kept):
    assert (runnb.keep_output(out) is not None) == kept


def test_keep_output_keeps_a_figure_and_drops_what_is_not_static():
    fig = dict(output_type='display_data', metadata={'image/png': {'width': 10}},
               data={'image/png': png_b64(), 'text/plain': ['<Figure size 72x72 with 1 Axes>'],
                     'application/javascript': ['x']})
    test = runnb.keep_output(fig)
    assert test == dict(output_type='display_data', metadata={},
                        data={'image/png': png_b64(), 'text/plain': ['<Figure size 72x72 with 1 Axes>']})
    bare = dict(output_type='display_data', metadata={}, data={'image/svg+xml': ['x' * 200_000], 'text/plain': ['F']})
    assert runnb.keep_output(bare) is None             # an image too big to keep: its repr alone is not kept


def test_cap_png_shrinks_a_big_image_the_same_way_each_time():
    small = png_b64()
    assert runnb.cap_png(small) == small
    big = png_b64((400, 400), noise=True)
    assert len(base64.b64decode(big)) > 100_000
    a, b = runnb.cap_png(big), runnb.cap_png(big)
    assert a == b and len(base64.b64decode(a)) <= 100_000
    assert Image.open(io.BytesIO(base64.b64decode(a))).size[0] in (400, 200, 100)


def test_module_notebooks_are_those_with_default_exp():
    nbs = runnb.module_notebooks()
    assert ROOT/'nbs'/'03_points.ipynb' in nbs and ROOT/'nbs'/'index.ipynb' not in nbs
    assert all(p.parent == ROOT/'nbs' for p in nbs)
    assert ROOT/'nbs'/'tutorials'/'walkthrough.ipynb' in runnb.module_notebooks(tutorials=True)


NB = [
    '#| default_exp toy\nimport sys\nimport matplotlib.pyplot as plt\nimport numpy as np',
    'print("three masks:", 3)\nprint("a warning", file=sys.stderr)',
    'fig, ax = plt.subplots(figsize=(2, 2))\nax.imshow(np.random.default_rng(0).random((8, 8)))\nax.set_axis_off()',
    '#| slow\nraise RuntimeError("a slow cell must be skipped")',
    '#| eval: false\nraise RuntimeError("an eval: false cell must be skipped")',
    'import os, tempfile\n(os.getcwd() == os.path.dirname(os.path.abspath("toy.ipynb")), os.environ["IN_TEST"])',
    'tempfile.gettempdir()',
    '#| export\n40 + 2',
]


def test_run_notebooks_runs_in_place_keeps_cheap_outputs_and_gives_the_same_bytes_twice(tmp_path):
    (tmp_path/'pyproject.toml').write_text('[tool.nbdev]\ntst_flags = "slow cuda"\n')
    nb_path = tmp_path/'toy.ipynb'
    stale = [dict(output_type='stream', name='stdout', text=['stale\n'])]
    nb = dict(cells=[code(f'c{i}', s, stale if i in (3, 4) else []) for i, s in enumerate(NB)],
              metadata={'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
              nbformat=4, nbformat_minor=5)
    nb_path.write_text(json.dumps(nb))
    run = [sys.executable, str(ROOT/'tools'/'run_notebooks.py'), str(nb_path)]
    r = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    first = nb_path.read_bytes()
    cells = json.loads(first)['cells']
    outs = [c['outputs'] for c in cells]
    assert outs[0] == [] and outs[3] == [] and outs[4] == [] and outs[6] == []       # skipped cells lose stale ones
    assert outs[7] == []                                                             # an exported cell shows nothing
    assert outs[1] == [dict(output_type='stream', name='stdout', text=['three masks: 3\n'])]   # no stderr
    assert outs[5][0]['data']['text/plain'] == ["(True, '1')"]                       # from its folder, IN_TEST set
    png = base64.b64decode(''.join(outs[2][0]['data']['image/png']))
    im = Image.open(io.BytesIO(png))
    assert im.size[0] < 2 * 72 + 10 and 'Software' not in im.info and len(png) < 20_000     # 72 dpi, no metadata
    assert all(c['execution_count'] is None for c in cells)
    r = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and nb_path.read_bytes() == first


def test_run_notebooks_leaves_a_failing_notebook_as_it_was(tmp_path):
    (tmp_path/'pyproject.toml').write_text('[tool.nbdev]\ntst_flags = "slow cuda"\n')
    nb_path = tmp_path/'bad.ipynb'
    nb_path.write_text(json.dumps(dict(cells=[code('c0', 'print(1)'), code('c1', '1/0')], metadata={}, nbformat=4,
                                       nbformat_minor=5)))
    before = nb_path.read_bytes()
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'run_notebooks.py'), str(nb_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1 and 'ZeroDivisionError' in r.stderr and 'FAILED' in r.stdout
    assert nb_path.read_bytes() == before
