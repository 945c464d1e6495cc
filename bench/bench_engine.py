"""The Ray engine's throughput: images per second and peak memory per worker, 1 and 2 workers, on this machine.

A local Ray instance of `--cpus` CPUs; each worker is one actor holding one CPU (so torch runs one thread in it).
The local engine (one process, torch's own thread count) is the baseline. Labelling: tiny random SAM and CLIP by
default; `--real` adds real-size architectures with random weights (SAM ViT-B, CLIP ViT-B-32: speed does not depend
on the weight values), which takes minutes on a CPU. Predicting (`segwl predict`): a tiny-unet model trained here for
one epoch on synthetic images (its weights do not change its speed either):

    nice python bench/bench_engine.py --images 12 [--real --real-images 4] [--json bench/engine_cpu.json]
    nice python bench/bench_engine.py --what predict --predict-images 48

Steady images/s leave out each worker's first image (model building, first-call warm-up): (n - w) / (t_last - t_w)
over the arrival times of the results; "wall" is the whole run, Ray's actor start and model building included.
On a small busy machine Ray's local start can miss its raylet's fixed 15 s deadline for its helper processes (see
the ray_address fixture of tests/test_engine.py for why, and the module it leaves out of them).
"""
from __future__ import annotations
import argparse, json, os, platform, shutil, sys, tempfile, time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from segwl.engine import label_with, ray_results, ray_session, write_result    # noqa: E402
from segwl.recipe import LabellerSpec                                          # noqa: E402
from segwl.folder import label_folder, label_one, read_manifest   # noqa: E402
from segwl.finetune import TrainSettings, train                    # noqa: E402
from segwl.checkpoint import load_model                           # noqa: E402
from segwl.predict import predict_folder, predict_one             # noqa: E402
from segwl.trainset import synthetic_dataset                      # noqa: E402
from segwl.testing import synthetic_scene, scene_folder            # noqa: E402


def peak_rss_mb() -> float:
    "Peak resident set size of this process so far, MB (VmHWM; 0 where /proc is missing)."
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    return 0.0


def measured_one(labeller, path, mask_path, collide, one=label_one):
    "`one` (`label_one`), its row also telling which process did it, when, and that process's peak memory."
    row = one(labeller, path, mask_path, collide)
    return {**row, 'pid': os.getpid(), 'done_at': time.time(), 'peak_mb': round(peak_rss_mb(), 1)}


def measured_predict(model, path, mask_path, collide):
    "`predict_one`, measured like `measured_one`."
    return measured_one(model, path, mask_path, collide, one=predict_one)


class RealSizeSpec(LabellerSpec):
    "Real-size SAM and CLIP architectures with random weights (no download), built on the worker like any spec."
    def backend(self, kind, device):
        import torch
        torch.manual_seed(0)
        if kind == 'segmenter':
            from segment_anything import sam_model_registry
            from segwl.backends.sam import SamSegmenter
            return SamSegmenter(sam_model_registry['vit_b'](checkpoint=None), device=device)
        import open_clip
        from segwl.backends.clip import ClipScorer
        model, _, preprocess = open_clip.create_model_and_transforms('ViT-B-32', pretrained=None)
        return ClipScorer(model, preprocess, open_clip.get_tokenizer('ViT-B-32'), device=device)


def summary(rows: list, workers: int, wall: float) -> dict:
    "Steady images/s (each worker's first image left out), wall time and peak memory per worker."
    t = sorted(r['done_at'] for r in rows)
    steady = (len(t) - workers) / (t[-1] - t[workers - 1]) if len(t) > workers and t[-1] > t[workers - 1] else None
    peaks = {}
    for r in rows: peaks[r['pid']] = max(peaks.get(r['pid'], 0), r['peak_mb'])
    return dict(images=len(rows), wall_s=round(wall, 1), images_per_s=steady and round(steady, 3),
                images_per_s_wall=round(len(rows) / wall, 3), workers_seen=len(peaks),
                peak_mb_per_worker=sorted(round(v) for v in peaks.values()))


def run_ray(spec, images, out, workers: int) -> dict:
    t0 = time.time()
    n = label_with(spec, images, out, partial(ray_results, build=spec.build, one=measured_one, workers=workers),
                   progress=False)
    wall = time.time() - t0
    assert n['error'] == 0, n
    return summary(read_manifest(Path(out)/'manifest.jsonl'), workers, wall)


def local_summary(out, t0: float, wall: float) -> dict:
    "The summary of a local run into `out` (its peak is this whole process's)."
    rows = read_manifest(Path(out)/'manifest.jsonl')
    for r in rows: r.update(pid=os.getpid(), peak_mb=peak_rss_mb())
    t, s = t0, []
    for r in rows:                       # the local engine is sequential: arrival times from its own `seconds`
        t += r['seconds']
        s.append({**r, 'done_at': t})
    return summary(s, 1, wall)


def run_local(spec, images, out) -> dict:
    "The local engine in this process, for comparison."
    t0 = time.time()
    n = label_folder(spec.build(), images, out, progress=False)
    wall = time.time() - t0
    assert n['error'] == 0, n
    return local_summary(out, t0, wall)


