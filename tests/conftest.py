import os
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
