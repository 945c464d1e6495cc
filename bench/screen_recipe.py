"""Screen a training recipe without touching the test split: train on 45 of the 60 `unlabeled` pets-cat images (true
masks) and score the other 15, with a fixed epoch count so that the machine's load changes the time, not the result.

    python bench/screen_recipe.py NAME [FIELD=VALUE ...]
    FIELD: any TrainSettings field, e.g. ema=0 size=160 epochs=80
    SCREEN_THREADS=1 (default) lets two screens share a 2-core machine

Appends one JSON line to bench/out/screen.jsonl. See bench/README.md ("Screening the recipe")."""
import json, os, random, shutil, sys, time
from dataclasses import fields
from pathlib import Path
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from segwl.data import list_images, load_image, load_mask
from segwl.finetune import TrainSettings, train
from segwl.checkpoint import load_model
from segwl.evaluate import confusion, scores

DATA = Path(os.environ.get('SEGWL_SHARED_DATA', ROOT.parent/'shared'/'data'))/'pets-cat'/'unlabeled'
OUT = ROOT/'bench'/'out'
BASE = dict(size=224, batch_size=4, epochs=40, pretrained=False, device='cpu', seed=0, val_fraction=0.0)

def holdout_split(images, n=15, seed=123):
    "`(train, holdout)`: a fixed shuffle of the images, the first `n` held out."
    idx = list(range(len(images)))
    random.Random(seed).shuffle(idx)
    return [images[i] for i in idx[n:]], [images[i] for i in idx[:n]]

def parse(kv: list[str]) -> dict:
    "FIELD=VALUE strings -> TrainSettings keyword arguments, typed like the field's default."
    types, out = {f.name: type(f.default) for f in fields(TrainSettings)}, {}
    for a in kv:
        k, v = a.split('=', 1)
        if k not in types: raise SystemExit(f"{k}: not a TrainSettings field ({', '.join(types)})")
        out[k] = (v if types[k] is str else (v == 'True') if types[k] is bool
                  else float(v) if types[k] in (float, type(None)) else int(v))
    return out

def screen(name: str, overrides: dict) -> dict:
    tr, hold = holdout_split(list_images(DATA/'images'))
    d = OUT/'screen'/name
    shutil.rmtree(d, ignore_errors=True)
    (d/'images').mkdir(parents=True)
    for p in tr: (d/'images'/p.name).symlink_to(p)
    t0 = time.time()
    info = train(d/'images', DATA/'masks', d/'model', TrainSettings(**BASE | overrides), progress=False,
                 log=lambda *a: None)
    m, ious = load_model(d/'model', 'cpu'), []
    for p in hold:   # foreground IoU as segwl evaluate computes it
        ious.append(scores(confusion(m.predict(load_image(p)), load_mask(DATA/'masks'/f'{p.stem}.png')))['iou'])
    return dict(name=name, overrides=overrides, holdout_iou=round(float(np.mean(ious)), 4), epochs=len(info['history']),
                final_loss=info['history'][-1]['loss'], minutes=round((time.time() - t0)/60, 1))

if __name__ == '__main__':
    torch.set_num_threads(int(os.environ.get('SCREEN_THREADS', 1)))
    r = screen(sys.argv[1], parse(sys.argv[2:]))
    print(json.dumps(r))
    OUT.mkdir(exist_ok=True)
    with open(OUT/'screen.jsonl', 'a') as f: f.write(json.dumps(r) + '\n')
