"""Where a command's CPU goes, by kind of process: the measurement behind the test suite's time (issue 21).

Runs a command (by default pytest as `make pytest` runs it) while a thread reads /proc twice a second: for every
process seen, the CPU time (user + system) it used while watched and its command line. The table sums them by kind
(pytest's xdist workers, Ray's actors, workers and daemons, papermill's kernels, segwl commands run as processes of
their own, ...) beside the command's wall time and the whole machine's CPU over the run (/proc/stat, all processes).
A process that lives less than half a second may be missed; the last line says how much of the machine's CPU the
processes seen account for.

    python bench/bench_suite.py                                           # the suite, as `make pytest` runs it
    python bench/bench_suite.py -- .venv/bin/pytest -q tests/test_engine.py
    python bench/bench_suite.py --json bench/results/suite_cpu.json

Linux only (/proc). Run it on a quiet machine: everything else that runs is in the machine's CPU too.
"""
from __future__ import annotations
import argparse, json, os, re, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [str(ROOT/'.venv'/'bin'/'pytest'), '-n', 'auto', '--dist', 'loadgroup', '-q', '-p', 'no:cacheprovider']

# (kind, pattern of the command line), the first match wins: specific before general.
KINDS = [('pytest-xdist worker', r'exec\(eval\(sys\.stdin\.readline\(\)\)\)'),
         ('Ray actor: FolderWorker', r'^ray::MapWorker\(MapBatches\(FolderWorker\)\)'),
         ('Ray worker, other', r'^ray::'),
         ('Ray daemon', r'gcs_server|/raylet|dashboard|log_monitor|autoscaler|runtime_env'),
         ('papermill kernel', r'ipykernel'),
         ('segwl command', r'segwl\.cli|/bin/segwl\b'),
         ('pytest', r'/bin/pytest\b|-m pytest\b'),
         ('python, other', r'python')]


def kind_of(cmd: str, comm: str = '') -> str:
    "The kind of a process, from its command line (its `comm` name when nothing matches)."
    return next((k for k, pat in KINDS if re.search(pat, cmd)), f"other: {comm or cmd.split(' ')[0]}")


def machine_cpu() -> float:
    "CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal)."
    f = open('/proc/stat').readline().split()
    return sum(int(f[i]) for i in (1, 2, 3, 6, 7, 8)) / os.sysconf('SC_CLK_TCK')


def read_processes() -> dict:
    "`{(pid, start tick): (cpu s, comm, command line)}` of the processes alive now."
    out, hz = {}, os.sysconf('SC_CLK_TCK')
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            stat = Path(f'/proc/{pid}/stat').read_text()
            rest = stat[stat.rindex(')') + 2:].split()
            cmd = Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace').strip()
        except (OSError, ValueError): continue                        # gone between listdir and read
        comm = stat[stat.index('(') + 1:stat.rindex(')')]
        out[(pid, int(rest[19]))] = ((int(rest[11]) + int(rest[12])) / hz, comm, cmd)
    return out


def watch(argv: list, every: float = 0.5, cwd=None) -> dict:
    "Run `argv`; its exit status, wall time, the machine's CPU, and each process's CPU used while watched."
    first = read_processes()                                          # what ran before: only its growth counts
    seen, stop = {}, threading.Event()
    def sample():
        while True:
            for key, (cpu, comm, cmd) in read_processes().items():
                base = first[key][0] if key in first else 0.0
                old = seen.get(key)
                seen[key] = (cpu - base, comm, cmd or (old[2] if old else ''))
            if stop.wait(every): return
    t = threading.Thread(target=sample, daemon=True)
    c0, t0 = machine_cpu(), time.perf_counter()
    t.start()
    rc = subprocess.run(argv, cwd=cwd).returncode
    wall, cpu = time.perf_counter() - t0, machine_cpu() - c0
    stop.set()
    t.join()
    me = str(os.getpid())
    procs = [dict(pid=int(k[0]), cpu=round(c, 2), kind=kind_of(cmd, comm), cmd=cmd[:200])
             for k, (c, comm, cmd) in seen.items() if c > 0 and k[0] != me]
    return dict(argv=argv, returncode=rc, wall_s=round(wall, 1), machine_cpu_s=round(cpu, 1), processes=procs)


def by_kind(processes: list) -> list:
    "Rows `(kind, processes, cpu s)`, most CPU first."
    rows = {}
    for p in processes:
        n, c = rows.get(p['kind'], (0, 0.0))
        rows[p['kind']] = (n + 1, c + p['cpu'])
    return sorted(((k, n, round(c, 1)) for k, (n, c) in rows.items()), key=lambda r: -r[2])


def table(res: dict, least: float = 0.01) -> str:
    "The table: CPU by kind of process (kinds under `least` of it in one row), the wall time, the machine's CPU."
    rows = by_kind(res['processes'])
    seen = sum(c for _, _, c in rows)
    big = [r for r in rows if r[2] >= least * seen]
    rest = [r for r in rows if r not in big]
    if rest: big.append((f"{len(rest)} other kinds", sum(n for _, n, _ in rest), round(sum(c for *_, c in rest), 1)))
    lines = [f"{'kind of process':<28} {'processes':>9} {'CPU s':>8} {'share':>6}"]
    lines += [f"{k:<28} {n:>9} {c:>8.1f} {c / max(seen, 1e-9):>6.0%}" for k, n, c in big]
    lines.append(f"wall {res['wall_s']:.1f} s, exit {res['returncode']}; machine CPU {res['machine_cpu_s']:.1f} s "
                 f"({os.cpu_count()} cores), of which the processes seen: {seen:.1f} s")
    return '\n'.join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--json', type=Path, help='also write the processes and totals here')
    p.add_argument('--every', type=float, default=0.5, help='seconds between two readings of /proc')
    p.add_argument('command', nargs='*', help='the command to watch (after --); default: pytest as make pytest runs it')
    args = p.parse_args(argv)
    if not Path('/proc/stat').exists():
        print('bench_suite: needs Linux (/proc); nothing measured')
        return 0
    res = watch(args.command or PYTEST, args.every, cwd=ROOT)
    print(table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + '\n')
    return res['returncode']


if __name__ == '__main__': sys.exit(main())
