import subprocess, sys
from conftest import ROOT

def test_readme_is_rendered_from_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'render_readme.py'), '--check'], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout

def test_readme_starts_with_the_two_commands():
    text = (ROOT/'README.md').read_text()
    first_block = text.split('```sh', 1)[1].split('```', 1)[0]
    assert 'make demo' in first_block and 'make test' in first_block
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
