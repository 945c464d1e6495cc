#!/usr/bin/env python3
"""Run notebooks in place and keep the outputs of their cheap cells, so that a notebook shows what it defines.

    python tools/run_notebooks.py                    every module notebook of nbs/ (those with `#| default_exp`)
    python tools/run_notebooks.py nbs/03_points.ipynb nbs/tutorials/walkthrough.ipynb
    python tools/run_notebooks.py --tutorials        the module notebooks and nbs/tutorials/*.ipynb

Each notebook runs top to bottom in a fresh process, as `nbdev-test` runs it: from the notebook's folder, with
`IN_TEST=1`, the repository root on `sys.path`, in a temporary folder of its own (TMPDIR, removed afterwards), and
without the cells nbdev-test skips (`#| eval: false`, and the flags of `tst_flags` in pyproject.toml: `#| slow`,
`#| cuda`). A skipped cell keeps no output, nor does a cell that exports (`#| export`: what it shows is incidental,
such as the repr of its last statement); examples do. A notebook that fails is left as it was (exit 1).

What is kept (`keep_output`): images (PNG re-encoded when over 100 KB, see `cap_png`; JPEG and SVG under 100 KB),
short text results and stdout (at most 40 lines and 4,000 characters), short HTML (20,000 characters). What is dropped:
stderr (warnings, progress bars), anything with a carriage return, widget views (`application/vnd.jupyter.widget-
view+json`: they cannot render in a static page), JavaScript, and text that would change from run to run (temporary or
home paths, this checkout's path, timings, clock times, memory addresses). Figures are drawn at 72 dpi as plain PNG,
with no Software key in their metadata, so running twice gives the same bytes wherever the code is seeded. Then
`nbdev-clean` cleans the notebook, so `make test`'s clean check passes with the outputs in.
"""
import argparse, base64, io, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
MAX_IMAGE = 100_000          # bytes of a kept image, decoded
MAX_LINES, MAX_TEXT, MAX_HTML = 40, 4_000, 20_000
STATIC = ('image/png', 'image/jpeg', 'image/svg+xml', 'text/plain', 'text/html', 'text/markdown')
WIDGET = 'application/vnd.jupyter.widget-view+json'
EXPORTS = {'export', 'exporti', 'exports'}


def module_notebooks(tutorials=False):
    "The notebooks that define a module (`#| default_exp`), in nbs/ itself; with `tutorials`, nbs/tutorials/ too."
    nbs = [p for p in sorted(NBS.glob('*.ipynb')) if re.search(r'#\|\s*default_exp\s', p.read_text())]
    return nbs + (sorted((NBS/'tutorials').glob('*.ipynb')) if tutorials else [])


def volatile_patterns(extra=()):
    "Text that differs between runs or machines: paths of this run, timings, clock times, memory addresses."
    paths = {tempfile.gettempdir(), '/tmp/', '/var/folders/', str(ROOT), str(Path.home()), *extra}
    pats = [re.escape(p) for p in sorted(paths) if p and p != '/']
    pats += [r'\b\d+(?:\.\d+)?\s?(?:s|ms|µs|us|ns|sec|secs|seconds|minutes|it/s|s/it)\b', r'\bETA\b',
             r'\d{4}-\d\d-\d\d[T ]\d\d:\d\d', r'\b\d\d:\d\d:\d\d\b', r'\b0x[0-9a-fA-F]{6,}\b']
    return re.compile('|'.join(pats))


def _text(v): return ''.join(v) if isinstance(v, list) else v


def _short(text, limit): return len(text) <= limit and text.count('\n') <= MAX_LINES


