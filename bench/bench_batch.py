"""Several canvases through the encoder in one call (#24, `--batch-size`): batch_size 1 against B, with real models.

Real-size architectures with random weights (speed does not depend on weight values): SAM 1 `vit_b` for the seed
method (with open_clip `ViT-B-32` as its text scorer) and SAM 3 (`Sam3Config()`) for the canvas method. On a GPU:

    python bench/bench_batch.py --device cuda --batch 1,4 --images 16 --json bench/results/batch_cuda.json
    python bench/bench_batch.py --device cuda --batch 1,2,4,8 --targets 3 --images 24 --models sam3 --dtype bfloat16

On a CPU a batch gains nothing (the work is the same, and a CPU is already busy with one canvas); `--tiny` checks the
script in seconds with the tiny random models and measures nothing:

    nice python bench/bench_batch.py --tiny --images 4 --threads 1

What it measures, for each model and each B of `--batch`, on the same canvases and images:

- the encoder alone (`encoder_s_per_canvas`): the labeller's canvases (each image beside the reference, N a canvas
  with `--targets N`), through `set_image` one at a time for B = 1 and `embed` B at a time otherwise, waiting for
  the GPU after each call; the median over `--repeats` rounds, after one warm-up round; `speedup` = B = 1's / B's;
- the labeller (`label_s_per_image`): `label_many` over all the images, `--targets` a canvas and B canvases an
  encoder call, as the folder runner hands them over, the encoder calls counted;
- the answers against B = 1 (`min_iou_vs_1`, `same_verdicts`): a batched encoder may round differently, nothing more;
- on CUDA, the peak GPU memory of each B (`peak_gpu_mb`).

Synthetic photo-size scenes (`segwl.testing.synthetic_scene`, 4:3 and 3:4, 375 x 500): with random weights the
content does not matter, only the sizes. See bench/README.md, "Several canvases in one encoder call".
"""
from __future__ import annotations
import argparse, json, os, platform, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sync():
    import torch
    if torch.cuda.is_available(): torch.cuda.synchronize()


class Timed:
    "A segmenter whose every call waits for the GPU and is counted and timed (it embeds batches: it has `embed`)."
    def __init__(self, seg): self.seg, self.calls, self.seconds = seg, dict(set_image=0, embed=0), 0.0
    def _encode(self, kind, f, *a):
        t = time.perf_counter()
        out = f(*a)
        sync()
        self.calls[kind] += 1
        self.seconds += time.perf_counter() - t
        return out
    def set_image(self, image): return self._encode('set_image', self.seg.set_image, image)
    def embed(self, images): return self._encode('embed', self.seg.embed, images)
    def use(self, state): self.seg.use(state)
    def predict(self, *a, **kw): return self.seg.predict(*a, **kw)
    def segment(self, *a, **kw): return self.seg.segment(*a, **kw)


def build(model: str, args):
    "`(segmenter, scorer or None, description)`: real-size random weights, or the tiny twins with --tiny."
    import torch
    torch.manual_seed(0)
    if model == 'sam1':
        from segwl.backends.sam import SamSegmenter
        from segwl.backends.clip import ClipScorer
        if args.tiny: return SamSegmenter.tiny_random(device=args.device), ClipScorer.tiny_random(), 'tiny SAM 1'
        import open_clip
        from segment_anything import sam_model_registry
        seg = SamSegmenter(sam_model_registry['vit_b'](checkpoint=None), device=args.device)
        clip, _, pre = open_clip.create_model_and_transforms('ViT-B-32', pretrained=None)
        return seg, ClipScorer(clip, pre, open_clip.get_tokenizer('ViT-B-32'), device=args.device), 'SAM 1 vit_b'
    from segwl.backends.sam3 import Sam3Segmenter, WordHashTokenizer
    if args.tiny: return Sam3Segmenter.tiny_random(device=args.device), None, 'tiny SAM 3'
    from transformers import Sam3Config, Sam3Model, Sam3ImageProcessor
    cfg = Sam3Config()
    m = Sam3Model(cfg)
    if args.dtype: m = m.to(getattr(torch, args.dtype))
    seg = Sam3Segmenter(m, Sam3ImageProcessor(), WordHashTokenizer(cfg.text_config.vocab_size), device=args.device)
    return seg, None, f"SAM 3 Sam3Config() ({args.dtype or 'float32'})"


def scenes(n: int, tiny: bool) -> tuple:
    "`(reference, its mask, n target images)`: photo-size synthetic scenes, portrait and landscape in turn."
    from segwl.testing import synthetic_scene
    size = (96, 128) if tiny else (375, 500)
    ref, mask = synthetic_scene(size, seed=1)
    return ref, mask, [synthetic_scene(size if k % 2 else size[::-1], seed=10 + k)[0] for k in range(n)]


def labeller(model: str, seg, scorer, ref, mask, targets: int, batch: int, trials: int):
    from segwl.seed import SeedLabeller
    from segwl.canvas import CanvasLabeller
    if model == 'sam1':
        return SeedLabeller([(ref, mask)], 'a photo of a cat', seg, scorer, trials=trials, targets_per_canvas=targets,
                            batch_size=batch)
    return CanvasLabeller([(ref, mask)], 'a photo of a cat', seg, targets_per_canvas=targets, batch_size=batch)


def canvases(model: str, seg, ref, images, targets: int) -> list:
    "The labeller's canvases of `images`, `targets` a canvas: the stitch (seed) or the strip layout (canvas)."
    from segwl.seed import input_side
    from segwl.stitch import PackedLayout, INPUT_SIZES
    side = input_side(seg, INPUT_SIZES['sam' if model == 'sam1' else 'sam3'])
    out = []
    for k in range(0, len(images), targets):
        group = images[k:k + targets]
        lay = PackedLayout([ref.shape], [im.shape for im in group], side, 'stitch' if model == 'sam1' else 'auto')
        out.append(lay.canvas([ref], group))
    return out


