"""Benchmark: fine-tuning on the pets-cat data from scratch on CPU, with true labels and with 30% corrupted labels.

    nice python bench/train_pets.py prepare      # corrupted masks + label-quality manifest
    nice python bench/train_pets.py train NAME   # NAME in clean, corrupt, filtered
                                                 # (10 min each, per seed in BENCH_SEEDS=0,1,2)
    nice python bench/train_pets.py report       # evaluates everything on the test split, prints the table
    nice python bench/train_pets.py all

Outputs go to bench/out/ (ignored by git); `report` also writes bench/results/finetune_pets_cpu_SIZE.json. Timings
are wall-clock on a shared machine: see bench/README.md."""
import json, os, shutil, sys, time
from pathlib import Path
import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT/'bench'))
from segwl.data import list_images, load_image, load_mask
from segwl.outputs import save_mask, write_text
from label_quality import label_quality

DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))/'pets-cat'
OUT = ROOT/'bench'/'out'
MINUTES = float(os.environ.get('BENCH_MINUTES', 10))
# defaults of TrainSettings unless overridden: the CPU budget favours a smaller input (see README)
SIZE, BATCH = int(os.environ.get('BENCH_SIZE', 224)), int(os.environ.get('BENCH_BATCH', 4))
SEEDS = [int(x) for x in os.environ.get('BENCH_SEEDS', '0').split(',')]   # one 10-minute run per seed and cell
CORRUPT_FRACTION, KEEP_FRACTION = 0.3, 0.7   # filtered run: keep the best-scoring 70% of labels

def _dilate(m, d):
    t = torch.from_numpy(np.array(m, dtype=np.float32))[None, None]
    return torch.nn.functional.max_pool2d(t, 2*d + 1, stride=1, padding=d)[0, 0].numpy() > 0

