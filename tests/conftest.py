import importlib.util, os, subprocess, sys
from pathlib import Path
import numpy as np
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


def segwl(*argv, cwd=None, check_rc=None, timeout=600) -> subprocess.CompletedProcess:
    "Run the `segwl` command in a fresh process, this checkout's package first on the path; `check_rc` asserts the exit."
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
               OMP_NUM_THREADS='1')
    code = 'import sys; from segwl.cli import main; sys.exit(main(sys.argv[1:]))'
    r = subprocess.run([sys.executable, '-c', code, *map(str, argv)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check_rc is not None: assert r.returncode == check_rc, r.stdout + r.stderr
    return r


def iou(a, b) -> float:
    "Intersection over union of two bool masks; 1 when both are empty."
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def edge(truth: np.ndarray) -> np.ndarray:
    "Pixels within one pixel (8-neighbours) of the boundary of `truth`, on either side."
    def grow(m):
        p = np.pad(m, 1)
        return np.logical_or.reduce([p[1 + dy:p.shape[0] - 1 + dy, 1 + dx:p.shape[1] - 1 + dx]
                                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return grow(truth) & grow(~truth)


def same_up_to_edge(a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> bool:
    "`a` and `b` differ only along the object's edge: what resampling a target into a cell may move, nothing else."
    return a.shape == b.shape and not ((a != b) & ~edge(truth)).any()