def time_encoder(seg, cans: list, batch: int) -> float:
    "Seconds per canvas of one round: `set_image` each (batch 1) or `embed` `batch` at a time."
    t = time.perf_counter()
    for k in range(0, len(cans), batch):
        if batch == 1: seg.set_image(cans[k])
        else: seg.embed(cans[k:k + batch])
        sync()
    return (time.perf_counter() - t) / len(cans)


def peak_reset():
    import torch
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()


def peak_mb():
    import torch
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def iou(a, b) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def run_model(model: str, args) -> dict:
    import torch
    seg, scorer, what = build(model, args)
    ref, mask, images = scenes(args.images, args.tiny)
    cans = canvases(model, seg, ref, images, args.targets)
    time_encoder(seg, cans[:max(args.batch)], max(args.batch))          # warm-up: kernels, allocator, caches
    out = dict(model=what, canvases=len(cans), targets_per_canvas=args.targets, per_batch={})
    answers = {}
    for b in args.batch:
        peak_reset()
        enc = float(np.median([time_encoder(seg, cans, b) for _ in range(args.repeats)]))
        timed = Timed(seg)
        lab = labeller(model, timed, scorer, ref, mask, args.targets, b, args.trials)
        t = time.perf_counter()
        with torch.inference_mode(): res = lab.label_many(images)
        sync()
        total = time.perf_counter() - t
        bad = [r for r in res if isinstance(r, Exception)]
        if bad: raise bad[0]
        answers[b] = res
        out['per_batch'][b] = dict(encoder_s_per_canvas=enc, label_s_per_image=total / len(images),
                                   encoder_calls=sum(timed.calls.values()), calls=timed.calls,
                                   encoder_s_in_labeller_per_image=timed.seconds / len(images), peak_gpu_mb=peak_mb())
    first = answers[args.batch[0]]
    for b, row in out['per_batch'].items():
        base = out['per_batch'][args.batch[0]]
        row['speedup_encoder'] = base['encoder_s_per_canvas'] / row['encoder_s_per_canvas']
        row['speedup_label'] = base['label_s_per_image'] / row['label_s_per_image']
        row['min_iou_vs_1'] = min(iou(r.mask, a.mask) for r, a in zip(answers[b], first))
        row['same_verdicts'] = all(r.present == a.present for r, a in zip(answers[b], first))
    return out


def machine(args) -> dict:
    import torch
    from segwl.data import resolve_device
    dev = resolve_device(args.device)
    return dict(device=dev, gpu=torch.cuda.get_device_name(0) if dev == 'cuda' else None, cpu=platform.processor(),
                cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                platform=platform.platform(), tiny=args.tiny, load_average=os.getloadavg()[0])


def table(res: dict) -> str:
    lines = [f"device {res['machine']['device']} {res['machine']['gpu'] or ''}".rstrip()]
    for m in res['models']:
        lines += ['', f"{m['model']}: {m['canvases']} canvases, {m['targets_per_canvas']} target(s) a canvas", '',
                  '| batch | encoder s / canvas | speedup | label s / image | speedup | encoder calls | min IoU vs 1 '
                  '| same verdicts | peak GPU MB |', '|---|---|---|---|---|---|---|---|---|']
        for b, r in m['per_batch'].items():
            gpu = '—' if r['peak_gpu_mb'] is None else f"{r['peak_gpu_mb']:.0f}"
            lines.append(f"| {b} | {r['encoder_s_per_canvas']:.4f} | {r['speedup_encoder']:.2f} | "
                         f"{r['label_s_per_image']:.4f} | {r['speedup_label']:.2f} | {r['encoder_calls']} | "
                         f"{r['min_iou_vs_1']:.4f} | {r['same_verdicts']} | {gpu} |")
    return '\n'.join(lines)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', default='1,4', help="comma-separated batch sizes, the first the baseline (default 1,4)")
    ap.add_argument('--targets', type=int, default=1, help="targets a canvas (targets_per_canvas; default 1)")
    ap.add_argument('--images', type=int, default=8, help="images to label (default 8)")
    ap.add_argument('--models', default='sam1,sam3', help="sam1 (seed method, SAM 1 vit_b + CLIP), sam3 (canvas)")
    ap.add_argument('--repeats', type=int, default=3, help="rounds of the encoder timing; the median is kept")
    ap.add_argument('--trials', type=int, default=3, help="seed method: prompt trials per image")
    ap.add_argument('--device', default='auto')
    ap.add_argument('--dtype', default=None, choices=['float32', 'bfloat16', 'float16'], help="SAM 3's weights")
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument('--tiny', action='store_true', help="tiny random models: checks the script, measures nothing")
    ap.add_argument('--json', type=Path, default=None, help="write the results here")
    args = ap.parse_args(argv)
    args.batch = [int(b) for b in args.batch.split(',')]
    args.models = args.models.split(',')
    if any(b < 1 for b in args.batch) or args.targets < 1 or args.images < 1: ap.error("sizes must be >= 1")
    if any(m not in ('sam1', 'sam3') for m in args.models): ap.error("--models: sam1, sam3 or both")
    return args


def main(argv=None) -> int:
    import torch
    args = parse(argv)
    if args.threads: torch.set_num_threads(args.threads)
    res = dict(machine=machine(args), args={k: str(v) for k, v in vars(args).items()},
               models=[run_model(m, args) for m in args.models])
    print(table(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == '__main__': sys.exit(main())
