"""Render README.md from nbs/index.ipynb without Quarto (which nbdev-readme needs and which is not always
installable): markdown cells verbatim, code cells fenced, the `> summary` line kept. `--check` exits 1 when
README.md is stale."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs'/'index.ipynb') -> str:
    cells = json.loads(Path(nb_path).read_text())['cells']
    parts = []
    for c in cells:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#|'): continue
        parts.append(src if c['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    head = "<!-- generated from nbs/index.ipynb by tools/render_readme.py: edit the notebook, not this file -->"
    return head + '\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        ok = readme.exists() and readme.read_text() == text
        print('README.md is up to date' if ok else 'README.md is stale: run python tools/render_readme.py')
        sys.exit(0 if ok else 1)
    readme.write_text(text)
