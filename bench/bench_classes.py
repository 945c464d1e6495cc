"""Several classes in one run (issue 23): the canvas method's cost per image with K = 1, 2, 3 classes against K = 1.

All classes' references and the target share one canvas: one `set_image` (the encoder pass, the cost of an image),
then one `segment` call per class. Goal: K = 3 at most 1.3x the time of K = 1 per image. The script counts the
`set_image` and `segment` calls per image and times `MulticlassLabeller.label` per image for each K, in wall-clock
seconds and in this process's CPU seconds (`time.process_time`: on a CPU shared with other jobs the wall clock
measures the neighbours as much as the model; with `--threads 1` the CPU time is the work itself). The configurations
run interleaved image by image, after one warm-up call of the largest K (it encodes every class's text once, the
cache the others share). Today's single-class `CanvasLabeller` with the first class's reference runs beside them
(`single`): the cost a user pays per class per image when running segwl once per class.

Classes: the pets-cat reference (cat), the pets-dog reference (dog), a pets-dog test photo with its mask (bulldog);
targets: the pets-cat unlabelled photos, then pets-dog's, alternating.

    nice python bench/bench_classes.py --tiny --images 6 --json bench/results/classes_tiny.json     # tiny SAM 3
    nice python bench/bench_classes.py --images 2 --threads 1 --json bench/results/classes_cpu.json  # Sam3Config()
    python bench/bench_classes.py --table bench/results/classes_cpu.json                          # the table again

Real-size SAM 3 is `transformers.Sam3Config()` with random weights (speed does not depend on weight values).
See bench/README.md, section "Several classes on one canvas (bench_classes.py)".
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))
KS = (1, 2, 3)


def sync():
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()

class Counted:
    "A concept segmenter that counts and times its calls (waiting for the GPU, where there is one)."
    def __init__(self, seg):
        self.seg, self.set_image_calls, self.segment_calls, self.set_image_s, self.segment_s = seg, 0, 0, 0.0, 0.0

    def set_image(self, image):
        t = time.perf_counter()
        self.seg.set_image(image)
        sync()
        self.set_image_s += time.perf_counter() - t
        self.set_image_calls += 1

    def segment(self, text, boxes, box_labels):
        t = time.perf_counter()
        out = self.seg.segment(text, boxes, box_labels)
        sync()
        self.segment_s += time.perf_counter() - t
        self.segment_calls += 1
        return out

def build_sam3(tiny: bool, device: str, dtype: str | None):
    "`(segmenter, description)`: the tiny random SAM 3, or real-size `Sam3Config()` with random weights."
    import torch
    from segwl.backends.sam3 import Sam3Segmenter, WordHashTokenizer
    torch.manual_seed(0)
    if tiny: return Sam3Segmenter.tiny_random(device=device), 'tiny random SAM 3 (tests)'
    from transformers import Sam3Config, Sam3Model, Sam3ImageProcessor
    cfg = Sam3Config()
    model = Sam3Model(cfg)
    if dtype: model = model.to(getattr(torch, dtype))
    seg = Sam3Segmenter(model, Sam3ImageProcessor(), WordHashTokenizer(cfg.text_config.vocab_size), device=device)
    n = sum(p.numel() for p in model.parameters())
    return seg, f"Sam3Config() ({n / 1e6:.0f} M parameters, random weights, {dtype or 'float32'})"

def classes_and_targets(data: Path, n: int):
    "`(classes [(name, text, [(image, mask)])], target files)` from the pets folders, or None if they are missing."
    from segwl.data import list_images, load_reference
    cat, dog = data/'pets-cat', data/'pets-dog'
    need = [cat/'reference'/'Abyssinian_88.jpg', dog/'reference'/'leonberger_103.jpg',
            dog/'test'/'images'/'american_bulldog_10.jpg']
    if not all(p.exists() for p in need): return None
    masks = [need[0].with_suffix('.png'), need[1].with_suffix('.png'),
             dog/'test'/'masks'/'american_bulldog_10.png']
    refs = [load_reference(i, m) for i, m in zip(need, masks)]
    names = ('cat', 'dog', 'bulldog')
    classes = [(nm, f"a photo of a {nm}", [r]) for nm, r in zip(names, refs)]
    a, b = list_images(cat/'unlabeled'/'images'), list_images(dog/'unlabeled'/'images')
    targets = [p for pair in zip(a, b) for p in pair][:n]
    return classes, targets

def run(args) -> dict:
    import torch
    from segwl.canvas import CanvasLabeller
    from segwl.data import load_image, resolve_device
    from segwl.multiclass import MulticlassLabeller
    found = classes_and_targets(args.data, args.images)
    if found is None:
        print(f"bench_classes: no pets data under {args.data} (set SEGWL_SHARED_DATA or --data): nothing measured")
        sys.exit(0)
    classes, targets = found
    device = resolve_device(args.device)
    if args.threads: torch.set_num_threads(args.threads)
    seg, model = build_sam3(args.tiny, device, args.dtype)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    log(f"bench_classes: {model}, {len(targets)} images, K = {KS}, {torch.get_num_threads()} torch threads")
    labs = {'single': CanvasLabeller(classes[0][2], classes[0][1], Counted(seg))}
    labs.update({f"K={k}": MulticlassLabeller(classes[:k], Counted(seg), method='canvas') for k in KS})
    images = [load_image(p) for p in targets]
    counted = {name: lab.segmenter if name == 'single' else lab.labellers[0].segmenter for name, lab in labs.items()}
    labs[f"K={KS[-1]}"].label(images[0])                                # warm-up: allocations, every class's text
    for c in counted.values():
        c.set_image_calls = c.segment_calls = 0
        c.set_image_s = c.segment_s = 0.0
    seconds, cpu = {name: [] for name in labs}, {name: [] for name in labs}
    for p, im in zip(targets, images):
        for name, lab in labs.items():
            t, c = time.perf_counter(), time.process_time()
            r = lab.label(im)
            seconds[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            found = int(r.present) if name == 'single' else sum(v['status'] == 'ok' for v in r.classes.values())
            log(f"  {p.name} {name}: {seconds[name][-1]:.2f} s, {cpu[name][-1]:.2f} CPU s, {found} class(es) present")
    from segwl.registry import versions
    return dict(model=model, device=device, images=len(targets), classes=[c[0] for c in classes],
                data=str(args.data), **summarise(seconds, counted, cpu), machine=machine(device),
                versions=versions('sam3'), command=' '.join(sys.argv))

GOAL = 1.3      # K = 3 at most this many times the time of K = 1 per image

def summarise(seconds: dict, counted: dict, cpu: dict) -> dict:
    "Per configuration: wall and CPU seconds per image, calls and their wall seconds (`Counted`), ratios to K = 1."
    out = {}
    for name, secs in seconds.items():
        c, n = counted[name], len(secs)
        out[name] = dict(seconds_per_image=float(np.mean(secs)), cpu_s_per_image=float(np.mean(cpu[name])),
                         set_image_per_image=c.set_image_calls / n, segment_per_image=c.segment_calls / n,
                         set_image_s_per_image=c.set_image_s / n, segment_s_per_image=c.segment_s / n,
                         per_image=list(secs), cpu_per_image=list(cpu[name]))
    base, base_cpu = out['K=1']['seconds_per_image'], out['K=1']['cpu_s_per_image']
    for v in out.values():
        v['vs_k1'], v['cpu_vs_k1'] = v['seconds_per_image'] / base, v['cpu_s_per_image'] / base_cpu
    return dict(results=out, goal=f'K=3 at most {GOAL}x the time of K=1 per image',
                goal_met=out['K=3']['cpu_vs_k1'] <= GOAL, goal_met_wall=out['K=3']['vs_k1'] <= GOAL)

def machine(device: str) -> dict:
    import torch
    cpu = platform.processor()
    if Path('/proc/cpuinfo').exists():
        cpu = next((ln.split(':', 1)[1].strip() for ln in open('/proc/cpuinfo') if ln.startswith('model name')), cpu)
    gpu = torch.cuda.get_device_name(0) if device.startswith('cuda') else None
    load = os.getloadavg()[0]
    return dict(device=device, gpu=gpu, cpu=cpu, cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                load_average_1min=load, python=platform.python_version())

def table(res: dict) -> str:
    "A markdown table of a result: per configuration, seconds per image, its ratio to K = 1, calls per image."
    m = res['machine']
    lines = [f"{res['model']}, {res['images']} images of pets-cat/pets-dog, classes {', '.join(res['classes'])}; "
             f"{m['device']}{' (' + m['gpu'] + ')' if m.get('gpu') else ''}, {m['cpu']}, {m['cpu_count']} cores, "
             f"{m['torch_threads']} torch threads, load average {m['load_average_1min']}.", '',
             '| configuration | CPU s / image | vs K=1 (CPU) | wall s / image | vs K=1 (wall) | set_image / image | '
             'segment / image | encoder wall s | segment wall s |', '|---|---|---|---|---|---|---|---|---|']
    for name, v in res['results'].items():
        what = ("today's CanvasLabeller, 1 class" if name == 'single' else
                f"MulticlassLabeller, {name[2:]} class{'es' if name != 'K=1' else ''}")
        cells = [what, f"{v['cpu_s_per_image']:.2f}", f"**{v['cpu_vs_k1']:.3f}**", f"{v['seconds_per_image']:.2f}",
                 f"{v['vs_k1']:.3f}", f"{v['set_image_per_image']:g}", f"{v['segment_per_image']:g}",
                 f"{v['set_image_s_per_image']:.2f}", f"{v['segment_s_per_image']:.2f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    k3 = res['results']['K=3']
    lines += ['', f"Goal: {res['goal']}: {'met' if res['goal_met'] else 'NOT met'} in CPU time "
                  f"(K=3 / K=1 = {k3['cpu_vs_k1']:.3f}), {'met' if res['goal_met_wall'] else 'not met'} in wall time "
                  f"({k3['vs_k1']:.3f})."]
    return '\n'.join(lines)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--images', type=int, default=4, help='target images (default 4)')
    ap.add_argument('--tiny', action='store_true', help='the tiny random SAM 3: a quick check of the script')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--dtype', help='e.g. bfloat16 (real-size model only)')
    ap.add_argument('--threads', type=int, help="torch threads (default: torch's own); 1 makes CPU time the work")
    ap.add_argument('--data', type=Path, default=DATA, help='folder holding pets-cat and pets-dog')
    ap.add_argument('--json', type=Path, help='write the result here')
    ap.add_argument('--table', type=Path, metavar='JSON', help='print the table of an earlier result and exit')
    args = ap.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    res = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + '\n')
    print(table(res))

if __name__ == '__main__':
    main()
