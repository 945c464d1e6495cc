"""Print the requirements of extras of pyproject.toml (`[project.optional-dependencies]`), one a line.

`make docs` installs the `docs` extra's tools alone (Sphinx does not need torch), `make lab` the `lab` extra beside
the package: `pip install $(python tools/extras.py docs)`."""
import re, sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent/'pyproject.toml'


def extras(text: str) -> dict:
    "`{extra: [requirement, ...]}` of a pyproject.toml's text (tomllib where Python has it, else its one-line lists)."
    try:
        import tomllib
    except ImportError:
        block = text.split('[project.optional-dependencies]', 1)[1].split('\n[', 1)[0]
        return {m[1]: re.findall(r'"([^"]+)"', m[2]) for m in re.finditer(r'^([\w-]+)\s*=\s*\[(.*)\]\s*$', block, re.M)}
    return tomllib.loads(text)['project'].get('optional-dependencies', {})


if __name__ == '__main__':
    found = extras(PYPROJECT.read_text())
    missing = [n for n in sys.argv[1:] if n not in found]
    if missing: sys.exit(f"{PYPROJECT}: no extra named {', '.join(missing)} (extras: {', '.join(found)})")
    print('\n'.join(r for n in sys.argv[1:] for r in found[n]))