def cap_png(b64, limit=MAX_IMAGE):
    "A base64 PNG at most `limit` bytes: as it is when small, else a 256-colour copy, halved until it fits."
    raw = base64.b64decode(b64)
    if len(raw) <= limit: return b64
    from PIL import Image
    im = Image.open(io.BytesIO(raw))
    im = im.convert('RGBA') if 'A' in im.getbands() else im.convert('RGB')
    while True:
        buf = io.BytesIO()
        im.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, format='PNG', optimize=True)
        if buf.tell() <= limit or min(im.size) < 64: return base64.b64encode(buf.getvalue()).decode() + '\n'
        im = im.resize((im.width//2, im.height//2), Image.Resampling.LANCZOS)


def keep_output(o, volatile=None):
    "The part of output `o` worth keeping in a notebook read as documentation (see the module's docstring), or None."
    volatile = volatile or volatile_patterns()
    kind = o.get('output_type')
    if kind == 'stream':
        text = _text(o.get('text', ''))
        ok = o.get('name') == 'stdout' and '\r' not in text and _short(text, MAX_TEXT) and not volatile.search(text)
        return dict(o, text=text.splitlines(True)) if ok else None
    if kind not in ('display_data', 'execute_result'): return None
    data = o.get('data', {})
    if WIDGET in data: return None
    kept = {}
    for k, v in data.items():
        text = _text(v)
        if k not in STATIC: continue
        if k == 'image/png': kept[k] = cap_png(text)
        elif k.startswith('image/'):
            if len(text) <= MAX_IMAGE*4//3: kept[k] = v
        elif '\r' not in text and not volatile.search(text):
            if (len(text) <= MAX_HTML) if k == 'text/html' else _short(text, MAX_TEXT): kept[k] = text.splitlines(True)
    if set(kept) <= {'text/plain'} and set(data) & {'image/png', 'image/jpeg', 'image/svg+xml', 'text/html'}:
        return None        # a figure or table that could not be kept: its bare repr alone says nothing
    if not kept: return None
    out = dict(output_type=kind, data=kept, metadata={})
    if kind == 'execute_result': out['execution_count'] = None
    return out


def _run_one(path, timeout):
    "Run notebook `path` in this process, as nbdev-test would; write its kept outputs back. Returns True on success."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    path = Path(path).resolve()
    cfg = get_config(path.parent)
    skip_flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    sys.path.insert(0, str(cfg.config_path))
    nb = NBProcessor(path, rm_directives=False, process=True).nb
    skip = _skip_cell(nb, skip_flags, [])
    shell = CaptureShell(path, mpl_format=None, profile=bool(cfg.exec_profile))
    shell.enable_matplotlib('inline')
    shell.run("import matplotlib\nmatplotlib.rcParams['figure.dpi'] = 72\n"
              "from matplotlib_inline.backend_inline import set_matplotlib_formats\n"
              "set_matplotlib_formats('png', metadata={'Software': None})")
    ran = {}

    def keep(cell):
        "Outputs of cells that export are incidental (a repr of the last statement): only examples keep theirs."
        if not EXPORTS & set(getattr(cell, 'directives_', None) or {}): ran[cell.get('id')] = cell.outputs

    with working_directory(path.parent):
        try:
            shell.run_all(nb, exc_stop=True, preproc=skip, postproc=keep, cell_timeout=timeout)
        except BaseException:
            sys.stderr.write(shell.prettytb(fname=path) or f'{path}: failed\n')
            return False
    raw = json.loads(path.read_text())
    volatile = volatile_patterns([os.environ.get('TMPDIR', '')])
    for c in raw['cells']:
        if c['cell_type'] != 'code': continue
        outs = [keep_output(json.loads(json.dumps(o)), volatile) for o in ran.get(c.get('id'), [])]
        c['outputs'] = [o for o in outs if o is not None]
        c['execution_count'] = None
    path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + '\n')
    return True


def run_notebook(path, timeout=None):
    "Run `path` in a fresh process with a temporary folder of its own, then nbdev-clean it. Returns True on success."
    tmp = tempfile.mkdtemp(prefix='segwl-outputs.')
    env = dict(os.environ, IN_TEST='1', TMPDIR=tmp, PYTHONHASHSEED='0',
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    cmd = [sys.executable, __file__, '--one', str(path)] + (['--timeout', str(timeout)] if timeout else [])
    try: ok = subprocess.run(cmd, env=env, cwd=ROOT).returncode == 0
    finally: shutil.rmtree(tmp, ignore_errors=True)
    if ok:
        clean = Path(sys.executable).parent/'nbdev-clean'
        subprocess.run([str(clean) if clean.exists() else 'nbdev-clean', '--fname', str(path)], cwd=ROOT, check=True)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='*', help='notebooks to run (default: every module notebook of nbs/)')
    ap.add_argument('--tutorials', action='store_true', help='with the default list, also nbs/tutorials/')
    ap.add_argument('--timeout', type=int, default=None, help='seconds per cell (default: nbdev\'s cell_timeout)')
    ap.add_argument('--one', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        if a.timeout is None:
            from nbdev.config import get_config
            a.timeout = get_config(Path(a.one).resolve().parent).cell_timeout or None
        return 0 if _run_one(a.one, a.timeout) else 1
    nbs = [Path(p) for p in a.notebooks] or module_notebooks(a.tutorials)
    failed = []
    for p in nbs:
        before = p.stat().st_size
        ok = run_notebook(p, a.timeout)
        print(f"{'ok' if ok else 'FAILED'}: {p} ({before:,} -> {p.stat().st_size:,} bytes)", flush=True)
        if not ok: failed.append(p)
    if failed: print('failed, left as they were: ' + ' '.join(map(str, failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
