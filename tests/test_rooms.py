"""Issue 21, item 4: rooms of one idea. Each module imports only the modules of the notebooks listed before its
own, and none is over about 450 lines."""
import ast, json
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
LIMIT = 450
# Longer on purpose, with the reason (none today: backends/clip.py was the last, cut into the scorer and its weights).
LONGER: dict[str, str] = {}


def _exported(nb: Path) -> str | None:
    "The module a notebook exports (`#| default_exp NAME`), or None."
    for c in json.loads(nb.read_text())['cells']:
        for line in ''.join(c['source']).splitlines():
            if line.replace(' ', '').startswith('#|default_exp'): return line.split('default_exp', 1)[1].strip()
    return None


def rooms() -> list[str]:
    "The modules in the order of their notebooks' names: the dependency order."
    found = [(nb.name, _exported(nb)) for nb in sorted((ROOT/'nbs').glob('*.ipynb'))]
    return [m for _, m in found if m]


def _imports(module: str) -> set[str]:
    "The segwl modules `module` (dotted, e.g. 'backends.sam') imports, anywhere in its file (lazy imports too)."
    path = ROOT/'segwl'/(module.replace('.', '/') + '.py')
    package = module.split('.')[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            found.add('.'.join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('segwl.'):
            found.add(node.module[len('segwl.'):])
        elif isinstance(node, ast.Import):
            found |= {a.name[len('segwl.'):] for a in node.names if a.name.startswith('segwl.')}
    return found


def test_every_module_has_one_notebook():
    mods = {str(p.relative_to(ROOT/'segwl').with_suffix('')).replace('/', '.')
            for p in (ROOT/'segwl').rglob('*.py') if p.name not in ('__init__.py', '_modidx.py')}
    assert sorted(rooms()) == sorted(set(rooms())), 'two notebooks export one module'
    assert mods == set(rooms()), mods ^ set(rooms())


@pytest.mark.parametrize('module', rooms())
def test_a_room_imports_only_rooms_listed_before_it(module):
    order = rooms()
    later = sorted(m for m in _imports(module) if m not in order[:order.index(module)])
    assert not later, f"segwl.{module} imports {later}: rooms listed after it (or itself)"


@pytest.mark.parametrize('path', sorted(str(p.relative_to(ROOT/'segwl')) for p in (ROOT/'segwl').rglob('*.py')
                                        if p.name != '_modidx.py'))
def test_no_module_is_over_the_limit(path):
    n = len((ROOT/'segwl'/path).read_text().splitlines())
    assert n <= LIMIT or path in LONGER, f"segwl/{path}: {n} lines, over {LIMIT}: cut it into rooms of one idea"
