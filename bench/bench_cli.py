"""How fast the command line answers: `segwl --help`, `segwl label --help` and `segwl --version`, each in a fresh
process, `--runs` times (after one warm-up), as a markdown table of min / median / max seconds. The house goal:
median under 0.5 s (help must not import torch). Usage: python bench/bench_cli.py [--runs 15]"""
import argparse, shutil, statistics, subprocess, sys, time
from pathlib import Path

COMMANDS = (['--help'], ['label', '--help'], ['--version'])


def segwl_exe() -> str:
    "The `segwl` console script beside this Python, else the one on PATH."
    here = Path(sys.executable).with_name('segwl')
    return str(here) if here.exists() else shutil.which('segwl') or 'segwl'


def timings(argv, runs: int) -> tuple[list[float], list[float]]:
    "`(wall seconds, CPU seconds)` of `runs` fresh `segwl ARGV` processes, after one warm-up."
    import resource
    cmd = [segwl_exe(), *argv]
    subprocess.run(cmd, capture_output=True, check=True)
    wall, cpu = [], []
    for _ in range(runs):
        r0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        wall.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
    return wall, cpu


def table(results: dict) -> str:
    "A markdown table of `{command: (wall seconds, CPU seconds)}`: min / median / max of each."
    f = lambda ts: f"{min(ts):.3f} / {statistics.median(ts):.3f} / {max(ts):.3f}"
    rows = ['| command | wall s (min / median / max) | CPU s (min / median / max) |', '|---|---|---|']
    rows += [f"| `segwl {cmd}` | {f(w)} | {f(c)} |" for cmd, (w, c) in results.items()]
    return '\n'.join(rows)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=15)
    a = ap.parse_args()
    print(f"load average before: {', '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    print(table({' '.join(c): timings(c, a.runs) for c in COMMANDS}))