def predict_ray(model_dir, images, out, workers: int) -> dict:
    "`predict_folder` on the pool, as `predict_folder_ray` runs it, with measured rows."
    t0 = time.time()
    pool = partial(ray_results, build=partial(load_model, model_dir, 'cpu'), one=measured_predict, workers=workers,
                   gpus=0, what='model')
    rows = predict_folder(load_model(model_dir, 'cpu'), images, out, progress=False, results=pool, write=write_result)
    wall = time.time() - t0
    assert all(r['status'] == 'ok' for r in rows), rows
    return summary(read_manifest(Path(out)/'manifest.jsonl'), workers, wall)


def predict_local(model_dir, images, out, threads: int | None = None) -> dict:
    "The local engine with torch's own thread count, or `threads` (1: as a Ray worker of one CPU runs)."
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        t0 = time.time()
        rows = predict_folder(load_model(model_dir, 'cpu'), images, out, progress=False)
        wall = time.time() - t0
    finally: torch.set_num_threads(before)
    assert all(r['status'] == 'ok' for r in rows), rows
    return local_summary(out, t0, wall)


def table(results: list) -> str:
    head = ('| models | engine | workers | images | wall s | images/s (steady) | images/s (wall) | '
            'peak MB per worker |\n|---|---|---|---|---|---|---|---|')
    lines = [f"| {r['models']} | {r['engine']} | {r['workers']} | {r['images']} | {r['wall_s']} | "
             f"{r['images_per_s']} | {r['images_per_s_wall']} | {', '.join(map(str, r['peak_mb_per_worker']))} |"
             for r in results]
    return '\n'.join([head, *lines])


def predict_runs(args, tmp: Path) -> list:
    "`segwl predict`'s step: the local engine, then Ray with 1 and 2 workers, a tiny-unet model."
    imgs, masks = synthetic_dataset(tmp/'syn', n=6, size=64)
    train(imgs, masks, tmp/'model', TrainSettings(arch='tiny-unet', size=args.predict_size, epochs=1, batch_size=2,
                                                  pretrained=False, device='cpu', val_fraction=0), progress=False)
    images = tmp/'predict-images'
    scene_folder(images, [tuple(args.size)] * args.predict_images, seed=100)
    import torch
    plan = [(f'local ({torch.get_num_threads()} torch threads)', 1, lambda o: predict_local(tmp/'model', images, o)),
            ('local (1 torch thread)', 1, lambda o: predict_local(tmp/'model', images, o, threads=1))]
    plan += [('ray', w, lambda o, w=w: predict_ray(tmp/'model', images, o, w)) for w in (1, 2)]
    results = []
    for engine, w, run in plan:
        r = dict(models=f'predict: tiny-unet ({args.predict_size} px input)', engine=engine, workers=w,
                 **run(tmp/f'predict-{len(results)}'))
        print(json.dumps(r), file=sys.stderr, flush=True)
        results.append(r)
    return results


def runs(args) -> list:
    "The local engine, then Ray with 1 and 2 workers, for each kind of model; then predicting."
    tmp = Path(tempfile.mkdtemp(prefix='bench-engine-'))
    ref = synthetic_scene((240, 320), seed=1)
    kinds = [('tiny random SAM + CLIP', LabellerSpec, args.images)] if 'label' in args.what else []
    if args.real: kinds.append(('SAM ViT-B + CLIP ViT-B-32 (random weights)', RealSizeSpec, args.real_images))
    results = []
    for name, cls, n in kinds:
        images = tmp/f'images-{n}'
        if not images.exists(): scene_folder(images, [tuple(args.size)] * n, seed=100)
        spec = cls(ref, 'a red ellipse', dict(trials=args.trials), 'sam-vit_b', 'clip', random=True, device='cpu')
        plan = [('local', 1, lambda o: run_local(spec, images, o))]
        plan += [('ray', w, lambda o, w=w: run_ray(spec, images, o, w)) for w in (1, 2)]
        for engine, w, run in plan:
            r = dict(models=name, engine=engine, workers=w, **run(tmp/f'{cls.__name__}-{engine}-{w}'))
            print(json.dumps(r), file=sys.stderr, flush=True)
            results.append(r)
    if 'predict' in args.what: results += predict_runs(args, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=12, help='synthetic images per run, tiny models')
    p.add_argument('--size', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'), help='image size')
    p.add_argument('--trials', type=int, default=4, help='prompt trials per image')
    p.add_argument('--real', action='store_true', help='also real-size random-weight SAM ViT-B and CLIP ViT-B-32')
    p.add_argument('--real-images', type=int, default=4, help='images per run with --real')
    p.add_argument('--what', nargs='+', choices=['label', 'predict'], default=['label', 'predict'],
                   help='what to time (default both)')
    p.add_argument('--predict-images', type=int, default=48, help='synthetic images per predict run')
    p.add_argument('--predict-size', type=int, default=64, help="the tiny-unet model's input size")
    p.add_argument('--cpus', type=int, default=2, help='CPUs of the local Ray instance')
    p.add_argument('--json', help='write the results here too')
    args = p.parse_args(argv)
    with ray_session(None, workers=args.cpus): results = runs(args)
    info = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), ray_cpus=args.cpus,
                size=args.size, trials=args.trials, load_avg=os.getloadavg())
    print(f"{info}\n\n{table(results)}")
    if args.json: Path(args.json).write_text(json.dumps(dict(info=info, results=results), indent=2) + '\n')

if __name__ == '__main__':
    main()
