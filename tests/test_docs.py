"""The documentation site (`make docs`: Sphinx + myst-nb on nbs/, docs/conf.py), `make lab`, and the pictures of docs/.

The site's tests are skipped where the docs tools are not installed (`pip install -e ".[docs]"`, or `make docs`)."""
import json, os, re, signal, subprocess, sys, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT/'docs'))
import conf  # noqa: E402   docs/conf.py: the directives' treatment is plain Python, tested without Sphinx

NBS = ROOT/'nbs'


def code(src: str, **meta) -> dict:
    return dict(cell_type='code', id='x', metadata=meta, source=src, outputs=[], execution_count=None)


def test_nbdev_directives_are_stripped_as_nbdev_does():
    "Directive lines go, the code stays; `#| hide` cells and cells left empty (`#| default_exp`) go."
    c = conf.strip_cell(code('#| export\n#|eval: false\ndef f(x):\n    #| not a directive past the top\n    return x'))
    assert c['source'] == 'def f(x):\n    #| not a directive past the top\n    return x'
    assert conf.strip_cell(code('#| hide\nfrom x import y')) is None
    assert conf.strip_cell(code('#| default_exp data')) is None
    assert conf.strip_cell(code('#| include: false\nx = 1')) is None
    assert conf.strip_cell(code('#| echo: false\nplot()', tags=['t']))['metadata']['tags'] == ['t', 'remove-input']
    assert conf.strip_cell(code('#| output: false\nx'))['metadata']['tags'] == ['remove-output']
    md = dict(cell_type='markdown', metadata={}, source='#| hide is text here')
    assert conf.strip_cell(md) is md


def test_readme_links_are_made_relative_to_nbs():
    "nbs/index.ipynb is the README: its paths are from the repository's root, the site reads them from nbs/."
    src = '![a](docs/panel.png) [b](https://x.org/y) [c](#top) [d](../docs/x.png) ![e](/abs.png)'
    want = '![a](../docs/panel.png) [b](https://x.org/y) [c](#top) [d](../docs/x.png) ![e](/abs.png)'
    assert conf.repo_links(src) == want


def module_notebooks() -> list[Path]:
    "The notebooks of nbs/ that make a module (a code cell starts with `#| default_exp`)."
    def exports(p):
        cells = json.loads(p.read_text())['cells']
        return any(c['cell_type'] == 'code' and ''.join(c['source']).startswith('#| default_exp') for c in cells)
    return sorted(p for p in NBS.glob('*.ipynb') if exports(p))


