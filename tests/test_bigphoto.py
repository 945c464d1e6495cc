"Issue 22, case 8: a big photo on the canvas method: compact instances, bounded memory, the same answer; the cap."
import json, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from segwl.canvas import CanvasLabeller, to_full
from segwl.errors import SegwlWarning
from segwl.folder import label_folder, save_instances
from segwl.protocols import Instance
from segwl.stitch import resize_mask
from segwl.testing import ColourConcept, concept_scene

ROOT = Path(__file__).resolve().parent.parent

def disc_scene(hw, n: int, seed: int = 0):
    "`(image, truth masks)`: `n` red discs on a lattice (drawn box by box: cheap at any size), a blue background."
    rng = np.random.default_rng(seed)
    h, w = hw
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (40, 150, 200)
    cols = int(np.ceil(np.sqrt(n * w / h)))
    sy, sx = h / int(np.ceil(n / cols)), w / cols
    boxes = []
    for k in range(n):
        r = min(rng.uniform(0.012, 0.018) * max(h, w), 0.4 * min(sy, sx))
        cy, cx = (k // cols + 0.5) * sy, (k % cols + 0.5) * sx
        y0, y1, x0, x1 = int(cy - r), int(np.ceil(cy + r)) + 1, int(cx - r), int(np.ceil(cx + r)) + 1
        yy, xx = np.mgrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1][(yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 < r * r] = (220, 30, 30)
        boxes.append((x0, y0, x1, y1))
    return img, boxes

def reference():
    ref, m, _ = concept_scene((300, 400), 1, seed=3, lookalikes=0)
    return [(ref, m)]

def decode(entry) -> np.ndarray:
    return mask_utils.decode(dict(entry['rle'], counts=entry['rle']['counts'].encode())).astype(bool)

@pytest.mark.slow
def test_instances_written_are_exactly_the_full_size_paths(tmp_path):
    """Known answer: each instance's RLE (byte for byte), box and the mask are what the full-size path gives: every
    working mask resized to the photo by `resize_mask`, encoded by pycocotools."""
    img, boxes = disc_scene((1500, 2000), 40, seed=1)
    lab = CanvasLabeller(reference(), None, ColourConcept(), max_side=500)
    res = lab.label(img)
    assert len(res.instances) == 40 and res.mask.shape == (1500, 2000)
    masks, scores = lab.segmenter.segment(None, res.exemplars, np.ones(len(res.exemplars), int))   # the same answer
    work = [x.mask for x in lab.keep(res.layout, masks, scores)[0]]
    assert work[0].shape == (375, 500)
    save_instances(res.instances, tmp_path/'i.json')
    written = json.loads((tmp_path/'i.json').read_text())
    union = np.zeros((1500, 2000), bool)
    for m, e in zip(work, written):
        full = resize_mask(m, (1500, 2000))                                       # the full-size path
        want = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))
        assert e['rle'] == dict(size=[1500, 2000], counts=want['counts'].decode())
        assert (decode(e) == full).all() and e['box'] == list(Instance(full, 1).box)
        union |= full
    assert (union == res.mask).all()
    found = sorted(tuple(int(v) for v in e['box']) for e in written)             # one instance a disc, in its box
    assert all(any(bx[0] <= f[0] and bx[1] <= f[1] and f[2] <= bx[2] + 4 and f[3] <= bx[3] + 4 for bx in boxes)
               for f in found)

@pytest.mark.slow
def test_to_full_equals_resizing_each_working_mask():
    "The index tables give, pixel for pixel, what `resize_mask` gives, for instances at the edges too."
    rng = np.random.default_rng(2)
    for work_hw, full_hw in [((375, 500), (1500, 2000)), ((756, 1008), (6000, 8000)), ((97, 131), (1001, 777))]:
        ms = []
        for k in range(6):
            m = np.zeros(work_hw, bool)
            y0, x0 = rng.integers(0, work_hw[0] - 5), rng.integers(0, work_hw[1] - 5)
            m[y0:y0 + rng.integers(1, 40), x0:x0 + rng.integers(1, 40)] = True
            if k == 0: m[-3:, -4:] = True                        # the bottom right corner
            if k == 1: m[:2, :1] = True                          # the top left one
            ms.append(m)
        full, union = to_full([Instance(m, 0.5) for m in ms], work_hw, full_hw)
        for m, x in zip(ms, full):
            want = resize_mask(m, full_hw)
            y, xx = x.window
            assert x.hw == full_hw and x.box == Instance(want, 1).box and (want[y, xx] == x.crop).all()
            assert x.area == want.sum()
        assert (union == resize_mask(np.any(ms, 0), full_hw)).all()

CHILD = r'''
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + '/tests')
from test_bigphoto import disc_scene, reference
from segwl.canvas import CanvasLabeller
from segwl.folder import save_instances
from segwl.outputs import save_mask
from segwl.testing import ColourConcept
from pathlib import Path
img, _ = disc_scene((3000, 4000), 60, seed=4)
lab = CanvasLabeller(reference(), None, ColourConcept())
def rss(): return float(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
def high(): return int([v for v in open('/proc/self/status') if v.startswith('VmHWM')][0].split()[1]) / 1024
base = rss()
open('/proc/self/clear_refs', 'w').write('5')        # the high-water mark from here (not the imports')
res = lab.label(img)
save_instances(res.instances, Path(sys.argv[2])/'scene.json')
save_mask(res.mask, Path(sys.argv[2])/'scene.png')
peak = high()      # this process's own: ru_maxrss would also count the parent's pages at the fork (pytest's)
print(json.dumps(dict(base=base, peak=peak, n=len(res.instances), over=res.over_cap)))
'''

