"""Labelling cost: where the time of `SeedLabeller` goes, against one SAM image-encoder pass and \
the seed's call pattern.

Real-size architectures with random weights (speed does not depend on weight values) on real photos:

    nice python bench/bench_label.py --images 3 --trials 10 --json bench/label_cpu.json

The canvas method (#13): real-size SAM 3 (transformers' `Sam3Config()`) with random weights, its cost per image
against one vision-encoder pass on the same canvas (goal: overhead <= 1.10), and peak memory:

    nice python bench/bench_label.py --method canvas --segmenter sam3 --images 3 --json bench/label_canvas_cpu.json
    python bench/bench_label.py --method canvas --segmenter sam3 --device cuda --dtype bfloat16 --images 20

Several targets on one canvas (#24): encoder passes and pipeline time per image against one encoder pass, for each
N of `--packing` in one run, as the folder runner labels (load, `label_many` of N images, write):

    nice python bench/bench_label.py --packing 1,3 --images 6 --threads 1 --json bench/results/packing_seed_cpu.json
    nice python bench/bench_label.py --method canvas --packing 1,3 --images 3 --threads 1 \
        --json bench/results/packing_canvas_cpu.json

See bench/README.md, section "Labelling cost (bench_label.py)", for what is measured and the latest results.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from segwl.seed import MAP_MODES, SCORER_KNOBS    # the scorer's settings, as segwl label takes them
DEFAULT_DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))/'pets-cat'
STEPS = ('load', 'text_map', 'text_score', 'points', 'stitch', 'set_image', 'predict', 'write')
STEP_NAMES = dict(load='image loading', text_map='CLIP map', text_score='CLIP whole-image score',
                  points='text points (map peaks)', stitch='stitching', set_image='SAM image encoder (set_image)',
                  predict='SAM decoder calls (all trials; seed: full passes, encoder included)',
                  write='writing the mask')


def rss_mb() -> float:
    "Current resident set size of this process in MB (Linux /proc; 0 elsewhere)."
    try: return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    except (OSError, ValueError): return 0.0

def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB: VmHWM on Linux (ru_maxrss is not used: Linux carries it over
    from the parent across fork + exec, so a fresh subprocess would report its parent's peak)."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != 'darwin' else 2**20)


# ---------------------------------------------------------------- models and data
def build(args):
    "`(segmenter, scorer, models)`: real-size architectures with random weights (or tiny ones with --tiny)."
    import torch
    from segwl.backends.sam import SamSegmenter
    from segwl.backends.clip import ClipScorer
    torch.manual_seed(0)
    if args.tiny:
        return SamSegmenter.tiny_random(), ClipScorer.tiny_random(), dict(sam='tiny', clip='tiny')
    import open_clip
    from segment_anything import sam_model_registry
    seg = SamSegmenter(sam_model_registry[args.sam_type](checkpoint=None), device=args.device)
    model, _, preprocess = open_clip.create_model_and_transforms(args.clip_model, pretrained=None)
    sc = ClipScorer(model, preprocess, open_clip.get_tokenizer(args.clip_model), device=args.device)
    return seg, sc, dict(sam=args.sam_type, clip=args.clip_model)

def find_data(d: Path):
    "`(reference image, reference mask, target files)` of a dataset folder in segwl's layout, or None if it is missing."
    from segwl.data import list_images
    ref = d/'reference'
    imgs = d/'unlabeled'/'images'
    if not ref.is_dir() or not imgs.is_dir(): return None
    pairs = [(p, p.with_suffix('.png')) for p in list_images(ref)
             if p.suffix.lower() != '.png' and p.with_suffix('.png').exists()]
    if not pairs: return None
    return pairs[0][0], pairs[0][1], list_images(imgs)

def labeller(args, seg, sc):
    "The seed labeller over the first reference of `args.data`, through the recipe, with the models `seg` and `sc`."
    from segwl.recipe import LabellerSpec
    ref_path, mask_path, _ = find_data(args.data)
    kw = {k: v for k, v in vars(args).items() if k in SCORER_KNOBS and v is not None}
    spec = LabellerSpec((ref_path, mask_path), args.text, dict(trials=args.trials, **kw))
    return spec.build(backends=dict(segmenter=seg, scorer=sc))


class Synced:
    "A segmenter whose `set_image` waits for the GPU (its time is not billed to the next call) and counts its calls."
    def __init__(self, seg): self.seg, self.calls = seg, 0
    def set_image(self, image):
        import torch
        self.calls += 1
        self.seg.set_image(image)
        if torch.cuda.is_available(): torch.cuda.synchronize()
    def predict(self, *a, **kw): return self.seg.predict(*a, **kw)


# ---------------------------------------------------------------- the seed's call pattern
class SeedPattern:
    "The seed's calls to SAM: every prompt trial is a full forward pass, image encoder included."
    def __init__(self, seg): self.seg, self.image = seg, None
    def set_image(self, image): self.image = image           # nothing computed here: each trial encodes again
    def predict(self, points, labels, multimask=True):
        self.seg.set_image(self.image)
        return self.seg.predict(points, labels, multimask=multimask)


class SeedScorer:
    "The seed's calls to CLIP: every prompt trial computes the map again, one window at a time."
    def __init__(self, sc, trials): self.sc, self.trials = sc, trials
    def similarity_map(self, image, text):
        mode, bs = self.sc.map_mode, self.sc.batch_size
        self.sc.map_mode, self.sc.batch_size = 'windows', 1
        try: return [self.sc.similarity_map(image, text) for _ in range(self.trials)][-1]
        finally: self.sc.map_mode, self.sc.batch_size = mode, bs
    def image_score(self, image, text): return self.sc.image_score(image, text)


# ---------------------------------------------------------------- one timed image
def timed_label(labeller, path, out_dir) -> tuple:
    "`(result, {load, label, write, total} seconds)` of labelling the image at `path` and writing its mask."
    from segwl.data import load_image
    from segwl.outputs import save_mask
    t0 = time.perf_counter()
    img = load_image(path)
    t1 = time.perf_counter()
    r = labeller.label(img)
    t2 = time.perf_counter()
    save_mask(r.mask, Path(out_dir)/f"{Path(path).stem}.png")
    t3 = time.perf_counter()
    return r, dict(load=t1 - t0, label=t2 - t1, write=t3 - t2, total=t3 - t0)

def label_one(pl, path, out_dir) -> dict:
    "Seconds per step of labelling the image at `path` and writing its mask, as `label_folder` does."
    r, t = timed_label(pl, path, out_dir)
    tm = {k: float(r.timings.get(k, 0.0)) for k in STEPS if k not in ('load', 'write')}
    tm.update(t)
    tm['other'] = tm['total'] - sum(tm[k] for k in STEPS)
    return tm

def encoder_pass(pl, path) -> float:
    "Seconds of one SAM image-encoder pass (`set_image`) on the stitched canvas of the image at `path`: the floor."
    from segwl.data import load_image
    from segwl.stitch import Stitch
    from segwl.seed import working_copy
    img, _ = working_copy(load_image(path), pl.settings.max_side)
    st = Stitch(pl.reference.shape, img.shape)
    canvas = st.canvas(pl.reference, img)
    t = time.perf_counter()
    pl.segmenter.set_image(canvas)
    return time.perf_counter() - t


# ---------------------------------------------------------------- memory: a fresh process labels a folder
def memory_child(args):
    "Label the first `--memory-child` images with `label_folder`; print JSON: RSS after each image and ru_maxrss."
    from segwl.folder import label_folder
    seg, sc, _ = build(args)
    pl = labeller(args, seg, sc)
    files = find_data(args.data)[2][:args.memory_child]
    trace, inner = [], pl.label_many                 # label_folder hands the labeller its images through label_many
    def label_many(images):
        r = inner(images)
        trace.extend(round(rss_mb(), 1) for _ in r)
        return r
    pl.label_many = label_many
    with tempfile.TemporaryDirectory() as out:
        before = rss_mb()
        n = label_folder(pl, list(files), out, progress=False)
    print(json.dumps(dict(images=len(files), ok=n['ok'], rss_before_mb=round(before, 1), rss_per_image_mb=trace,
                          peak_rss_mb=round(peak_rss_mb(), 1))))

def memory_run(args, n: int) -> dict:
    cmd = [sys.executable, __file__, '--memory-child', str(n), *child_args(args)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if p.returncode: raise RuntimeError(f"memory run over {n} images failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])

def child_args(args) -> list[str]:
    a = ['--data', str(args.data), '--trials', str(args.trials), '--sam-type', args.sam_type,
         '--clip-model', args.clip_model, '--device', args.device, '--text', args.text]
    if args.threads: a += ['--threads', str(args.threads)]
    for k in SCORER_KNOBS:
        if vars(args).get(k) is not None: a += [f"--{k.replace('_', '-')}", str(vars(args)[k])]
    return a + (['--tiny'] if args.tiny or args.memory_tiny else [])


# ---------------------------------------------------------------- the canvas method (SAM 3)
CANVAS_STEPS = ('load', 'canvas', 'set_image', 'segment', 'keep', 'write')
CANVAS_STEP_NAMES = dict(load='image loading', canvas='canvas and exemplar boxes', set_image='SAM 3 vision encoder '
                         '(set_image)', segment='SAM 3 text, DETR and mask decoder (segment)',
                         keep="keeping the target's instances, resizing, union", write='writing the mask')

def build_canvas(args):
    "`(concept segmenter, models)`: real-size SAM 3 (`Sam3Config()`) with random weights, or the tiny one (--tiny)."
    import torch
    from segwl.backends.sam3 import Sam3Segmenter, WordHashTokenizer
    torch.manual_seed(0)
    if args.tiny: return Sam3Segmenter.tiny_random(device=args.device), dict(sam3='tiny')
    from transformers import Sam3Config, Sam3Model, Sam3ImageProcessor
    cfg = Sam3Config()
    model = Sam3Model(cfg)
    if args.dtype: model = model.to(getattr(torch, args.dtype))
    seg = Sam3Segmenter(model, Sam3ImageProcessor(), WordHashTokenizer(cfg.text_config.vocab_size), device=args.device)
    n = sum(p.numel() for p in model.parameters())
    return seg, dict(sam3=f"Sam3Config() ({n / 1e6:.0f} M parameters, random weights, {args.dtype or 'float32'})")

class SyncedConcept(Synced):
    "A concept segmenter: `set_image` waits for the GPU (see `Synced`), and so does `segment`, which is timed."
    def segment(self, *a):
        import torch
        out = self.seg.segment(*a)
        if torch.cuda.is_available(): torch.cuda.synchronize()
        return out

def canvas_labeller(args, seg):
    "The canvas labeller over the first reference of `args.data`, through the recipe, with the concept model `seg`."
    from segwl.recipe import LabellerSpec
    ref_path, mask_path, _ = find_data(args.data)
    spec = LabellerSpec((ref_path, mask_path), None if args.no_text else args.text, method='canvas')
    return spec.build(backends=dict(concept=seg))

def canvas_encoder_pass(cl, path) -> float:
    "Seconds of one vision-encoder pass (`set_image`) on the canvas of the image at `path`: the floor."
    from segwl.data import load_image
    from segwl.seed import working_copy
    work, _ = working_copy(load_image(path), cl.settings.max_side)
    canvas = cl.layout_for(work.shape).canvas([im for im, _ in cl.references], work)
    t = time.perf_counter()
    cl.segmenter.set_image(canvas)
    return time.perf_counter() - t

def label_one_canvas(cl, path, out_dir) -> dict:
    "Seconds per step of labelling the image at `path` with the canvas method and writing its mask."
    r, t = timed_label(cl, path, out_dir)
    tm = {k: float(r.timings.get(k, 0.0)) for k in ('canvas', 'set_image', 'segment')}
    tm.update(keep=float(r.timings['total']) - sum(tm.values()), load=t['load'], write=t['write'], total=t['total'],
              instances=len(r.instances))
    tm['other'] = tm['total'] - sum(tm[k] for k in CANVAS_STEPS)
    return tm

def summarise_canvas(steps: list[dict], encoder: list[float]) -> dict:
    "The canvas method's headline numbers from per-image step timings (arithmetic only: tested on made-up numbers)."
    enc = float(np.median(encoder))
    pipe = mean([s['total'] for s in steps])
    own = mean([s['set_image'] for s in steps])
    return dict(encoder_s=enc, pipeline_s_per_image=pipe, overhead_ratio=pipe / enc,
                overhead_ratio_in_run=pipe / own, images_per_s=1 / pipe,
                steps_s_per_image={k: mean([s[k] for s in steps]) for k in (*CANVAS_STEPS, 'other')})

def table_canvas(res: dict) -> str:
    "Markdown tables of a canvas-method result: headline numbers, then seconds per step per image."
    m, st = res['machine'], res['steps_s_per_image']
    f = lambda v, d=2: '—' if v is None else f"{v:.{d}f}"
    gpu = f", GPU peak {res['cuda_peak_mb']:.0f} MB allocated" if res.get('cuda_peak_mb') else ''
    lines = [f"Canvas method, SAM 3 `{res['models']['sam3']}`, {res['images']} images of `{res['data']}`, text "
             f"{res['text']!r}; {m['device']}{' (' + m['gpu'] + ')' if m.get('gpu') else ''} ({m['cpu']}, "
             f"{m['cpu_count']} cores, {m['torch_threads']} torch threads); torch {res['versions']['torch']}.", '',
             '| measure | value |', '|---|---|',
             f"| one SAM 3 vision-encoder pass on the canvas (`encoder_s`, the floor) | {f(res['encoder_s'])} s |",
             f"| pipeline per image (`pipeline_s_per_image`) | {f(res['pipeline_s_per_image'])} s |",
             f"| `overhead_ratio` = pipeline / encoder pass (goal <= 1.10) | {f(res['overhead_ratio'], 3)} |",
             f"| `overhead_ratio_in_run` = pipeline / its own encoder step | {f(res['overhead_ratio_in_run'], 3)} |",
             f"| images per second | {f(res['images_per_s'], 3)} |",
             f"| peak RSS of this run (`peak_rss_mb`) | {res['peak_rss_mb']:.0f} MB{gpu} |",
             '', '| step (seconds per image) | canvas method |', '|---|---|']
    for k in (*CANVAS_STEPS, 'other'):
        lines.append(f"| {CANVAS_STEP_NAMES.get(k, 'other (bookkeeping)')} | {f(st[k], 3)} |")
    lines.append(f"| **total** | **{f(res['pipeline_s_per_image'])}** |")
    return '\n'.join(lines)

def run_canvas(args) -> dict:
    import torch
    found = find_data(args.data)
    files = found[2][:args.images]
    seg, models = build_canvas(args)
    cl = canvas_labeller(args, SyncedConcept(seg))
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    log(f"bench canvas: {models}, {len(files)} images, {torch.get_num_threads()} torch threads")
    from segwl.data import load_image
    canvas_encoder_pass(cl, files[0])                                   # warm-up: first calls allocate
    cl.label(load_image(files[0]))
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
    encoder, steps = [], []
    with tempfile.TemporaryDirectory() as out:
        for p in files:
            encoder.append(canvas_encoder_pass(cl, p))
            steps.append(label_one_canvas(cl, p, out))
            log(f"  {p.name}: encoder {encoder[-1]:.2f} s, pipeline {steps[-1]['total']:.2f} s, "
                f"{steps[-1]['instances']} instance(s)")
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return dict(method='canvas', models=models, data=str(args.data), images=len(files), text=cl.text,
                settings=cl.settings.to_dict(), **summarise_canvas(steps, encoder), peak_rss_mb=peak_rss_mb(),
                cuda_peak_mb=cuda_peak, dtype=args.dtype, machine=machine(args), versions=versions('sam3'),
                per_image=steps, encoder_per_image=encoder, command=' '.join(sys.argv))


# ---------------------------------------------------------------- several targets on one canvas (#24)
PACKED_STEPS = dict(seed=('load', 'text_map', 'text_score', 'points', 'stitch', 'set_image', 'predict', 'write'),
                    canvas=('load', 'canvas', 'set_image', 'segment', 'keep', 'write'))

def with_targets(lab, n: int):
    "A labeller like `lab` (same references, text and models) with `n` targets a canvas, through the recipe."
    from dataclasses import replace
    from segwl.recipe import LabellerSpec
    spec = LabellerSpec.like(lab, settings=replace(lab.settings, targets_per_canvas=n))
    return spec.build(backends=lab.backends)

def label_packed(lab, files, n: int, out_dir, synced: Synced) -> list[dict]:
    "Per image: seconds per step, encoder passes, instances of labelling `files` `n` a canvas, as a folder run does."
    from segwl.data import load_image, save_mask
    method = 'canvas' if 'concept' in lab.backends else 'seed'
    rows = []
    for k in range(0, len(files), n):
        group = files[k:k + n]
        t0 = time.perf_counter()
        images = [load_image(p) for p in group]
        t1, calls = time.perf_counter(), synced.calls
        res = lab.label_many(images)
        t2 = time.perf_counter()
        for r, p in zip(res, group):
            if isinstance(r, Exception): raise r
            save_mask(r.mask, Path(out_dir)/f"{Path(p).stem}.png")
        t3, m = time.perf_counter(), len(group)
        for r in res:
            tm = {s: float(r.timings.get(s, 0.0)) for s in PACKED_STEPS[method] if s not in ('load', 'write', 'keep')}
            if method == 'canvas': tm['keep'] = float(r.timings['total']) - sum(tm.values())
            tm.update(load=(t1 - t0) / m, write=(t3 - t2) / m, total=(t3 - t0) / m, passes=(synced.calls - calls) / m,
                      instances=len(r.instances or []), grid=(r.packing or {}).get('grid'),
                      vs_single=(r.packing or {}).get('vs_single'))
            tm['other'] = tm['total'] - sum(tm[s] for s in PACKED_STEPS[method])
            rows.append(tm)
    return rows

def summarise_packed(runs: dict, encoder: list[float], method: str) -> dict:
    "Per N: encoder passes, pipeline seconds and each step per image, and per target in encoder passes (arithmetic)."
    enc = float(np.median(encoder))
    out = dict(encoder_s=enc, per_n={})
    for n, rows in runs.items():
        pipe = mean([r['total'] for r in rows])
        steps = {k: mean([r[k] for r in rows]) for k in (*PACKED_STEPS[method], 'other')}
        passes = mean([r['passes'] for r in rows])
        own = steps['set_image'] / passes                  # this run's own encoder pass: less drift on a shared CPU
        out['per_n'][str(n)] = dict(images=len(rows), encoder_passes_per_image=passes, pipeline_s_per_image=pipe,
                                    target_cost=pipe / enc, encoder_s_in_run=own, target_cost_in_run=pipe / own,
                                    steps_s_per_image=steps,
                                    steps_in_passes={k: v / enc for k, v in steps.items()},
                                    vs_single_min=min((r['vs_single'] for r in rows if r['vs_single']), default=None))
    return out

PACKED_NAMES = {**STEP_NAMES, **CANVAS_STEP_NAMES} | dict(
    set_image='image encoder (set_image): its share of the canvas', predict='SAM decoder calls (all trials)',
    segment='SAM 3 text, DETR and mask decoder (segment): its share of the canvas',
    canvas='canvas and exemplar boxes: its share', stitch='packing the canvas: its share')

def table_packed(res: dict) -> str:
    "Markdown: per N, encoder passes and pipeline time per image, a target's cost in encoder passes, where it goes."
    m, per = res['machine'], res['per_n']
    ns = list(per)
    f = lambda v, d=3: '—' if v is None else f"{v:.{d}f}"
    goal = " (goal at N=3: <= 0.45)"
    models = ', '.join(f"{k} `{v}`" for k, v in res['models'].items())
    models += '' if 'random weights' in models else ' (random weights)'
    lines = [f"{res['method']} method, {models}, {res['images']} images of `{res['data']}`; "
             f"{m['device']} ({m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, load average "
             f"{res['load_average_start'][0]:.1f} at start, {res['load_average_end'][0]:.1f} at end); torch "
             f"{res['versions']['torch']}.", '',
             '| measure | ' + ' | '.join(f"N={n}" for n in ns) + ' |', '|---|' + '---|' * len(ns),
             f"| one encoder pass (`encoder_s`, median of {res['floor_images']} canvases) | "
             + ' | '.join(f"{res['encoder_s']:.2f} s" for _ in ns) + ' |',
             '| encoder passes per image | ' + ' | '.join(f(per[n]['encoder_passes_per_image']) for n in ns) + ' |',
             '| pipeline per image | ' + ' | '.join(f"{per[n]['pipeline_s_per_image']:.2f} s" for n in ns) + ' |',
             f"| **a target's cost in encoder passes** (pipeline / `encoder_s`){goal} | "
             + ' | '.join(f"**{f(per[n]['target_cost'])}**" for n in ns) + ' |',
             "| the same against this run's own encoder passes (`set_image` per canvas) | "
             + ' | '.join(f"{f(per[n]['target_cost_in_run'])} ({per[n]['encoder_s_in_run']:.2f} s)" for n in ns) + ' |',
             "| fewest pixels a target got against a canvas of its own (`vs_single`) | "
             + ' | '.join(f(per[n]['vs_single_min'], 2) for n in ns) + ' |',
             '', '| where a target\'s cost goes (encoder passes per image) | ' + ' | '.join(f"N={n}" for n in ns)
             + ' |', '|---|' + '---|' * len(ns)]
    for k in (*PACKED_STEPS[res['method']], 'other'):
        lines.append(f"| {PACKED_NAMES.get(k, 'other (bookkeeping)')} | "
                     + ' | '.join(f(per[n]['steps_in_passes'][k]) for n in ns) + ' |')
    lines.append('| **total** | ' + ' | '.join(f"**{f(per[n]['target_cost'])}**" for n in ns) + ' |')
    return '\n'.join(lines)

def run_packed(args) -> dict:
    "Encoder floor, then each N of `--packing` on the same images: what a target costs at each N."
    import torch
    from segwl.data import load_image
    la0 = os.getloadavg()
    files = find_data(args.data)[2][:args.images]
    if args.method == 'canvas':
        seg, models = build_canvas(args)
        synced = SyncedConcept(seg)
        lab = canvas_labeller(args, synced)
        floor = lambda p: canvas_encoder_pass(lab, p)
    else:
        seg, sc, models = build(args)
        synced = Synced(seg)
        lab = labeller(args, synced, sc)
        floor = lambda p: encoder_pass(lab, p)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    log(f"bench packing ({args.method}): {models}, {len(files)} images, N = {args.packing}, "
        f"{torch.get_num_threads()} torch threads")
    floor(files[0])                                                       # warm-up: first calls allocate
    lab.label(load_image(files[0]))
    encoder = []
    for p in files[:args.floor_images]:
        encoder.append(floor(p))
        log(f"  encoder pass on {p.name}'s canvas: {encoder[-1]:.2f} s")
    runs = {}
    with tempfile.TemporaryDirectory() as out:
        for n in args.packing:
            runs[n] = label_packed(with_targets(lab, n), files, n, out, synced)
            log(f"  N={n}: {mean([r['total'] for r in runs[n]]):.2f} s per image, "
                f"{mean([r['passes'] for r in runs[n]]):.2f} encoder passes per image")
    return dict(method=args.method, models=models, data=str(args.data), images=len(files), packing=args.packing,
                floor_images=len(encoder), settings=lab.settings.to_dict(),
                **summarise_packed(runs, encoder, args.method),
                peak_rss_mb=peak_rss_mb(), machine=machine(args), load_average_start=la0,
                versions=versions('sam3') if args.method == 'canvas' else versions(),
                load_average_end=os.getloadavg(), per_image={str(n): r for n, r in runs.items()},
                encoder_per_image=encoder, command=' '.join(sys.argv))


# ---------------------------------------------------------------- the run
def machine(args) -> dict:
    import torch
    from segwl.data import resolve_device
    cpu = (next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')),
                platform.processor())
           if Path('/proc/cpuinfo').exists() else platform.processor())
    dev = resolve_device(args.device)
    return dict(device=dev, gpu=torch.cuda.get_device_name(0) if dev == 'cuda' else None, cpu=cpu,
                cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), platform=platform.platform(),
                python=platform.python_version())

def versions(*names) -> dict:
    from segwl.registry import versions
    return versions(*(names or ('sam-vit_b', 'clip')))

def mean(xs): return float(np.mean(xs)) if len(xs) else float('nan')

def summarise(steps: list[dict], seed_steps: list[dict], encoder: list[float], mem: dict | None, trials: int) -> dict:
    "The headline numbers from per-image step timings (pure arithmetic: tested with made-up numbers)."
    enc = float(np.median(encoder))
    pipe = mean([s['total'] for s in steps])
    dec = mean([s['predict'] for s in steps]) / trials                   # one decoder call
    non_enc = mean([s['total'] - s['set_image'] for s in steps])
    out = dict(encoder_s=enc, pipeline_s_per_image=pipe, overhead_ratio=pipe / enc,
               non_encoder_s_per_image=non_enc,
               overhead_ratio_in_run=1 + non_enc / mean([s['set_image'] for s in steps]),
               steps_s_per_image={k: mean([s[k] for s in steps]) for k in (*STEPS, 'other')})
    if seed_steps:
        k = len(seed_steps)
        seed = mean([s['total'] for s in seed_steps])
        same = mean([s['total'] for s in steps[:k]])
        out.update(seed_pattern_s_per_image=seed, seed_pattern_images=k, pipeline_s_per_image_on_seed_images=same,
                   speedup_vs_seed=seed / same,
                   # what sharing one encoder pass can give at best: both CLIP costs 0, same decoder time d per trial:
                   # trials * (E + d) / (E + trials * d)
                   speedup_bound_sam_only=trials * (enc + dec) / (enc + trials * dec),
                   # the seed's time rebuilt from this run's own encoder and decoder times plus its measured CLIP time:
                   # the same ratio without the drift of a shared CPU's load between the two parts of the run
                   speedup_vs_seed_same_encoder=(trials * (enc + dec)
                                                 + mean([s['text_map'] + s['text_score'] for s in seed_steps])) / same,
                   # a kinder seed that computed its CLIP map once per image, not once per trial
                   speedup_vs_seed_clip_once=(seed - (trials - 1) / trials
                                              * mean([s['text_map'] for s in seed_steps])) / same,
                   seed_steps_s_per_image={k2: mean([s[k2] for s in seed_steps]) for k2 in (*STEPS, 'other')})
    else: out.update(seed_pattern_s_per_image=None, speedup_vs_seed=None)
    if mem: out['memory'] = mem
    return out

def _map_words(res: dict) -> str:
    "How the pipeline's CLIP map was made, in words."
    if res.get('clip_map') == 'dense': return f"dense (one pass, longer side {res.get('clip_dense_side')} px)"
    return f"windows {res.get('clip_window')} / stride {res.get('clip_stride')} px"

def table(res: dict) -> str:
    "Markdown tables of a result: headline numbers, then seconds per step per image."
    m, st, sd = res['machine'], res['steps_s_per_image'], res.get('seed_steps_s_per_image') or {}
    f = lambda v, d=2: '—' if v is None else f"{v:.{d}f}"
    lines = [f"SAM `{res['models']['sam']}`, CLIP `{res['models']['clip']}` (random weights), {res['images']} "
             f"images of `{res['data']}`, {res['trials']} trials, CLIP map {_map_words(res)}; {m['device']} "
             f"({m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads, "
             f"load average {res['load_average_start'][0]:.1f} at start, "
             f"{res['load_average_end'][0]:.1f} at end); torch {res['versions']['torch']}.", '',
             '| measure | value |', '|---|---|',
             f"| one SAM image-encoder pass on the stitched image (`encoder_s`, the floor) | {f(res['encoder_s'])} s |",
             f"| pipeline per image (`pipeline_s_per_image`) | {f(res['pipeline_s_per_image'])} s |",
             f"| `overhead_ratio` = pipeline / encoder pass (goal <= 1.15) | {f(res['overhead_ratio'], 3)} |",
             f"| `overhead_ratio_in_run` = 1 + (pipeline - its own encoder step) / its own encoder step | "
             f"{f(res['overhead_ratio_in_run'], 3)} |",
             f"| seed call pattern per image (`seed_pattern_s_per_image`, {res.get('seed_pattern_images', 0)} images) "
             f"| {f(res['seed_pattern_s_per_image'])} s |",
             f"| `speedup_vs_seed` (goal >= 10) | {f(res['speedup_vs_seed'], 1)} |",
             f"| the same with the seed's SAM time rebuilt from this run's encoder and decoder times "
             f"(`speedup_vs_seed_same_encoder`) | {f(res.get('speedup_vs_seed_same_encoder'), 1)} |",
             f"| the same against a seed computing its CLIP map once per image, not per trial "
             f"(`speedup_vs_seed_clip_once`) | {f(res.get('speedup_vs_seed_clip_once'), 1)} |",
             f"| best possible speedup from sharing the encoder pass, CLIP free (`speedup_bound_sam_only`) | "
             f"{f(res.get('speedup_bound_sam_only'), 1)} |",
             f"| peak RSS of this run (`peak_rss_mb`) | {res['peak_rss_mb']:.0f} MB |"]
    for r in (res.get('memory') or {}).get('runs', []):
        tr = r['rss_per_image_mb']
        lines.append(f"| fresh process, `label_folder` over {r['images']} images "
                     f"({r['models'] if isinstance(r['models'], str) else 'same models'}): "
                     f"peak RSS / RSS after image 1 -> last | "
                     f"{r['peak_rss_mb']:.0f} MB / {tr[0]:.0f} -> {tr[-1]:.0f} MB |")
    if res.get('memory'):
        lines.append(f"| RSS growth per image after the first (from {res['memory']['runs'][-1]['images']} images) | "
                     f"{res['memory']['rss_growth_mb_per_image']:+.2f} MB |")
    lines += ['', '| step (seconds per image) | pipeline | seed pattern |', '|---|---|---|']
    for k in (*STEPS, 'other'):
        lines.append(f"| {STEP_NAMES.get(k, 'other (bookkeeping)')} | {f(st[k], 3)} | "
                     f"{f(sd.get(k), 3) if sd else '—'} |")
    lines.append(f"| **total** | **{f(res['pipeline_s_per_image'])}** | **{f(res['seed_pattern_s_per_image'])}** |")
    return '\n'.join(lines)

def memory(args, models) -> dict:
    "Label folders of each size in `--memory` with a fresh process each: RSS after every image, and peak RSS."
    runs = [memory_run(args, n) for n in args.memory]
    for r in runs: r['models'] = 'tiny' if args.tiny or args.memory_tiny else models
    last = runs[-1]['rss_per_image_mb']
    return dict(runs=runs, rss_growth_mb_per_image=(last[-1] - last[0]) / max(1, len(last) - 1),
                peak_rss_growth_mb=runs[-1]['peak_rss_mb'] - runs[0]['peak_rss_mb'])

def run(args) -> dict:
    import torch
    from segwl.data import resolve_device
    la0 = os.getloadavg()
    found = find_data(args.data)
    if found is None: return None
    files = found[2][:args.images]
    seg, sc, models = build(args)
    seg = Synced(seg)
    pl = labeller(args, seg, sc)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    log(f"bench: {models}, {len(files)} images, {args.trials} trials, {torch.get_num_threads()} torch threads")
    encoder_pass(pl, files[0])                                           # warm-up: first calls allocate
    pl.label(__import__('segwl.data', fromlist=['load_image']).load_image(files[0]))
    encoder, steps, seed_steps = [], [], []
    with tempfile.TemporaryDirectory() as out:
        for p in files:
            encoder.append(encoder_pass(pl, p))
            steps.append(label_one(pl, p, out))
            log(f"  {p.name}: encoder {encoder[-1]:.2f} s, pipeline {steps[-1]['total']:.2f} s")
        if args.seed_images:
            seed_pl = labeller(args, SeedPattern(seg), SeedScorer(sc, args.trials))
            for p in files[:args.seed_images]:
                seed_steps.append(label_one(seed_pl, p, out))
                log(f"  seed pattern {p.name}: {seed_steps[-1]['total']:.2f} s")
    peak = peak_rss_mb()
    mem = memory(args, models) if args.memory else None
    res = dict(models=models, data=str(args.data), images=len(files), trials=args.trials,
               settings=pl.settings.to_dict(), clip_map=sc.map_kind(), clip_dense_side=sc.dense_side,
               clip_window=sc.window, clip_stride=sc.stride,
               **summarise(steps, seed_steps, encoder, mem, args.trials), peak_rss_mb=peak,
               device=resolve_device(args.device),
               machine=machine(args), versions=versions(),
               load_average_start=la0, load_average_end=os.getloadavg(), per_image=steps, seed_per_image=seed_steps,
               encoder_per_image=encoder, command=' '.join(sys.argv))
    return res


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=DEFAULT_DATA,
                    help="dataset folder in segwl's layout (default: %(default)s)")
    ap.add_argument('--images', type=int, default=3, help="images to label with the pipeline")
    ap.add_argument('--trials', type=int, default=10, help="prompt trials per image (the seed used 10)")
    ap.add_argument('--seed-images', type=int, default=None,
                    help="images to label with the seed's call pattern (default: --images; 0: skip)")
    ap.add_argument('--memory', default='', help="comma-separated folder sizes, each labelled by a fresh process, "
                    "e.g. 10,40 (default: none)")
    ap.add_argument('--memory-tiny', action='store_true', help="the --memory runs use tiny models "
                    "(what grows with the folder is the pipeline's, not the model's)")
    ap.add_argument('--sam-type', default='vit_b')
    ap.add_argument('--clip-model', default='ViT-B-32')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument('--text', default='a photo of a cat')
    ap.add_argument('--map-mode', default=None, choices=MAP_MODES, help="the pipeline's CLIP map "
                    "(LabelSettings.map_mode; default: the scorer's, auto = dense on a ViT)")
    ap.add_argument('--window', type=int, default=None, help="CLIP window in target pixels "
                    "(LabelSettings.window; default: the scorer's, 160)")
    ap.add_argument('--stride', type=int, default=None, help="CLIP stride in target pixels "
                    "(LabelSettings.stride; default: the scorer's, 80)")
    ap.add_argument('--tiny', action='store_true',
                    help="tiny random models: a quick check of the script, not a measurement")
    ap.add_argument('--method', choices=['seed', 'canvas'], default='seed', help="seed: SAM 1 + CLIP points (default); "
                    "canvas: references and target on one canvas, a concept segmenter")
    ap.add_argument('--segmenter', default=None,
                    help="canvas: the concept segmenter (only sam3: real-size, random weights)")
    ap.add_argument('--no-text', action='store_true', help="canvas: exemplar boxes only, no text")
    ap.add_argument('--dtype', default=None, choices=['float32', 'bfloat16', 'float16'],
                    help="canvas: SAM 3's dtype (default float32)")
    ap.add_argument('--packing', default=None, help="several targets on one canvas: comma-separated N to compare "
                    "on the same images, e.g. 1,3 (the encoder passes and the time per image at each N; "
                    "seed or canvas)")
    ap.add_argument('--floor-images', type=int, default=2, help="--packing: canvases whose encoder pass is timed alone "
                    "for the floor (default: %(default)s)")
    ap.add_argument('--json', type=Path, default=None, help="write the results here")
    ap.add_argument('--memory-only', action='store_true', help="only the --memory runs; with an existing --json, "
                    "replace its memory results")
    ap.add_argument('--table', type=Path, default=None, help="recompute the summary of an earlier --json file "
                    "from its per-image times, rewrite it, print its tables")
    ap.add_argument('--memory-child', type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.seed_images is None: args.seed_images = args.images
    args.memory = [int(v) for v in str(args.memory).split(',') if v.strip()]
    if args.packing is not None:
        try: args.packing = [int(v) for v in args.packing.split(',') if v.strip()]
        except ValueError: ap.error(f"--packing {args.packing}: expected comma-separated numbers, e.g. 1,3")
        if not args.packing or not all(1 <= n <= 8 for n in args.packing):
            ap.error(f"--packing: expected numbers of targets a canvas from 1 to 8, got {args.packing}")
        if args.memory or args.memory_only or args.table: ap.error("--packing goes without --memory and --table")
    if args.method == 'canvas':
        if (args.segmenter or 'sam3') != 'sam3': ap.error(f"--segmenter {args.segmenter}: the canvas bench runs sam3")
        if args.memory or args.memory_only or args.table:
            ap.error("--memory, --memory-only and --table are seed-method only")
        args.segmenter = 'sam3'
    elif args.segmenter or args.no_text or args.dtype:
        ap.error("--segmenter, --no-text and --dtype are for --method canvas")
    return args

def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args)
        return 0
    if args.table:                                  # recompute the summary from the stored per-image times, print it
        res = json.loads(args.table.read_text())
        res.update(summarise(res['per_image'], res['seed_per_image'], res['encoder_per_image'], res.get('memory'),
                             res['trials']))
        res.setdefault('device', res['machine']['device'])
        args.table.write_text(json.dumps(res, indent=2, default=float) + '\n')
        print(table(res))
        return 0
    if find_data(args.data) is None:
        print(f"bench_label: skipped: no dataset at {args.data} "
              f"(needs reference/<name>.jpg + .png and unlabeled/images/); pass --data DIR", file=sys.stderr)
        return 0
    if args.memory_only:                                        # redo the memory runs, into --json's results if any
        res = json.loads(args.json.read_text()) if args.json and args.json.exists() else None
        mem = memory(args, res['models'] if res else None)
        if res is None:
            print(json.dumps(mem, indent=2))
            return 0
        res['memory'] = mem
    elif args.packing:
        res = run_packed(args)
        print(table_packed(res))
    elif args.method == 'canvas':
        res = run_canvas(args)
        print(table_canvas(res))
    else: res = run(args)
    if args.method != 'canvas' and not args.packing: print(table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=float) + '\n')
    return 0

if __name__ == '__main__':
    sys.exit(main())