def kept_images(nb: Path) -> int:
    cells = json.loads(nb.read_text())['cells']
    return sum('image/png' in o.get('data', {}) for c in cells for o in c.get('outputs', []))


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> Path:
    "The site, built as `make docs` builds it, into a temporary folder."
    for m in ('sphinx', 'myst_nb', 'furo'):
        pytest.importorskip(m, reason=f'the docs tools are not installed ({m}): make docs, or pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp('site')
    r = subprocess.run([sys.executable, '-m', 'sphinx', '-q', '-b', 'html', '-c', str(ROOT/'docs'),
                        '-d', str(out/'doctrees'), str(NBS), str(out/'html')], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'WARNING' not in r.stderr, r.stderr[-3000:]            # a broken image or link is a warning
    return out/'html'


def images(page: Path) -> list[Path]:
    "The files a page's <img> tags show (they must exist)."
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text())
    return [(page.parent/s).resolve() for s in srcs if not s.startswith(('http:', 'https:', 'data:'))]


def test_one_page_per_module_notebook_plus_the_walkthrough(site):
    pages = {p.relative_to(site).as_posix() for p in site.rglob('*.html')}
    want = {f'{nb.stem}.html' for nb in module_notebooks()} | {'index.html', 'tutorials/walkthrough.html'}
    assert want <= pages, sorted(want - pages)
    assert not any(p.startswith('jobs/') for p in pages)           # the papermill job is not a page
    index = (site/'index.html').read_text()
    assert all(f'href="{nb.stem}.html"' in index for nb in module_notebooks())       # the contents, in order
    assert 'href="tutorials/walkthrough.html"' in index


def test_a_module_page_shows_its_functions_and_a_figure(site):
    "One module page (the review's) has a function of its notebook and a figure whose file is in the site."
    found = []
    for nb in module_notebooks():
        page, src = site/f'{nb.stem}.html', nb.read_text()
        shown = [p for p in images(page) if p.is_file() and p.read_bytes()[:4] == b'\x89PNG']
        names = re.findall(r'\bdef (\w+)\(', src)
        if shown and names: found.append((nb.stem, names[0], page.read_text()))
    assert found, 'no module page shows a figure'
    for stem, name, html in found:
        assert name in html, (stem, name)
    assert '15_review' in [s for s, _, _ in found] and 'doubt_score' in dict((s, h) for s, _, h in found)['15_review']


def test_pages_show_no_nbdev_directives(site):
    for page in site.glob('[0-9]*.html'):
        text = page.read_text()
        assert '#| export' not in text and '#| default_exp' not in text, page.name


def test_the_walkthrough_page_has_the_figures_its_notebook_keeps(site):
    page = site/'tutorials'/'walkthrough.html'
    n = kept_images(NBS/'tutorials'/'walkthrough.ipynb')
    shown = [p for p in images(page) if p.is_file()]
    assert n > 0 and len(shown) == n, (n, shown)


def test_the_readme_pictures_are_on_the_index_page(site):
    shown = {p.name for p in images(site/'index.html') if p.is_file()}
    linked = set(re.findall(r'!\[[^]]*\]\(docs/([^)]+)\)', (ROOT/'README.md').read_text()))
    assert linked and linked <= shown, linked - shown


# ---------------------------------------------------------------- the pictures of docs/ and their makers
def test_every_picture_in_docs_has_a_maker_in_the_repository():
    "docs/README.md: one line per picture, naming the notebook or script of the repository that makes it."
    lines = (ROOT/'docs'/'README.md').read_text().splitlines()
    for png in sorted((ROOT/'docs').glob('*.png')):
        line = next((ln for ln in lines if f'`{png.name}`' in ln), None)
        assert line, f'docs/README.md does not say what makes docs/{png.name}'
        makers = re.findall(r'`((?:docs|tools|nbs)/[\w/.-]+\.(?:ipynb|py))`', line)
        assert makers and all((ROOT/m).is_file() for m in makers), (png.name, makers)


def test_the_review_demo_runs_from_the_repository_alone(tmp_path, monkeypatch):
    "docs/review_demo.ipynb (docs/review.png, review_keys.png): synthetic scenes, the colour stand-ins, one fix."
    from segwl.review import read_label, rows_of
    monkeypatch.setenv('SEGWL_REVIEW_DEMO', str(tmp_path))
    monkeypatch.chdir(ROOT/'docs')
    ns = {}
    for c in json.loads((ROOT/'docs'/'review_demo.ipynb').read_text())['cells']:
        if c['cell_type'] == 'code': exec(''.join(c['source']), ns)
    p = ns['panel']
    row = rows_of(tmp_path/'labels')[p.current]
    assert (p.current, row['reviewed'], row['status']) == ('scene_01.png', 'fixed', 'ok')     # a spoiled one, fixed
    mask, truth = read_label(tmp_path/'labels', row), ns['truth'][p.current]
    assert (mask & truth).sum() / (mask | truth).sum() > 0.95                   # the stand-in's known answer
    assert 'colour-segmenter' in p.backends.value and 'colour-scorer' in p.backends.value   # no empty backends line
    assert sorted(r['status'] for r in rows_of(tmp_path/'labels').values()) == ['absent'] + ['ok'] * 5


# ---------------------------------------------------------------- make lab
def test_make_lab_starts_jupyterlab_on_the_walkthrough():
    """`make lab LAB_ARGS=--no-browser` prints a URL that answers, then is stopped; only where `make lab` installs
    nothing (it ran before in this checkout), as a test must not install."""
    venv = ROOT/'.venv'
    stamps = [venv/'.segwl-installed', venv/'.segwl-lab-installed']
    if not (venv/'bin'/'jupyter-lab').exists() or any(not s.is_file() or s.read_bytes() != (ROOT/'pyproject.toml')
                                                       .read_bytes() for s in stamps):
        pytest.skip('JupyterLab is not installed in .venv by `make lab` (or pyproject.toml changed since)')
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    args = f'--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0'
    pr = subprocess.Popen(['make', '--no-print-directory', 'lab', f'LAB_ARGS={args}'], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url, t0, seen, status = None, time.monotonic(), [], None
        while url is None and time.monotonic() - t0 < 120:
            line = pr.stdout.readline()
            if not line: break
            seen.append(line)
            m = re.search(rf'(http://127\.0\.0\.1:{port}/lab/tree/nbs/tutorials/walkthrough\.ipynb\?token=\w+)', line)
            url = m and m.group(1)
        assert url, ''.join(seen)[-3000:]
        for _ in range(60):                            # the URL is printed a moment before the server listens
            try:
                status = urllib.request.urlopen(url, timeout=30).status
                break
            except urllib.error.URLError: time.sleep(0.5)
        assert status == 200
    finally:
        os.killpg(pr.pid, signal.SIGTERM)
        pr.wait(30)


def test_the_notebooks_and_tests_the_docs_name_exist():
    "A module notebook or a test file named in the README, docs/ or bench/README.md is there (renames left some)."
    import re
    texts = [ROOT/'README.md', ROOT/'bench'/'README.md', *sorted((ROOT/'docs').glob('*.md'))]
    name = re.compile(r'\b(?:\d\d[a-z0-9]*_[a-z_0-9]*\.ipynb|test_[a-z_0-9]+\.py)\b')
    named = {(p.name, m) for p in texts for m in name.findall(p.read_text())}
    missing = sorted((doc, m) for doc, m in named
                     if not (ROOT/'nbs'/m).exists() and not (ROOT/'tests'/m).exists())
    assert missing == [], missing
