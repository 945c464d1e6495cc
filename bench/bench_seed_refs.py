"""The seed method with k references: one stitch per reference, or every reference on one canvas? Known answers.

    python bench/bench_seed_refs.py [--scenes 12] [--trials 10] [--json FILE]

Stand-ins with known answers (segwl.testing: `ColourSegmenter` for SAM, a `ColourScorer` for CLIP that knows every
look of the object), so the IoU says what the method does, not what a model knows. Three families of targets, each
scene a different size and aspect ratio, far-coloured clutter and look-alikes (each look's colour shifted 70 to 100 in
one channel):

- `one look`: every target holds one red object; the references are red objects of three sizes and aspect ratios;
- `two looks`: targets alternately hold a red or a blue object (one concept, two looks, as black and ginger cats);
  reference 1 is red, reference 2 blue, reference 3 red again: reference 1 alone cannot find the blue objects;
- `absent`: no object, look-alikes of both looks; the labellers run with the text gate (`min_text_score`) on, as
  everywhere in this table, so present targets must pass it and absent ones must be stopped.

Methods, all with the same `LabelSettings`, the same text points and the same per-reference points:

- `stitches, best` (segwl's): each reference stitched beside the target on its own canvas, the best
  `(has object, score)` answer wins, tied answers united (`SeedLabeller.label`);
- `stitches, union`: the same k answers, the union of every non-empty one;
- `canvas, strip`: every reference in a strip beside the target (`segwl.stitch.CanvasLayout`, 'auto', as the canvas
  method lays them out), one `set_image`, the trials prompt every reference's points and the text points at once;
- `canvas, row`: the same, but each reference at the target's height in a row left of it (k stitches' references
  side by side: nothing shrinks, the canvas widens).

Columns: mean IoU with the true mask (1 when both are empty), the absent rate (verdict "absent"), segmenter calls
per image (`set_image`, the embedding that costs seconds with a real SAM, and `predict`), the target's share of the
longer side of each canvas (a real SAM sees the canvas at 1024 pixels across: the target keeps this fraction of them),
milliseconds per image with the stand-ins (the bookkeeping only; with a real SAM each `set_image` is seconds).
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from segwl.testing import ColourSegmenter, ColourScorer, synthetic_scene, free_ellipse   # noqa: E402
from segwl.seed import SeedLabeller, best_answer                           # noqa: E402
from segwl.recipe import LabellerSpec                                      # noqa: E402
from segwl.stitch import CanvasLayout, Cell, Stitch, resize_image, resize_mask  # noqa: E402

RED, BLUE = (220, 30, 30), (40, 60, 210)
LOOKS = (RED, BLUE)
METHODS = ('stitches, best', 'stitches, union', 'canvas, strip', 'canvas, row')


class LooksScorer(ColourScorer):
    "A `ColourScorer` for a concept with several looks: closeness to the nearest of `colours`."
    def __init__(self, colours=LOOKS, **kw):
        super().__init__(colours[0], **kw)
        self.colours = np.array(colours, np.float32)

    def _closeness(self, image):
        im = np.asarray(image, np.float32)
        return np.max([1 - np.abs(im - c).max(-1) / 255 for c in self.colours], axis=0)


def _far(rng, margin: int = 140):
    "A colour more than `margin` away from every look in some channel."
    while True:
        c = rng.integers(0, 256, 3)
        if all(np.abs(c - np.array(look)).max() > margin for look in LOOKS): return c


def _lookalike(rng, look):
    "`look` with one channel shifted 70 to 100 (clipped, then pushed the other way if clipping brought it closer)."
    c = np.array(look)
    ch, d = rng.integers(0, 3), int(rng.integers(70, 101))
    c[ch] = c[ch] + d if c[ch] + d <= 255 else c[ch] - d
    return c


def looks_scene(hw, look, seed: int = 0, lookalikes: int = 2, noise: int = 6):
    "`(image, mask)`: an HxW scene, far clutter, `lookalikes` look-alikes of each look, one object of `look` or none."
    rng = np.random.default_rng(seed)
    h, w = int(hw[0]), int(hw[1])
    img = np.empty((h, w, 3), np.int16)
    img[:] = _far(rng)
    for _ in range(8):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        img[y0:y0 + rng.integers(1, h // 3 + 2), x0:x0 + rng.integers(1, w // 3 + 2)] = _far(rng)
    taken, mask = np.zeros((h, w), bool), np.zeros((h, w), bool)
    colours = ([look] if look is not None else []) + [_lookalike(rng, lk) for lk in LOOKS for _ in range(lookalikes)]
    for k, colour in enumerate(colours):
        e = free_ellipse(rng, taken, (0.06, 0.16), 300, f"looks_scene: no room for {len(colours)} shapes")
        img[e] = colour
        if k == 0 and look is not None: mask = e
    img += rng.integers(-noise, noise + 1, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8), mask


SIZES = [(120, 160), (160, 120), (90, 240), (240, 90), (140, 140), (100, 300), (300, 100), (180, 240)]


def families(n: int) -> dict:
    "`{family: (references, [(image, true mask)])}`: `n` targets each, sizes and aspect ratios varied."
    r1, r2, r3 = (synthetic_scene(hw, RED, seed=s) for hw, s in (((60, 200), 1), ((200, 60), 2), ((120, 120), 3)))
    blue = synthetic_scene((90, 150), BLUE, seed=4)
    size = lambda i: SIZES[i % len(SIZES)]
    return {'one look': ([r1, r2, r3], [looks_scene(size(i), RED, seed=100 + i) for i in range(n)]),
            'two looks': ([r1, blue, r3], [looks_scene(size(i), LOOKS[i % 2], seed=200 + i) for i in range(n)]),
            'absent': ([r1, blue, r3], [looks_scene(size(i), None, seed=300 + i) for i in range(n)])}


class RowLayout:
    "Each reference at the target's height, side by side, then the target at its own size: `CanvasLayout`'s fields."
    def __init__(self, reference_hws, target_hw):
        th, tw = target_hw[:2]
        lefts = np.cumsum([0] + [Stitch(hw, target_hw).offset for hw in reference_hws])
        self.references = tuple(Cell(tuple(hw[:2]), (th, int(b - a)), 0, int(a))
                                for hw, a, b in zip(reference_hws, lefts, lefts[1:]))
        self.target, self.target_hw = Cell((th, tw), (th, tw), 0, int(lefts[-1])), (th, tw)
        self.hw = (th, int(lefts[-1]) + tw)

    def canvas(self, references, target):
        out = np.zeros((*self.hw, 3), np.uint8)
        for cell, im in zip((*self.references, self.target), (*references, target)):
            out[cell.window] = resize_image(im, cell.placed_hw)
        return out


def _layout(method: str, refs, hw):
    return RowLayout([im.shape for im, _ in refs], hw) if method == 'canvas, row' else \
        CanvasLayout([im.shape for im, _ in refs], hw)


def target_share(method: str, refs, hw) -> float:
    "The target's share of the longer side of the canvas `method` makes (the smallest of its k canvases)."
    if method.startswith('canvas'):
        lay = _layout(method, refs, hw)
        return hw[0] / lay.hw[0] if lay.hw[0] >= lay.hw[1] else hw[1] / lay.hw[1]
    return min(max(hw) / max(Stitch(im.shape, hw).canvas_hw) for im, _ in refs)


class _OnCanvas:
    "The canvas option's frame, for `SeedLabeller._best_mask`: reference points come already on the canvas."
    def __init__(self, layout: CanvasLayout):
        self.layout, self.target_hw, self.canvas_hw = layout, layout.target_hw, layout.hw

    def reference_to_canvas(self, points): return np.asarray(points, np.float64).reshape(-1, 2)
    def target_to_canvas(self, points): return self.layout.target.to_canvas(points)
    def target_mask(self, mask): return self.layout.target.crop(mask)


def _verdict(pl: SeedLabeller, mask, score) -> tuple[np.ndarray, bool]:
    present = bool(mask.any()) and (pl.settings.min_mask_score is None or score >= pl.settings.min_mask_score)
    return mask & present, present


def label(pl: SeedLabeller, image, method: str) -> tuple[np.ndarray, bool]:
    "`(mask, present)` of `image` by `method` (see the module's docstring)."
    if method == 'stitches, best':
        r = pl.label(image)
        return r.mask, r.present
    tm, s = {}, pl.settings
    full, work, shrunk = pl._target(image)
    _, text_score, tobj, tbg, _, cell = pl._text_prompts(work, tm)
    if s.min_text_score is not None and text_score is not None and text_score < s.min_text_score:
        return np.zeros(full.shape[:2], bool), False
    if method == 'stitches, union':
        answers = [pl._answer(i, work, tobj, tbg, cell, tm)[:2] for i in range(len(pl.references))]
        mask, score = np.logical_or.reduce([m for m, _ in answers]), best_answer(answers)[1]
    else:
        lay = _layout(method, pl.references, work.shape[:2])
        pl.segmenter.set_image(lay.canvas([im for im, _ in pl.references], work))
        obj = np.concatenate([c.to_canvas(p[0]) for c, p in zip(lay.references, pl.reference_points)])
        bg = np.concatenate([c.to_canvas(p[1]) for c, p in zip(lay.references, pl.reference_points)])
        mask, score, _, _ = pl._best_mask(_OnCanvas(lay), obj, bg, tobj, tbg, cell, tm)
    if shrunk: mask = resize_mask(mask, full.shape[:2])
    return _verdict(pl, mask, score)


def _iou(a, b) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def measure(refs, scenes, method: str, trials: int) -> dict:
    "Mean IoU, absent rate and cost per image of `method` with `refs` on `scenes`."
    seg = ColourSegmenter()
    spec = LabellerSpec(refs, 'an object', dict(trials=trials, min_text_score=0.001))
    pl = spec.build(backends=dict(segmenter=seg, scorer=LooksScorer(window=4, stride=2)))
    ious, absent, t = [], 0, time.perf_counter()
    for im, true in scenes:
        mask, present = label(pl, im, method)
        ious.append(_iou(mask, true))
        absent += not present
    n, dt = len(scenes), time.perf_counter() - t
    share = np.mean([target_share(method, pl.references, im.shape[:2]) for im, _ in scenes])
    return dict(iou=float(np.mean(ious)), min_iou=float(np.min(ious)), absent_rate=absent / n,
                set_image=seg.set_image_calls / n, predict=seg.predict_calls / n, share=float(share), ms=1000 * dt / n)


def run(n: int = 12, trials: int = 10) -> list[dict]:
    "Every (family, k, method) row."
    out = []
    for fam, (refs, scenes) in families(n).items():
        for k in range(1, len(refs) + 1):
            for method in (METHODS if k > 1 else METHODS[:1]):
                out.append(dict(family=fam, k=k, method=method if k > 1 else 'one stitch (k = 1)',
                                **measure(refs[:k], scenes, method, trials)))
    return out


def table(rows: list[dict]) -> str:
    "The markdown table."
    head = ("| targets | k | method | mean IoU | min IoU | absent rate | set_image / image | predict / image "
            "| target share | ms / image |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['family']} | {r['k']} | {r['method']} | {r['iou']:.3f} | {r['min_iou']:.3f} | "
             f"{r['absent_rate']:.2f} | {r['set_image']:.0f} | {r['predict']:.0f} | {r['share']:.2f} | {r['ms']:.0f} |"
             for r in rows]
    return '\n'.join([head, *lines])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--scenes', type=int, default=12, help='targets per family (default %(default)s)')
    p.add_argument('--trials', type=int, default=10, help='LabelSettings.trials (default %(default)s)')
    p.add_argument('--json', help='also write the rows to this JSON file')
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rows = run(a.scenes, a.trials)
    print(f"{a.scenes} targets per family, {a.trials} trials, stand-ins (segwl.testing), 1 torch thread\n")
    print(table(rows))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
