"""Pseudo-label quality of both methods on pets-cat and pets-dog: mean IoU, absent rate and seconds per image.

One command, one markdown table. On a machine with the real weights (downloaded once; SAM 3 is gated, see README):

    python bench/bench_quality.py --device cuda --json bench/results/quality.json

Offline, a check of the script with tiny random models (its numbers are meaningless):

    python bench/bench_quality.py --models tiny-random --limit 4

Rows: the seed method (reference + text points, one mask per image) with SAM 1 ViT-B and SAM 2.1, both with CLIP;
the canvas method (references and target on one canvas, every instance) with SAM 3, with and without the text, with
1 and 3 references. The extra references of the 3-reference rows are the first two unlabeled images of the dataset
with their true masks; those two images are left out of the scored images of every row, so all rows score the same
images. Each pseudo-label is scored against the dataset's true mask (`unlabeled/masks`) with `segwl.evaluate`: an
absent image has an empty mask and scores IoU 0 on these folders (every image holds the animal). Seconds per image
are the labeller's own (`label_many` of a canvas's images, shared out), image loading left out, after one warm-up
image per row.

Several targets on one canvas (#24): every row runs at each number of targets a canvas of `--packing` (default 1,3)
on the same images; the last column is the row's mean IoU against the same row with one target a canvas, the quality
cost of packing, which only real weights can tell (with the stand-ins it is nil up to the objects' edges):

    python bench/bench_quality.py --device cuda --packing 1,3 --only 'sam-vit_b'
"""
from __future__ import annotations
import argparse, json, os, sys, time
from typing import NamedTuple
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))
DATASETS = ('pets-cat', 'pets-dog')
TEXTS = {'pets-cat': 'a photo of a cat', 'pets-dog': 'a photo of a dog'}
MEANINGLESS = "tiny random models: these numbers are meaningless (a check of the script, not a measurement)"
N_EXTRA = 2                                    # the 3-reference rows: the reference and the first two unlabeled images


class Row(NamedTuple):
    "One configuration: a method, its segmenter (registry name), whether the text is given, how many references."
    method: str
    segmenter: str
    text: bool
    refs: int = 1
    scorer: str | None = None
    targets: int = 1                           # targets a canvas (the labeller's targets_per_canvas)

    @property
    def label(self) -> str:
        return f"{self.method} | {self.segmenter}{' + ' + self.scorer if self.scorer else ''} | " \
               f"{'yes' if self.text else 'no'} | {self.refs} | {self.targets}"


def rows(sam2: str = 'sam2.1-base-plus', packing=(1,)) -> list[Row]:
    "The table's configurations, in order, each at every number of targets a canvas of `packing`."
    base = [Row('seed', 'sam-vit_b', True, 1, 'clip'), Row('seed', sam2, True, 1, 'clip'),
            Row('canvas', 'sam3', True, 1), Row('canvas', 'sam3', False, 1),
            Row('canvas', 'sam3', True, 3), Row('canvas', 'sam3', False, 3)]
    return [r._replace(targets=n) for r in base for n in packing]


# ---------------------------------------------------------------- data
def find_data(d: Path) -> dict | None:
    "`{reference: (image, mask), unlabeled: [(image, true mask)]}` of a dataset folder in segwl's layout, or None."
    from segwl.data import list_images
    ref, imgs, masks = d/'reference', d/'unlabeled'/'images', d/'unlabeled'/'masks'
    if not (ref.is_dir() and imgs.is_dir() and masks.is_dir()): return None
    pairs = [(p, p.with_suffix('.png')) for p in list_images(ref)
             if p.suffix.lower() != '.png' and p.with_suffix('.png').exists()]
    unl = [(p, masks/f'{p.stem}.png') for p in list_images(imgs) if (masks/f'{p.stem}.png').exists()]
    if not pairs or len(unl) <= N_EXTRA: return None
    return dict(reference=pairs[0], unlabeled=unl)


# ---------------------------------------------------------------- models, built once per name
class Models:
    "Backends by registry name, built on first use (real weights, or tiny random twins); a failure is remembered."
    def __init__(self, random: bool, device: str):
        self.random, self.device, self.built = random, device, {}

    def get(self, name: str, kind: str):
        from segwl.registry import create_backend
        if name not in self.built:
            try: self.built[name] = create_backend(name, kind, random=self.random, device=self.device)
            except Exception as e: self.built[name] = e        # a missing package or gated weights: that row says so
        b = self.built[name]
        if isinstance(b, Exception): raise b
        return b


def labeller(row: Row, models: Models, refs: list, text: str):
    "The labeller of `row` over the (image, mask) arrays `refs`, through the recipe, with the models built once."
    from segwl.recipe import LabellerSpec, METHODS
    spec = LabellerSpec(refs[:row.refs], text if row.text else None, dict(targets_per_canvas=row.targets),
                        segmenter=row.segmenter, scorer=row.scorer, method=row.method)
    kinds = dict(zip(METHODS[row.method].kinds, (row.segmenter, row.scorer)))
    return spec.build(backends={kind: models.get(name, kind) for kind, name in kinds.items()})


