import importlib.util, os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))

@pytest.fixture
def examples() -> Path:
    return ROOT/'examples'

@pytest.fixture
def pets_cat() -> Path:
    p = SHARED_DATA/'pets-cat'
    if not p.is_dir(): pytest.skip(f"needs the Oxford-IIIT Pet data at {p} (set SEGWL_SHARED_DATA); not part of a clone")
    return p

@pytest.fixture(scope='session')
def bench_module():
    "Loads a script of bench/ by name as a module (bench/ is not a package)."
    def load(name):
        spec = importlib.util.spec_from_file_location(name, ROOT/'bench'/f'{name}.py')
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
        return m
    return load