@pytest.mark.slow
def test_a_12_megapixel_photo_costs_far_less_than_its_full_size_masks(tmp_path):
    """Peak memory of labelling a 4000x3000 photo with 60 instances and writing them, in a process of its own, against
    what 60 full-size masks cost (60 x 11.4 MB = 687 MB; segwl held them all before): under half of it. Measured: about
    165 MB over the base: the stand-in's answer (60 canvas-sized masks, as SAM 3's, about 90 MB), the full-size mask
    and its PNG. The same child on the code before this change: 812 MB (this test fails there)."""
    p = subprocess.run([sys.executable, '-c', CHILD, str(ROOT), str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    full_masks = r['n'] * 3000 * 4000 / 2**20                    # MB: what holding every instance at full size costs
    assert r['n'] == 60 and r['over'] == 0
    assert r['peak'] - r['base'] < full_masks / 2, r
    written = json.loads((tmp_path/'scene.json').read_text())
    assert len(written) == 60 and all(e['rle']['size'] == [3000, 4000] for e in written)

def test_max_instances_keeps_the_best_and_says_how_many_more():
    img, _ = disc_scene((600, 800), 12, seed=5)
    lab = CanvasLabeller(reference(), None, ColourConcept(), max_instances=5)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter('always')
        res = lab.label(img)
    every = CanvasLabeller(reference(), None, ColourConcept()).label(img)
    assert (len(res.instances), res.over_cap, len(every.instances), every.over_cap) == (5, 7, 12, 0)
    assert [x.score for x in res.instances] == sorted((x.score for x in every.instances), reverse=True)[:5]
    msgs = [str(w.message) for w in said if issubclass(w.category, SegwlWarning)]
    assert msgs == ['12 instances found in a 800x600 image: the best 5 kept (setting max_instances, --max-instances; '
                    '7 left out)']
    assert (res.mask == np.any([x.mask for x in res.instances], 0)).all()

def test_the_cap_warning_names_the_class_in_a_multiclass_run():
    "Several classes: the warning says which class found more than max_instances (two classes of red things here)."
    from segwl.canvas import CanvasSettings
    from segwl.multiclass import MulticlassLabeller
    img, _ = disc_scene((600, 800), 12, seed=5)
    other = concept_scene((300, 400), 1, seed=4, lookalikes=0)[:2]
    lab = MulticlassLabeller([('disc', None, reference()), ('blob', None, [other])], ColourConcept(), method='canvas',
                             settings=CanvasSettings(max_instances=5), negatives=False)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter('always')
        lab.label(img)
    msgs = sorted(str(w.message) for w in said if 'instances found' in str(w.message))
    assert msgs == [f"class {n!r}: 12 instances found in a 800x600 image: the best 5 kept (setting max_instances, "
                    f"--max-instances; 7 left out)" for n in ('blob', 'disc')]

def test_an_earlier_runs_config_resumes_with_the_default_cap(tmp_path):
    "The cap is not written at its default: a folder labelled before it existed resumes (config.json unchanged)."
    img, _ = disc_scene((120, 160), 3, seed=6)
    (tmp_path/'images').mkdir()
    from PIL import Image
    Image.fromarray(img).save(tmp_path/'images'/'a.png')
    lab = CanvasLabeller(reference(), None, ColourConcept())
    assert label_folder(lab, tmp_path/'images', tmp_path/'out', progress=False)['ok'] == 1
    assert 'max_instances' not in json.loads((tmp_path/'out'/'config.json').read_text()).get('settings', {})
    capped = CanvasLabeller(reference(), None, ColourConcept(), max_instances=2)
    with pytest.raises(Exception, match='max_instances'):
        label_folder(capped, tmp_path/'images', tmp_path/'out', progress=False)

def test_the_row_says_how_many_instances_the_cap_left_out(tmp_path):
    from PIL import Image
    (tmp_path/'images').mkdir()
    Image.fromarray(disc_scene((600, 800), 12, seed=5)[0]).save(tmp_path/'images'/'many.png')
    Image.fromarray(disc_scene((600, 800), 3, seed=6)[0]).save(tmp_path/'images'/'few.png')
    lab = CanvasLabeller(reference(), None, ColourConcept(), max_instances=5)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SegwlWarning)
        label_folder(lab, tmp_path/'images', tmp_path/'labels', progress=False)
    rows = {r['file']: r for r in map(json.loads, (tmp_path/'labels'/'manifest.jsonl').read_text().splitlines())}
    assert (rows['many.png']['instances'], rows['many.png']['over_cap']) == (5, 7)
    assert (rows['few.png']['instances'], 'over_cap' in rows['few.png']) == (3, False)
