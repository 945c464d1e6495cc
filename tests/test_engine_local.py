"""The Ray engine's local runs in drivers of their own (issue 22.5 and 22.6): each starts, and must stop, a local Ray
instance of its own, so these tests need not share `test_engine.py`'s instance nor its worker."""
import json, os, signal, subprocess, sys, textwrap
import pytest
from PIL import Image
from conftest import ROOT, checkout_env, ray_pythonpath, segwl_argv
from segwl.testing import synthetic_scene

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning:ray.data.context')   # Ray Data's own
REF = synthetic_scene((60, 90), seed=1)


@pytest.fixture(scope='module')
def folder(engine_images): return engine_images


# No Ray process outlives a local run (issue 22.5), and a bad address is an error within a minute (22.6). Each test
# runs a driver of its own in another process, which starts (and must stop) its own local instance; processes are
# told apart by a mark in their environment, which Ray's processes inherit from the driver.

LOCAL_DRIVER = """
import json, os, signal, sys
import segwl.engine as E
from segwl.testing import synthetic_scene
images, out, workers, how = json.loads(sys.argv[1])
write, calls = E.write_result, []
def write_result(res, out, collide):
    row = write(res, out, collide)
    calls.append(row['file'])
    if how == 'fail' and len(calls) == 2: raise RuntimeError('the driver fails midway')
    if how == 'ctrl-c' and len(calls) == 2: os.kill(os.getpid(), signal.SIGINT)
    return row
E.write_result = write_result
spec = E.LabelerSpec(synthetic_scene((60, 90), seed=1), 'a red ellipse', dict(trials=2), 'colour-segmenter',
                     'colour-scorer', device='cpu')
print(E.label_folder_ray(spec, images, out, workers=workers, progress=False))
"""


def ray_env(tmp_path, mark: str) -> dict:
    "The environment of a driver: the shim and segwl first on the path (`ray_pythonpath`), and `mark`."
    return checkout_env(PYTHONPATH=ray_pythonpath(tmp_path/'shim', ROOT), SEGWL_TEST_MARK=mark)


def marked(mark: str, wait: float = 5.0) -> list:
    "The processes whose environment carries `mark` (after up to `wait` s for them to go)."
    import psutil, time
    t0, found = time.time(), []
    while True:
        found = []
        for p in psutil.process_iter(['name']):
            try:
                if p.environ().get('SEGWL_TEST_MARK') == mark: found.append(f"{p.pid} {p.info['name']}")
            except psutil.Error: pass
        if not found or time.time() - t0 > wait: return found
        time.sleep(0.5)


def ctrl_c_reaches():
    """SIGINT back to its default in the driver, as in a terminal's foreground process: a suite started in the
    background of a non-interactive shell (a CI job, `make test &`) ignores SIGINT, its children inherit that, and
    Python then installs no KeyboardInterrupt handler (the ctrl-c case would run to the end and exit 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize('how', ['ok', 'fail', 'ctrl-c'])
def test_a_local_run_leaves_no_ray_process(folder, tmp_path, how):
    "--workers 1000 on this machine: bounded by its CPUs (said once), and no Ray process left, whatever the end."
    pytest.importorskip('ray.data', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    mark = f"{tmp_path.name}-{how}"
    (tmp_path/'driver.py').write_text(textwrap.dedent(LOCAL_DRIVER))
    arg = json.dumps([str(folder), str(tmp_path/'out'), 1000, how])
    r = subprocess.run([sys.executable, str(tmp_path/'driver.py'), arg], env=ray_env(tmp_path, mark),
                       capture_output=True, text=True, timeout=400, preexec_fn=ctrl_c_reaches)
    if 'could not start or join a local Ray instance' in r.stderr: pytest.skip('a local Ray instance could not start')
    assert r.returncode in {'ok': (0,), 'fail': (1,), 'ctrl-c': (-2, 130)}[how], r.stderr[-3000:]
    assert {'ok': "'ok': 6", 'fail': 'RuntimeError: the driver fails midway', 'ctrl-c': 'KeyboardInterrupt'}[how] \
        in r.stdout + r.stderr, r.stderr[-3000:]
    cpus = len(os.sched_getaffinity(0))
    if cpus < 1000: assert f"--workers 1000: the Ray cluster has {cpus} CPUs (1 a worker), room for {cpus} workers" \
        in r.stderr
    assert marked(mark) == []                                               # 45 processes, 20 GB, were left
    noise = [line for line in r.stderr.splitlines() if any(w in line for w in ('Token authentication', 'core_worker',
                                                                                'ray_remote_args'))]
    assert how != 'ok' or noise == [], noise                  # a good run on segwl's own instance: no Ray chatter


@pytest.mark.parametrize('listener', [False, True])
def test_a_bad_ray_address_is_an_error_within_a_minute(folder, tmp_path, listener):
    "Nothing at the address (refused), or something that is not Ray (accepts, never answers): exit 2 naming it."
    pytest.importorskip('ray.data', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    import socket, time
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    if listener: server.listen(8)
    address = f"127.0.0.1:{server.getsockname()[1] if listener else 1}"
    ref = tmp_path/'ref.png'
    Image.fromarray(REF[0]).save(ref)
    Image.fromarray(REF[1]).save(tmp_path/'ref_mask.png')
    t0 = time.time()
    try:
        argv = ['label', '--reference', ref, tmp_path/'ref_mask.png', '--text', 'a red ellipse', '--images', folder,
                '--out', tmp_path/'out', '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer',
                '--no-progress', '--engine', 'ray', '--ray-address', address]
        r = subprocess.run(segwl_argv(*argv), env=ray_env(tmp_path, 'address'),
                           capture_output=True, text=True, timeout=300)
    finally: server.close()
    took = time.time() - t0
    assert r.returncode == 2 and address in r.stderr and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert f"cannot reach the Ray cluster at {address} (" + ('it accepts connections but does not answer as Ray does'
                                                            if listener else 'Connection refused') in r.stderr, r.stderr
    assert took < 60, f"{took:.0f} s"