# ---------------------------------------------------------------- one row on one dataset
def score_row(row: Row, models: Models, data: dict, text: str, limit: int | None, log=print,
              masks: bool = False) -> dict:
    "`{images, mean_iou, absent_rate, s_per_image}` of `row` (`masks`: and the masks), or `{error}` if it cannot run."
    from segwl.data import load_image, load_mask, load_reference
    from segwl.evaluate import image_metrics
    refs = [load_reference(*data['reference'])]
    refs += [(load_image(i), load_mask(m)) for i, m in data['unlabeled'][:N_EXTRA]]
    scored = data['unlabeled'][N_EXTRA:][:limit]
    try: lab = labeller(row, models, refs, text)
    except Exception as e: return dict(error=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
    lab.label(load_image(scored[0][0]))                                  # warm-up: first calls allocate
    ious, absent, secs, kept = [], 0, [], []
    for k in range(0, len(scored), row.targets):                         # a canvas's images at once
        group = scored[k:k + row.targets]
        images = [load_image(p) for p, _ in group]
        t0 = time.perf_counter()
        results = lab.label_many(images)
        secs += [(time.perf_counter() - t0) / len(group)] * len(group)
        for res, img, (_, mask_path) in zip(results, images, group):
            if isinstance(res, Exception): raise res
            ious.append(image_metrics(res.mask, load_mask(mask_path, img.shape[:2]))['iou'])
            absent += not res.present
            if masks: kept.append(res.mask)
    log(f"  {row.label}: {len(scored)} images, mean IoU {np.mean(ious):.3f}, {np.mean(secs):.2f} s per image")
    return dict(images=len(scored), mean_iou=float(np.mean(ious)), absent_rate=absent / len(scored),
                s_per_image=float(np.mean(secs)), ious=[float(v) for v in ious], **(dict(masks=kept) if masks else {}))


# ---------------------------------------------------------------- the table
HEADER = ['| dataset | method | segmenter | text | references | targets / canvas | images | pseudo-label mean IoU | '
          'absent | s / image | IoU against 1 a canvas |', '|---|---|---|---|---|---|---|---|---|---|---|']

def against_one(r: dict, results: list[dict]) -> str:
    "The mean IoU of result `r` less that of the same row on the same dataset with one target a canvas, or '—'."
    one = [o for o in results if o['dataset'] == r['dataset'] and o['row'] == r['row']._replace(targets=1)
           and 'error' not in o]
    if r['row'].targets == 1 or 'error' in r or not one: return '—'
    return f"{r['mean_iou'] - one[0]['mean_iou']:+.3f}"

def table(results: list[dict], tiny: bool = False) -> str:
    "One markdown table of `results` (`{dataset, row: Row, ...score_row's keys}`), notes under it."
    lines = list(HEADER)
    for r in results:
        head = f"| {r['dataset']} | {r['row'].label} |"
        if 'error' in r: lines.append(f"{head} — | not run: {r['error']} | — | — | — |")
        else: lines.append(f"{head} {r['images']} | {r['mean_iou']:.3f} | {r['absent_rate']:.0%} | "
                           f"{r['s_per_image']:.2f} | {against_one(r, results)} |")
    lines += ['', f"3 references: the dataset's reference and its first {N_EXTRA} unlabeled images with their true "
              f"masks; those {N_EXTRA} images are scored by no row. An absent image scores IoU 0 (empty mask). "
              f"Targets / canvas: the images that share one canvas and one encoder pass (targets_per_canvas); the "
              f"last column is the quality cost of sharing, against the same row with one."]
    if tiny: lines += ['', f"**{MEANINGLESS}**"]
    return '\n'.join(lines)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=DEFAULT_DATA,
                    help="folder holding the datasets in segwl's layout (default: %(default)s)")
    ap.add_argument('--datasets', default=','.join(DATASETS), help="comma-separated (default: %(default)s)")
    ap.add_argument('--models', choices=['real', 'tiny-random'], default='real',
                    help="real weights, or tiny random models: offline, meaningless numbers (default: %(default)s)")
    ap.add_argument('--limit', type=int, default=None, help="score at most this many images per dataset (default all)")
    ap.add_argument('--sam2', default='sam2.1-base-plus', help="the seed rows' SAM 2.1 backend (default: %(default)s)")
    ap.add_argument('--only', default=None, help="only rows whose label (method | segmenter | text | refs | targets) "
                    "holds this")
    ap.add_argument('--packing', default='1,3', help="targets a canvas to run every row at, comma-separated "
                    "(default: %(default)s; 1: as before packing)")
    ap.add_argument('--device', default='auto')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument('--json', type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    args.datasets = [d.strip() for d in args.datasets.split(',') if d.strip()]
    if args.limit is not None and args.limit < 1: ap.error('--limit: expected at least 1')
    try: args.packing = [int(v) for v in str(args.packing).split(',') if v.strip()]
    except ValueError: ap.error(f"--packing {args.packing}: expected comma-separated numbers, e.g. 1,3")
    if not args.packing or not all(1 <= n <= 8 for n in args.packing):
        ap.error(f"--packing: expected numbers of targets a canvas from 1 to 8, got {args.packing}")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    import torch
    from segwl.data import resolve_device
    if args.threads: torch.set_num_threads(args.threads)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    tiny = args.models == 'tiny-random'
    if tiny: log(MEANINGLESS)
    models, results = Models(tiny, resolve_device(args.device)), []
    for name in args.datasets:
        data = find_data(args.data/name)
        if data is None:
            log(f"bench_quality: skipped {name}: no dataset at {args.data/name} (needs reference/<name>.jpg + .png, "
                f"unlabeled/images/ and unlabeled/masks/)")
            continue
        log(f"{name}:")
        for row in rows(args.sam2, args.packing):
            if args.only and args.only not in row.label: continue
            torch.manual_seed(0)
            results.append(dict(dataset=name, row=row, **score_row(row, models, data, TEXTS.get(name, name),
                                                                    args.limit, log)))
    if not results:
        log("bench_quality: nothing to run (no dataset found); pass --data DIR")
        return 0
    print(table(results, tiny))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = [dict(r, row=r['row']._asdict()) for r in results]
        args.json.write_text(json.dumps(dict(models=args.models, device=models.device, results=out,
                                             command=' '.join(sys.argv)), indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
