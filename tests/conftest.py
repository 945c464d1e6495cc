import importlib.util, os, subprocess, sys
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
    if not p.is_dir():
        pytest.skip(f"needs the Oxford-IIIT Pet data at {p} (set SEGWL_SHARED_DATA); not part of a clone")
    return p

@pytest.fixture(scope='session')
def bench_module():
    "Loads a script of bench/ by name as a module (bench/ is not a package)."
    def load(name):
        spec = importlib.util.spec_from_file_location(name, ROOT/'bench'/f'{name}.py')
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m
    return load


def segwl(*argv, cwd=None, check_rc=None, timeout=600, process=None) -> subprocess.CompletedProcess:
    """Run the `segwl` command; `check_rc` asserts the exit status. In this process by default (`segwl.cli.main` with
    stdout and stderr captured, one torch thread, an uncaught exception as exit 1 and its traceback), which spares a
    Python and torch start-up per call. In a fresh process (this checkout's package first on the path) when `process`
    is true, for `run-notebook` (a kernel of its own), or for every call with SEGWL_TEST_PROCESS=1: where the process
    itself is what a test checks (signals, resource limits, the console script)."""
    if process is None: process = os.environ.get('SEGWL_TEST_PROCESS') == '1' or (argv[:1] == ('run-notebook',))
    r = (_segwl_process if process else _segwl_here)([str(a) for a in argv], cwd, timeout)
    if check_rc is not None: assert r.returncode == check_rc, r.stdout + r.stderr
    return r


def _segwl_process(argv, cwd, timeout) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
               OMP_NUM_THREADS='1')
    code = 'import sys; from segwl.cli import main; sys.exit(main(sys.argv[1:]))'
    return subprocess.run([sys.executable, '-c', code, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _segwl_here(argv, cwd, timeout) -> subprocess.CompletedProcess:
    import contextlib, io, traceback, torch
    from segwl.cli import main
    out, err, threads, here = io.StringIO(), io.StringIO(), torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    try:
        if cwd is not None: os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try: code = main(argv)
            except SystemExit as e:                         # argparse: usage errors and --help
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if isinstance(e.code, str): print(e.code, file=sys.stderr)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(['segwl', *argv], code, out.getvalue(), err.getvalue())


def iou(a, b) -> float:
    "Intersection over union of two bool masks; 1 when both are empty."
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0
