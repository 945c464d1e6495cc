"""Sphinx configuration of segwl's documentation site: the notebooks of nbs/ themselves, rendered by myst-nb.

`make docs` runs `sphinx-build -c docs nbs _site`: the source folder is nbs/, so there is no second copy of the prose.
The notebooks are not executed: a page shows the outputs (figures) that its notebook keeps. As nbdev's own site does,
nbdev's directive lines (`#| export`, `#| default_exp`, ...) are taken out of the code shown, and `#| hide` cells are
left out, while the notebook is read (`strip_directives`, on Sphinx's `source-read` event); the files are unchanged.
"""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

project = 'segwl'
author = 'segwl developers'
extensions = ['myst_nb']
root_doc = 'index'
exclude_patterns = ['jobs/**', '**/.ipynb_checkpoints']
nb_execution_mode = 'off'                    # the outputs the notebooks keep, nothing computed at build time
nb_merge_streams = True
myst_enable_extensions = ['colon_fence']
# the README's mermaid chart stays a code block: Pygments has no mermaid lexer, and mermaid.js would come from a CDN
suppress_warnings = ['misc.highlighting_failure']
html_theme = 'furo'
html_title = 'segwl'
html_static_path = []
html_show_sourcelink = False
html_copy_source = False

DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
TOC = """```{{toctree}}
:caption: {caption}
:maxdepth: 1
:glob:

{pattern}
```"""


def directives(src: str) -> tuple[dict, str]:
    "nbdev's directives at the top of a code cell (`{name: value}`), and the cell's source without them."
    found, lines = {}, src.splitlines()
    while lines and (m := DIRECTIVE.match(lines[0])):
        found[m.group(1)] = m.group(2).lower()
        lines.pop(0)
    return found, '\n'.join(lines).strip('\n')


def strip_cell(cell: dict) -> dict | None:
    "A code cell as nbdev's site shows it: directive lines gone; None for a cell the site leaves out."
    if cell.get('cell_type') != 'code': return cell
    found, src = directives(''.join(cell.get('source', '')))
    if 'hide' in found or found.get('include') == 'false' or not src.strip(): return None
    tags = list(cell.get('metadata', {}).get('tags', []))
    if found.get('echo') == 'false': tags.append('remove-input')
    if found.get('output') == 'false': tags.append('remove-output')
    return {**cell, 'source': src, 'metadata': {**cell.get('metadata', {}), 'tags': tags}}


def repo_links(src: str) -> str:
    "README paths (from the repository's root) as paths from nbs/: `](docs/x.png)` -> `](../docs/x.png)`."
    return re.sub(r'\]\((?!https?:|#|/|\.\./)([^)\s]+)\)', r'](../\1)', src)


def strip_directives(app, docname: str, source: list):
    "Sphinx `source-read` hook: the notebook `docname` as the site shows it."
    path = Path(app.srcdir)/f'{docname}.ipynb'
    if not path.is_file(): return
    nb = json.loads(source[0])
    cells = [c for c in map(strip_cell, nb['cells']) if c is not None]
    if docname == 'index':                   # the README's source: links from the repository root, and the contents
        cells = [{**c, 'source': repo_links(''.join(c['source']))} if c['cell_type'] == 'markdown' else c
                 for c in cells]
        toc = '\n\n'.join([TOC.format(caption='Modules', pattern='[0-9]*'),
                           TOC.format(caption='Tutorials', pattern='tutorials/*')])
        cells.append(dict(cell_type='markdown', id='segwl-site-contents', metadata={}, source=toc))
    source[0] = json.dumps({**nb, 'cells': cells})


def setup(app):
    app.connect('source-read', strip_directives)
