"bench/bench_suite.py: its kinds of process, its table, and a watched command whose CPU is known."
import sys
from pathlib import Path
import pytest


@pytest.fixture(scope='module')
def bench(bench_module): return bench_module('bench_suite')


@pytest.mark.parametrize('cmd, kind', [
    ('/w/.venv/bin/python -u -c import sys;exec(eval(sys.stdin.readline()))', 'pytest-xdist worker'),
    ('ray::MapWorker(MapBatches(FolderWorker))', 'Ray actor: FolderWorker'),
    ('ray::_StatsActor', 'Ray worker, other'),
    ('/w/.venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x', 'Ray daemon'),
    ('/w/.venv/bin/python -m ipykernel_launcher -f /tmp/k.json', 'papermill kernel'),
    ('/w/.venv/bin/python -c import sys; from segwl.cli import main; sys.exit(main(sys.argv[1:]))', 'segwl command'),
    ('/w/.venv/bin/python /w/.venv/bin/pytest -n auto', 'pytest'),
    ('/w/.venv/bin/python /tmp/pytest-of-root/pytest-3/driver.py []', 'python, other'),   # a tmp path is not pytest
    ('', 'other: kdamond.0')])
def test_kind_of(bench, cmd, kind):
    assert bench.kind_of(cmd, 'kdamond.0') == kind


def test_by_kind_and_table(bench):
    procs = [dict(kind='a', cpu=1.0), dict(kind='b', cpu=3.0), dict(kind='a', cpu=0.5), dict(kind='c', cpu=0.03),
             dict(kind='d', cpu=0.04)]
    assert bench.by_kind(procs) == [('b', 1, 3.0), ('a', 2, 1.5), ('c', 1, 0.0), ('d', 1, 0.0)]
    t = bench.table(dict(processes=procs, wall_s=2.0, returncode=0, machine_cpu_s=5.0)).splitlines()
    assert [r.split() for r in t[1:4]] == [['b', '1', '3.0', '67%'], ['a', '2', '1.5', '33%'],
                                           ['2', 'other', 'kinds', '2', '0.0', '0%']]      # under 1%: one row
    assert t[-1].startswith('wall 2.0 s, exit 0; machine CPU 5.0 s') and t[-1].endswith('the processes seen: 4.5 s')


@pytest.mark.skipif(not Path('/proc/stat').exists(), reason='bench_suite reads /proc (Linux)')
def test_watch_sees_a_child_burn_its_cpu(bench):
    burn = 'import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\nraise SystemExit(3)'
    res = bench.watch([sys.executable, '-c', burn], every=0.1)
    assert res['returncode'] == 3 and res['wall_s'] >= 0.6
    child = [p for p in res['processes'] if 'process_time' in p['cmd']]
    assert len(child) == 1 and child[0]['kind'] == 'python, other' and 0.5 <= child[0]['cpu'] <= 1.5, child
    assert res['machine_cpu_s'] >= 0.5
