"""One big photo on the canvas method (issue 22, case 8): wall time and peak memory against the photo's size.

A synthetic scene of `--objects` red discs on a lattice (each 0.02 to 0.03 of the longer side across, a few
lookalike discs of near colours beside them) is written once as a PNG; each configuration then runs in a fresh Python
process: `segwl.folder.label_folder` with a `CanvasLabeller` (one reference, `segwl.testing.ColourConcept` as the
concept segmenter, the default `max_side` 1008) over a folder holding that one image, so the time and memory are the
whole of labelling it: reading it, the working copy, the canvas, the stand-in's answer, the instances, the mask PNG
and the instances file (COCO RLE). Peak memory is the process's peak resident set (`ru_maxrss`), and `base` its
resident set after the imports, before the image is read; `peak - base` is what labelling the photo cost, the
photo itself included (an 8000x6000 RGB image is 144 MB, a full-size bool mask 48 MB).

    nice python bench/bench_bigphoto.py                                   # 6000x4000 (24 MP) and 8000x6000 (48 MP)
    nice python bench/bench_bigphoto.py --sizes 4000x3000 --objects 50    # a smaller one
    nice python bench/bench_bigphoto.py --segwl /tmp/before               # another checkout's segwl (before/after)

The instances written are decoded (pycocotools) and compared, as one union, with the mask PNG: `same` says whether
every instance pixel is in the mask and every mask pixel in an instance. See bench/README.md, section "One big photo
(bench_bigphoto.py)".
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

def disc_scene(hw, n: int, seed: int = 0, colour=(220, 30, 30), lookalikes: int = 4, noise: int = 6):
    "`(image, n)`: about `n` discs of `colour` on a lattice over a background of far colours (drawn box by box)."
    rng = np.random.default_rng(seed)
    h, w = int(hw[0]), int(hw[1])
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (40, 150, 200)
    for _ in range(8):                                   # a few rectangles of other far colours
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0:y0 + h // 4, x0:x0 + w // 4] = rng.choice([(40, 150, 200), (30, 200, 90), (120, 120, 240)])
    cols = int(np.ceil(np.sqrt((n + lookalikes) * w / h)))
    rows = int(np.ceil((n + lookalikes) / cols))
    sy, sx = h / rows, w / cols
    drawn = 0
    for k in range(n + lookalikes):
        r = rng.uniform(0.01, 0.015) * max(h, w)
        r = min(r, 0.4 * min(sy, sx))
        cy = (k // cols + 0.5) * sy + rng.uniform(-0.05, 0.05) * sy
        cx = (k % cols + 0.5) * sx + rng.uniform(-0.05, 0.05) * sx
        y0, y1, x0, x1 = int(cy - r), int(np.ceil(cy + r)) + 1, int(cx - r), int(np.ceil(cx + r)) + 1
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 < r * r
        img[y0:y1, x0:x1][d] = colour if k < n else ((220, 100, 30), (150, 30, 30), (255, 90, 90))[k % 3]
        drawn += k < n
    for y in range(0, h, 500):                           # noise, a band at a time
        band = img[y:y + 500].astype(np.int16) + rng.integers(-noise, noise + 1, img[y:y + 500].shape, dtype=np.int16)
        img[y:y + 500] = np.clip(band, 0, 255).astype(np.uint8)
    return img, drawn

CHILD = r'''
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
import segwl, segwl.canvas, segwl.folder, segwl.testing
from segwl.canvas import CanvasLabeller
from segwl.folder import label_folder
from segwl.testing import ColourConcept, concept_scene
from pycocotools import mask as mask_utils
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = float(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
ref, refmask, _ = concept_scene((300, 400), 1, seed=3, lookalikes=0)
work = Path(sys.argv[2])
kw = json.loads(sys.argv[3])
lab = CanvasLabeller([(ref, refmask)], None, ColourConcept(), **kw)
t, c = time.perf_counter(), time.process_time()
n = label_folder(lab, work/'images', work/'out', progress=False)
wall, cpu = time.perf_counter() - t, time.process_time() - c
peak = rss()
rows = [json.loads(l) for l in (work/'out'/'manifest.jsonl').read_text().splitlines()]
ins = json.loads((work/'out'/'instances'/'scene.json').read_text())
mask = np.asarray(Image.open(work/'out'/'masks'/'scene.png')) > 0
union = np.zeros(mask.shape, bool)
for i in ins: union |= mask_utils.decode(dict(i['rle'], counts=i['rle']['counts'].encode())).astype(bool)
print(json.dumps(dict(segwl=str(Path(segwl.__file__).parent.parent), status=rows[0]['status'], instances=len(ins),
                      wall_s=round(wall, 2), cpu_s=round(cpu, 2), peak_mb=round(peak), base_mb=round(base),
                      same=bool((union == mask).all()), summary=n)))
'''

PHASES = r'''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from segwl.canvas import CanvasLabeller
from segwl.data import load_image
from segwl.folder import save_instances
from segwl.outputs import save_mask
from segwl.testing import ColourConcept, concept_scene
def now(): return float(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
def high(): return int([v for v in open('/proc/self/status') if v.startswith('VmHWM')][0].split()[1]) / 1024
def step(f):
    "f()'s value and its own peak: the high-water mark, reset first, over the resident set before it."
    open('/proc/self/clear_refs', 'w').write('5')
    before = now()
    out = f()
    return out, round(high() - before)
ref, refmask, _ = concept_scene((300, 400), 1, seed=3, lookalikes=0)
work = Path(sys.argv[2])
lab = CanvasLabeller([(ref, refmask)], None, ColourConcept(), **json.loads(sys.argv[3]))
img, read = step(lambda: load_image(work/'images'/'scene.png'))
res, label = step(lambda: lab.label(img))
_, write = step(lambda: (save_mask(res.mask, work/'m.png'), save_instances(res.instances, work/'i.json')))
print(json.dumps(dict(read_mb=read, label_mb=label, write_mb=write)))
'''

def run(size: str, objects: int, segwl_root: str, settings: dict, phases: bool = False) -> dict:
    "One configuration in a fresh process: the scene written, labelled, measured."
    from PIL import Image
    h, w = (int(v) for v in reversed(size.lower().split('x')))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work/'images').mkdir()
        img, drawn = disc_scene((h, w), objects)
        Image.fromarray(img).save(work/'images'/'scene.png', compress_level=1)
        del img
        env = dict(os.environ, PYTHONPATH=segwl_root)
        p = subprocess.run([sys.executable, '-c', CHILD, segwl_root, str(work), json.dumps(settings)],
                           capture_output=True, text=True, env=env)
        if p.returncode: raise SystemExit(f"{size}: the child failed:\n{p.stderr[-3000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        if phases:                                       # each step's own peak, in another fresh process
            p = subprocess.run([sys.executable, '-c', PHASES, segwl_root, str(work), json.dumps(settings)],
                               capture_output=True, text=True, env=env)
            if p.returncode: raise SystemExit(f"{size}: the phases' child failed:\n{p.stderr[-3000:]}")
            r.update(json.loads(p.stdout.strip().splitlines()[-1]))
    return dict(size=f"{w}x{h}", mp=round(w * h / 1e6, 1), objects=drawn, **r)

def table(rows) -> str:
    head = ("| segwl | photo (WxH) | MP | discs | instances written | wall s | CPU s | peak RSS MB | base MB "
            "| peak - base MB | union = mask | read / label / write MB |")
    out = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in rows:
        steps = ' / '.join(str(r[k]) for k in ('read_mb', 'label_mb', 'write_mb')) if 'read_mb' in r else ''
        out.append(f"| {r['label']} | {r['size']} | {r['mp']} | {r['objects']} | {r['instances']} | {r['wall_s']} | "
                   f"{r.get('cpu_s', '')} | {r['peak_mb']} | {r['base_mb']} | {r['peak_mb'] - r['base_mb']} | "
                   f"{r['same']} | {steps} |")
    return '\n'.join(out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', default='6000x4000,8000x6000', help='WxH photos, comma-separated')
    ap.add_argument('--objects', type=int, default=179, help='red discs in the scene (the case had 179 instances)')
    ap.add_argument('--segwl', default=str(ROOT), help='the checkout whose segwl to run (default: this one)')
    ap.add_argument('--label', default=None, help='the name of that checkout in the table (default: its path)')
    ap.add_argument('--settings', default='{"max_instances": 1000}',
                    help='CanvasSettings as JSON (default: no cap in the way of the 179)')
    ap.add_argument('--json', default=None, help='append the rows to this JSON file')
    ap.add_argument('--phases', action='store_true', help="also each step's own peak (read, label, write), apart")
    a = ap.parse_args(argv)
    settings = json.loads(a.settings)
    rows = []
    for size in a.sizes.split(','):
        r = run(size, a.objects, a.segwl, settings, a.phases)
        r['label'] = a.label or a.segwl
        print(json.dumps(r), flush=True)
        rows.append(r)
    if a.json:
        p = Path(a.json)
        old = json.loads(p.read_text()) if p.exists() else []
        p.write_text(json.dumps(old + rows, indent=1) + '\n')
    print(table(rows))

if __name__ == '__main__':
    main()