def corrupt(masks, seed=0):
    "Corrupt CORRUPT_FRACTION of the masks: shifted, dilated, eroded or swapped with another image's mask."
    rng = np.random.default_rng(seed)
    names = sorted(masks)
    bad = rng.choice(len(names), round(CORRUPT_FRACTION * len(names)), replace=False)
    out, kinds = dict(masks), {}
    for j, i in enumerate(sorted(bad)):
        n, m = names[i], masks[names[i]]
        kind = ('shift', 'dilate', 'erode', 'swap')[j % 4]
        k = max(2, round(0.06 * np.hypot(*m.shape)))
        if kind == 'shift':
            dy, dx = rng.choice([-1, 1], 2) * k
            out[n] = np.roll(np.roll(m, dy, 0), dx, 1)
        elif kind == 'dilate': out[n] = _dilate(m, k)
        elif kind == 'erode':
            e = ~_dilate(~m, k)
            while e.sum() < 0.2 * m.sum() and k > 1:
                k //= 2
                e = ~_dilate(~m, k)
            out[n] = e
        else:
            other = masks[names[(i + len(names)//2) % len(names)]]
            out[n] = np.asarray(Image.fromarray(other).resize(m.shape[::-1], Image.NEAREST))
        kinds[n] = kind
    return out, kinds

def prepare():
    imgs = list_images(DATA/'unlabeled'/'images')
    masks = {p.stem: load_mask(DATA/'unlabeled'/'masks'/f'{p.stem}.png') for p in imgs}
    bad, kinds = corrupt(masks)
    d = OUT/'corrupt'
    shutil.rmtree(d, ignore_errors=True)
    rows = []
    for p in imgs:
        save_mask(bad[p.stem], d/'masks'/f'{p.stem}.png')
        t0 = time.monotonic()
        q = label_quality(load_image(p), bad[p.stem])
        rows.append(dict(file=p.name, status='ok', error=None, score=round(q, 4), text_score=None,
                         seconds=round(time.monotonic() - t0, 3), corruption=kinds.get(p.stem)))
    write_text(d/'manifest.jsonl', ''.join(json.dumps(r) + '\n' for r in rows))
    s = np.array([r['score'] for r in rows])
    c = np.array([r['corruption'] is not None for r in rows])
    auc = (s[~c][:, None] > s[c][None, :]).mean() + 0.5 * (s[~c][:, None] == s[c][None, :]).mean()
    thr = float(np.quantile(s, 1 - KEEP_FRACTION))
    kept = s >= thr
    info = dict(n=len(rows), corrupted=int(c.sum()),
                kinds={k: list(kinds.values()).count(k) for k in set(kinds.values())},
                auc_clean_vs_corrupt=round(float(auc), 3), min_score=round(thr, 4), kept=int(kept.sum()),
                corrupted_kept=int((kept & c).sum()), clean_dropped=int((~kept & ~c).sum()),
                corrupted_dropped_by_kind={k: int(sum(1 for r, kp in zip(rows, kept)
                                                      if r['corruption'] == k and not kp))
                                           for k in set(kinds.values())})
    write_text(d/'quality.json', json.dumps(info, indent=1))
    print(json.dumps(info))

RUNS = {'clean':    dict(masks=lambda: DATA/'unlabeled'/'masks', manifest=None, min_score=None),
        'corrupt':  dict(masks=lambda: OUT/'corrupt'/'masks', manifest=None, min_score=None),
        'filtered': dict(masks=lambda: OUT/'corrupt'/'masks', manifest=lambda: OUT/'corrupt'/'manifest.jsonl',
                         min_score=lambda: json.loads((OUT/'corrupt'/'quality.json').read_text())['min_score'])}

def run_train(name, seed=0):
    from segwl.finetune import TrainSettings, train
    r = RUNS[name]
    d = OUT/'runs'/f'{name}-{SIZE}-s{seed}'
    shutil.rmtree(d, ignore_errors=True)
    s = TrainSettings(size=SIZE, batch_size=BATCH, epochs=10_000, max_minutes=MINUTES, pretrained=False, device='cpu',
                      seed=seed, min_score=r['min_score']() if r['min_score'] else None)
    load0, t0, cpu0 = os.getloadavg(), time.time(), time.process_time()
    info = train(DATA/'unlabeled'/'images', r['masks'](), d/'model', s,
                 manifest=r['manifest']() if r['manifest'] else None)
    env = dict(loadavg_start=load0, loadavg_end=os.getloadavg(), torch_threads=torch.get_num_threads(),
               nice=os.nice(0), wall_s=round(time.time() - t0), cpu_s=round(time.process_time() - cpu0),
               cpu_count=os.cpu_count())
    write_text(d/'env.json', json.dumps(env))
    print(name, env, 'epochs', len(info['history']))

def report():
    from segwl.evaluate import evaluate_folder
    test = DATA/'test'
    allfg = OUT/'allfg'
    for m in list_images(test/'masks'): save_mask(np.ones(load_mask(m).shape), allfg/m.name)
    base = evaluate_folder(test/'masks', OUT/'report-allfg', pred_dir=allfg, progress=False)
    base_ig = evaluate_folder(test/'masks', OUT/'report-allfg-ignore', pred_dir=allfg, ignore_dir=DATA/'ignore',
                              progress=False)
    print('| labels | seed | model | epochs (time) | train images | test mean IoU | with ignore band | dataset IoU '
          '| boundary IoU | load avg (1, 5, 15 min) at start | torch threads | CPU s received |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    print(f"| — | — | all-foreground baseline | — | — | {base['mean_iou']:.3f} | {base_ig['mean_iou']:.3f} "
          f"| {base['dataset_iou']:.3f} | {base['boundary_iou']:.3f} | — | — | — |")
    desc = {'clean': 'true masks', 'corrupt': '30% corrupted', 'filtered': '30% corrupted, --min-score filter'}
    runs, results = [d for d in (OUT/'runs').glob('*-*-s*') if (d/'model'/'model.json').exists()], {}
    for d in sorted(runs, key=lambda d: (list(RUNS).index(d.name.split('-')[0]), d.name)):
        name, seed = d.name.split('-')[0], int(d.name.rsplit('-s', 1)[1])
        info, env = json.loads((d/'model'/'model.json').read_text()), json.loads((d/'env.json').read_text())
        m = evaluate_folder(test/'masks', d/'report', model=d/'model', images_dir=test/'images', device='cpu',
                            progress=False)
        mi = evaluate_folder(test/'masks', d/'report-ignore', model=d/'model', images_dir=test/'images',
                             ignore_dir=DATA/'ignore', device='cpu', progress=False, figures=False)
        h = info['history']
        results.setdefault(name, []).append(dict(seed=seed, mean_iou=m['mean_iou'], mean_iou_ignore=mi['mean_iou'],
                                                 dataset_iou=m['dataset_iou'], boundary_iou=m['boundary_iou'],
                                                 epochs=len(h), best_epoch=info['best']['epoch'],
                                                 train=info['data']['train'], settings=info['settings'], env=env))
        print(f"| {desc[name]} | {seed} | {info['arch']} @ {info['input_size']} px, "
              f"batch {info['settings']['batch_size']}, EMA {info['settings'].get('ema', 0)}, from scratch "
              f"| {len(h)} ({info['seconds']/60:.1f} min; best epoch {info['best']['epoch']}) "
              f"| {info['data']['train']} (+{info['data']['val']} val) | **{m['mean_iou']:.3f}** "
              f"| {mi['mean_iou']:.3f} | {m['dataset_iou']:.3f} | {m['boundary_iou']:.3f} "
              f"| {', '.join(f'{x:.1f}' for x in env['loadavg_start'])} | {env['torch_threads']} "
              f"| {env.get('cpu_s', '?')} |")
    print('\n| labels | runs (seeds) | test mean IoU: mean | min | max |\n|---|---|---|---|---|')
    for name, rs in results.items():
        v = [r['mean_iou'] for r in rs]
        print(f"| {desc[name]} | {len(v)} ({', '.join(str(r['seed']) for r in rs)}) | **{np.mean(v):.3f}** "
              f"| {min(v):.3f} | {max(v):.3f} |")
    write_text(ROOT/'bench'/'results'/f'finetune_pets_cpu_{SIZE}.json', json.dumps(dict(
        baseline_all_foreground=base['mean_iou'], minutes=MINUTES, torch=torch.__version__, runs=results), indent=1))
    q = OUT/'corrupt'/'quality.json'
    if q.exists(): print('\nlabel quality score:', q.read_text())

if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'prepare': prepare()
    elif cmd == 'train':
        for seed in SEEDS: run_train(sys.argv[2], seed)
    elif cmd == 'report': report()
    elif cmd == 'all':
        prepare()
        for n in RUNS:
            for seed in SEEDS: run_train(n, seed)
        report()
