#!/usr/bin/env python3
"""Edit notebooks as plain text: `unpack NB.ipynb [OUT.py]` writes a percent-format script, `pack OUT.py NB.ipynb`
writes it back. Cell ids and `tags` survive the round trip, so exported modules keep their cell references.

    # %% [markdown] id=1a2b3c4d          a markdown cell
    # %% id=5e6f7a8b tags=parameters     a code cell with tags
    # %% new                             a new code cell (an id is made when packing)

Markdown lines are stored as they are (no comment prefix). A cell ends where the next marker starts; one blank line
before a marker is a separator, not content. A code cell whose id and source are unchanged keeps its outputs
(execution counts nulled, as `nbdev-clean` leaves them); a new or edited cell has none: its old outputs would be stale.
`tools/run_notebooks.py` makes them again.
"""
import json, re, sys, uuid
from pathlib import Path

MARK = re.compile(r'^# %%(?: \[(markdown)\])?(.*)$')


def unpack(nb_path, out=None):
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for c in nb['cells']:
        head = '# %%' + (' [markdown]' if c['cell_type'] == 'markdown' else '')
        head += f" id={c.get('id', 'new')}"
        tags = c.get('metadata', {}).get('tags')
        if tags: head += ' tags=' + ','.join(tags)
        parts.append(head + '\n' + ''.join(c['source']))
    text = '\n\n'.join(parts) + '\n'
    Path(out or str(nb_path)[:-6] + '.py').write_text(text)


def kept_outputs(old_cell, src):
    "The outputs of `old_cell` when its source is still `src` (trailing blank lines aside), else none."
    if old_cell is None or ''.join(old_cell.get('source', [])).rstrip('\n') != src.rstrip('\n'): return []
    outs = [dict(o) for o in old_cell.get('outputs', [])]
    for o in outs:
        if 'execution_count' in o: o['execution_count'] = None
    return outs


def pack(py_path, nb_path):
    nb_path = Path(nb_path)
    nb = json.loads(nb_path.read_text()) if nb_path.exists() else dict(
        cells=[], metadata={'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
        nbformat=4, nbformat_minor=5)
    old = {c.get('id'): c for c in nb['cells'] if c['cell_type'] == 'code'}
    cells, cur = [], None
    for line in Path(py_path).read_text().split('\n'):
        m = MARK.match(line)
        if m:
            cur = dict(kind='markdown' if m.group(1) else 'code', opts=m.group(2).split(), lines=[])
            cells.append(cur)
        elif cur is not None: cur['lines'].append(line)
    out = []
    for c in cells:
        opts = dict(o.split('=', 1) for o in c['opts'] if '=' in o)
        lines = c['lines']
        while lines and lines[-1] == '': lines.pop()
        src = '\n'.join(lines)
        cid = opts.get('id', 'new')
        if cid == 'new': cid = uuid.uuid4().hex[:8]
        cell = dict(cell_type=c['kind'], id=cid, metadata={}, source=src.splitlines(keepends=True))
        if 'tags' in opts: cell['metadata']['tags'] = opts['tags'].split(',')
        if c['kind'] == 'code': cell.update(execution_count=None, outputs=kept_outputs(old.get(cid), src))
        out.append(cell)
    nb['cells'] = out
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


if __name__ == '__main__':
    cmd, *args = sys.argv[1:]
    {'unpack': unpack, 'pack': pack}[cmd](*args)
