"Round trips of `segwl.export`: what each format's own reader gets back is the mask that was exported."
import importlib.util, json, os, warnings
import xml.etree.ElementTree as ET
from pathlib import Path
import numpy as np
import pytest
from PIL import Image, ImageDraw
from conftest import checkout_env, iou
from segwl.data import FolderBusyError, LayoutError, SegwlError, SegwlWarning, load_mask, output_lock, save_mask
from segwl.export import coco_segment, export_labels
from segwl.folder import manifest_row, read_manifest

pycocotools = pytest.importorskip('pycocotools')
from pycocotools.coco import COCO  # noqa: E402


def _shapes(h=48, w=64):
    "Masks with what breaks naive exports: holes, two parts, a speck, parts touching at a corner, the border, nothing."
    yy, xx = np.mgrid[:h, :w]
    d2 = lambda cy, cx: (yy - cy)**2 + (xx - cx)**2
    ring = (d2(24, 24) < 15**2) & (d2(24, 24) >= 6**2)
    two = (d2(12, 12) < 8**2) | ((yy > 28) & (yy < 44) & (xx > 34) & (xx < 60))
    two[30:34, 40:44] = False                                       # a hole in the second part
    speck = ring.copy()
    speck[2, 60] = True
    corner = np.zeros((h, w), bool)
    corner[10:20, 10:20] = corner[20:30, 20:30] = True              # touch only diagonally: one part
    border = (yy < 10) | (xx >= w - 5)
    return dict(ring=ring, two=two, speck=speck, corner=corner, border=border, empty=np.zeros((h, w), bool))


def make_labels(root: Path, masks: dict, statuses: dict | None = None, manifest: bool = True) -> Path:
    "A labels folder as `segwl label` leaves it for `masks` ({stem: mask}), plus an absent and an error row."
    rng = np.random.default_rng(0)
    (root/'images').mkdir(parents=True)
    rows = []
    for i, (stem, m) in enumerate(masks.items()):
        Image.fromarray(rng.integers(0, 255, m.shape + (3,), dtype=np.uint8)).save(root/'images'/f'{stem}.png')
        save_mask(m, root/'labels'/'masks'/f'{stem}.png')
        rows.append(manifest_row(f'{stem}.png', (statuses or {}).get(stem, 'ok'), score=round(0.5 + i / 100, 2)))
    rows.append(manifest_row('lost.png', 'error', 'lost.png: cannot read it'))
    if manifest: (root/'labels'/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    (root/'labels'/'config.json').write_text(json.dumps(dict(text='a photo of a cat', images=str(root/'images'))))
    return root/'labels'


@pytest.fixture
def labels(tmp_path):
    return make_labels(tmp_path, _shapes(), statuses=dict(empty='absent'))


# COCO

@pytest.mark.parametrize('mode', ['image', 'parts'])
def test_coco_loads_in_pycocotools_and_decodes_to_exactly_the_masks(labels, tmp_path, mode):
    s = export_labels(labels, tmp_path/'coco', 'coco', instances=mode, min_area=0)
    assert (s['images'], s['left_out']) == (5, dict(absent=1, error=1))
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    assert coco.loadCats(coco.getCatIds()) == [dict(id=1, name='cat', supercategory='cat')]
    shapes = _shapes()
    for img in coco.loadImgs(coco.getImgIds()):
        stem = Path(img['file_name']).stem
        m = shapes[stem]
        assert (img['height'], img['width']) == m.shape
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
        union = np.zeros(m.shape, bool)
        for a in anns:
            d = coco.annToMask(a).astype(bool)
            assert not (union & d).any()                        # parts do not overlap
            union |= d
            assert a['area'] == d.sum() and a['score'] == round(0.5 + list(shapes).index(stem) / 100, 2)
            ys, xs = np.nonzero(d)
            assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert np.array_equal(union, m), stem                   # holes and every pixel kept
        expected = {'image': 1, 'parts': dict(two=2, speck=2).get(stem, 1)}[mode]
        assert len(anns) == expected, stem


def test_coco_min_area_leaves_out_specks_only(labels, tmp_path):
    export_labels(labels, tmp_path/'coco', 'coco', min_area=0.001)       # 3 px of 48 x 64
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    by_name = {i['file_name']: len(coco.getAnnIds(imgIds=[i['id']])) for i in coco.loadImgs(coco.getImgIds())}
    assert by_name == {'ring.png': 1, 'two.png': 2, 'speck.png': 1, 'corner.png': 1, 'border.png': 1}


def test_coco_takes_the_labellers_instances_and_their_scores(labels, tmp_path):
    m = _shapes()['two']
    halves = [m & (np.arange(64) < 32), m & (np.arange(64) >= 32)]
    side = labels/'instances'/'two.json'
    side.parent.mkdir()
    side.write_text(json.dumps([{'rle': coco_segment(h)['segmentation'], 'score': s} 
                                for h, s in zip(halves, [.9, .4])]))
    export_labels(labels, tmp_path/'coco', 'coco', category='tabby')
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    img = next(i for i in coco.loadImgs(coco.getImgIds()) if i['file_name'] == 'two.png')
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
    assert [a['score'] for a in anns] == [0.9, 0.4]
    assert all(np.array_equal(coco.annToMask(a).astype(bool), h) for a, h in zip(anns, halves))
    assert coco.loadCats([1])[0]['name'] == 'tabby'


def test_without_a_manifest_every_mask_is_exported(tmp_path):
    labels = make_labels(tmp_path, _shapes(), manifest=False)
    s = export_labels(labels, tmp_path/'coco', 'coco')
    assert (s['images'], s['left_out']) == (6, {})


def test_missing_files_and_bad_input_are_named(labels, tmp_path):
    (labels/'masks'/'ring.png').unlink()
    with pytest.warns(SegwlWarning, match=r'1 left out \(no mask\): ring.png'):
        assert export_labels(labels, tmp_path/'a', 'coco')['left_out']['no_mask'] == 1
    save_mask(_shapes()['ring'], labels/'masks'/'ring.png')
    with pytest.raises(LayoutError, match='where the images are now'):
        export_labels(labels, tmp_path/'b', 'coco', images_dir=tmp_path/'moved')
    save_mask(np.ones((10, 10), bool), labels/'masks'/'two.png')           # not the size of its image
    with pytest.warns(SegwlWarning, match='1 image.*left out.*two.png is 10x10'):
        assert export_labels(labels, tmp_path/'c', 'coco')['left_out']['unreadable'] == 1
    with pytest.raises(SegwlError, match="expected one of coco, yolo, voc, label-studio"):
        export_labels(labels, tmp_path/'d', 'cityscapes')


def test_one_writer_per_output_folder(labels, tmp_path):
    with output_lock(tmp_path/'out', 'someone else'):
        with pytest.raises(FolderBusyError, match='someone else'):
            export_labels(labels, tmp_path/'out', 'coco')


# YOLO

def yolo_polygons(txt: Path, h: int, w: int) -> list[np.ndarray]:
    "The polygons of a YOLO-seg label file, in pixels."
    lines = [line.split() for line in txt.read_text().splitlines()]
    assert all(p[0] == '0' and len(p) % 2 == 1 and len(p) >= 7 for p in lines)
    return [np.array(p[1:], float).reshape(-1, 2) * [w, h] for p in lines]


def rasterise_like_ultralytics(polys, h: int, w: int) -> np.ndarray:
    "Fill the polygons as Ultralytics' polygon2mask does (integer pixel coordinates, cv2.fillPoly), with Pillow."
    im = Image.new('L', (w, h), 0)
    for p in polys: ImageDraw.Draw(im).polygon([tuple(q) for q in p.astype(np.int32).tolist()], fill=1)
    return np.asarray(im) > 0


def rasterise_centres(polys, h: int, w: int) -> np.ndarray:
    "The pixels whose centres are inside a polygon, by matplotlib's point-in-path test."
    from matplotlib.path import Path as MPath
    yy, xx = np.mgrid[:h, :w]
    centres = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
    return np.any([MPath(p).contains_points(centres) for p in polys], axis=0).reshape(h, w)


@pytest.mark.parametrize('mode', ['image', 'parts'])
def test_yolo_polygons_are_the_outlines_of_synthetic_masks_with_holes(labels, tmp_path, mode):
    s = export_labels(labels, tmp_path/'yolo', 'yolo', instances=mode, min_area=0)
    assert s['images'] == 5
    for stem, m in _shapes().items():
        if stem == 'empty': continue
        polys = yolo_polygons(tmp_path/'yolo'/'labels'/f'{stem}.txt', *m.shape)
        assert np.array_equal(rasterise_centres(polys, *m.shape), m), stem    # holes kept, no pixel lost or added
        assert not (m & ~rasterise_like_ultralytics(polys, *m.shape)).any(), stem   # cv2.fillPoly covers every pixel
    assert os.path.realpath(tmp_path/'yolo'/'images'/'ring.png') == str((labels.parent/'images'/'ring.png').resolve())
    yaml = (tmp_path/'yolo'/'data.yaml').read_text()
    assert f'path: "{(tmp_path/"yolo").resolve()}"' in yaml and 'names:\n  0: "cat"' in yaml


def test_yolo_polygons_cover_synthetic_masks_at_photo_scale(tmp_path):
    big = {k: np.kron(m, np.ones((4, 4), bool)) for k, m in _shapes().items() if m.any()}     # 192 x 256 images
    export_labels(make_labels(tmp_path, big), tmp_path/'yolo', 'yolo', instances='image', min_area=0)
    polys = {k: yolo_polygons(tmp_path/'yolo'/'labels'/f'{k}.txt', *m.shape) for k, m in big.items()}
    ious = {k: iou(rasterise_like_ultralytics(polys[k], *m.shape), m) for k, m in big.items()}
    assert min(ious.values()) >= 0.9, ious


def test_yolo_fill_drops_holes(labels, tmp_path):
    export_labels(labels, tmp_path/'yolo', 'yolo', holes='fill')
    m = _shapes()['ring']
    p, = yolo_polygons(tmp_path/'yolo'/'labels'/'ring.txt', *m.shape)
    yy, xx = np.mgrid[:48, :64]
    assert np.array_equal(rasterise_centres([p], *m.shape), m | ((yy - 24)**2 + (xx - 24)**2 < 6**2))


def test_a_re_export_leaves_nothing_stale(labels, tmp_path):
    export_labels(labels, tmp_path/'yolo', 'yolo')
    (labels/'manifest.jsonl').write_text(json.dumps(manifest_row('ring.png', score=1)) + '\n')
    export_labels(labels, tmp_path/'yolo', 'yolo')
    assert sorted(os.listdir(tmp_path/'yolo'/'labels')) == ['ring.txt']
    assert sorted(os.listdir(tmp_path/'yolo'/'images')) == ['ring.png']


@pytest.fixture
def pets_labels(pets_cat, tmp_path):
    "A labels folder (no manifest) with the true masks of the pets-cat unlabeled and test images."
    (tmp_path/'images').mkdir()
    (tmp_path/'labels'/'masks').mkdir(parents=True)
    for split in ('unlabeled', 'test'):
        for p in sorted((pets_cat/split/'masks').glob('*.png')):
            (tmp_path/'labels'/'masks'/p.name).symlink_to(p)
            img = next((pets_cat/split/'images').glob(f'{p.stem}.*'))
            (tmp_path/'images'/img.name).symlink_to(img)
    return tmp_path/'labels'


@pytest.mark.parametrize('mode', ['image', 'parts'])
def test_yolo_polygons_cover_each_pets_mask(pets_labels, tmp_path, mode):
    s = export_labels(pets_labels, tmp_path/'yolo', 'yolo', instances=mode, min_area=0,
                      images_dir=pets_labels.parent/'images')
    assert s['images'] == 100
    ious = {}
    for p in sorted((pets_labels/'masks').iterdir()):
        m = load_mask(p)
        polys = yolo_polygons(tmp_path/'yolo'/'labels'/f'{p.stem}.txt', *m.shape)
        ious[p.stem] = iou(rasterise_like_ultralytics(polys, *m.shape), m)
    print(f"pets-cat YOLO ({mode}): IoU min {min(ious.values()):.4f}, mean {np.mean(list(ious.values())):.4f}")
    assert min(ious.values()) >= 0.9, min(ious, key=ious.get)


def test_coco_decodes_to_exactly_the_pets_masks(pets_labels, tmp_path):
    export_labels(pets_labels, tmp_path/'coco', 'coco', min_area=0, images_dir=pets_labels.parent/'images')
    coco = COCO(str(tmp_path/'coco'/'annotations.json'))
    assert len(coco.getImgIds()) == 100
    for img in coco.loadImgs(coco.getImgIds()):
        union = sum(coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))) > 0
        assert np.array_equal(union, load_mask(pets_labels/'masks'/f"{Path(img['file_name']).stem}.png"))


# VOC

def test_voc_pngs_hold_0_1_and_255_only_where_ignore_masks_say(labels, tmp_path):
    ignore = np.zeros((48, 64), bool)
    ignore[:, :3] = True
    save_mask(ignore, tmp_path/'ignore'/'ring.png')
    with pytest.warns(SegwlWarning, match='no ignore mask for 4 image'):
        s = export_labels(labels, tmp_path/'voc', 'voc', ignore_dir=tmp_path/'ignore')
    assert s['images'] == 5
    for stem, m in _shapes().items():
        if stem == 'empty': continue
        im = Image.open(tmp_path/'voc'/'SegmentationClass'/f'{stem}.png')
        assert im.mode == 'P' and im.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        a = np.asarray(im)
        void = ignore if stem == 'ring' else np.zeros_like(ignore)
        assert np.array_equal(a == 255, void) and np.array_equal(a[~void] == 1, m[~void])
        assert set(np.unique(a)) <= {0, 1, 255}
    assert (tmp_path/'voc'/'ImageSets'/'Segmentation'/'default.txt').read_text().split() == \
        ['border', 'corner', 'ring', 'speck', 'two']
    assert 'cat:128,0,0::' in (tmp_path/'voc'/'labelmap.txt').read_text().splitlines()


# Label Studio

def decode_ls_rle(rle: list[int]) -> np.ndarray:
    "Label Studio's brush RLE back to its values, written from the rle-pack scheme its editor decodes with."
    bits = ''.join(f'{b:08b}' for b in rle)
    pos = 0
    def read(n):
        nonlocal pos
        pos += n
        return int(bits[pos - n:pos], 2)
    num, word = read(32), read(5) + 1
    widths = [read(4) + 1 for _ in range(4)]
    out, i = np.zeros(num, np.uint32), 0
    while i < num:
        repeat = read(1)
        n = read(widths[read(2)]) + 1
        if repeat: out[i:i + n] = read(word)
        else: out[i:i + n] = [read(word) for _ in range(n)]
        i += n
    return out


def test_label_studio_tasks_decode_back_to_the_masks(labels, tmp_path):
    s = export_labels(labels, tmp_path/'ls', 'label-studio', instances='parts', min_area=0,
                      image_url='/data/local-files/?d=pets/{name}')
    tasks = json.loads((tmp_path/'ls'/'tasks.json').read_text())
    assert len(tasks) == s['images'] == 5
    view = ET.fromstring((tmp_path/'ls'/'label_config.xml').read_text())
    brush, image = view.find('BrushLabels'), view.find('Image')
    assert brush.find('Label').get('value') == 'cat' and brush.get('toName') == image.get('name')
    shapes = _shapes()
    for t in tasks:
        name = t['data']['image'].rsplit('/', 1)[1]
        assert t['data']['image'] == f'/data/local-files/?d=pets/{name}'
        pred, = t['predictions']
        union = np.zeros((48, 64), bool)
        for r in pred['result']:
            assert (r['from_name'], r['to_name'], r['type']) == (brush.get('name'), image.get('name'), 'brushlabels')
            h, w = r['original_height'], r['original_width']
            rgba = decode_ls_rle(r['value']['rle']).reshape(h, w, 4)
            assert set(np.unique(rgba)) <= {0, 255} and (rgba == rgba[..., 3:]).all()
            union |= rgba[..., 3] > 0
        assert np.array_equal(union, shapes[Path(name).stem]), name
        assert pred['score'] == round(0.5 + list(shapes).index(Path(name).stem) / 100, 2)


# Models

@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    import torch
    from segwl.finetune import TrainSettings, synthetic_dataset, train
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp('model')
    train(*synthetic_dataset(d/'data', n=6, size=64), d/'model', TrainSettings(arch='tiny-unet', size=64, epochs=1,
          batch_size=2, pretrained=False, device='cpu', val_fraction=0), progress=False, log=lambda *a: None)
    return d/'model'


def _reference(model_dir, x):
    "What segwl's own PyTorch model computes for uint8 images `x` at its input size."
    import torch
    from segwl.finetune import load_model, to_input
    tm = load_model(model_dir, 'cpu')
    with torch.no_grad(): return tm.net(to_input(x, tm.mean, tm.std)).sigmoid().numpy()


def test_onnx_model_run_by_onnxruntime_matches_pytorch(model_dir, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    import torch
    from segwl.export import export_model
    s = export_model(model_dir, 'onnx', tmp_path/'m.onnx')
    print(f"ONNX check inside export_model: max abs diff {s['max_abs_diff']:.2e} on {s['images']} images")
    x = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    sess = ort.InferenceSession(str(tmp_path/'m.onnx'), providers=['CPUExecutionProvider'])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [('image', 'tensor(uint8)')]
    got = sess.run(None, {'image': x.numpy()})[0]
    diff = np.abs(got - _reference(model_dir, x)).max()
    print(f"onnxruntime vs PyTorch on 3 new images: max abs diff {diff:.2e}")
    assert got.shape == (3, 1, 64, 64) and diff <= 1e-4


def test_torchscript_model_matches_pytorch_and_says_what_it_is(model_dir, tmp_path):
    import torch
    from segwl.export import export_model
    s = export_model(model_dir, 'torchscript', tmp_path/'m.pt')
    assert s['max_abs_diff'] <= 1e-5
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    extra = {'segwl.json': ''}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', (FutureWarning, DeprecationWarning))     # TorchScript is deprecated upstream
        m = torch.jit.load(str(tmp_path/'m.pt'), _extra_files=extra)
    with torch.no_grad(): assert np.abs(m(x).numpy() - _reference(model_dir, x)).max() <= 1e-5
    assert json.loads(extra['segwl.json'])['input_size'] == 64


# Parts

def _flood_parts(m: np.ndarray) -> np.ndarray:
    "Connected parts (8-neighbours) by flood fill: slow and obviously right."
    out, n = np.zeros(m.shape, int), 0
    for y, x in zip(*np.nonzero(m)):
        if out[y, x]: continue
        n += 1
        out[y, x], todo = n, [(y, x)]
        while todo:
            cy, cx = todo.pop()
            for ny in range(max(cy - 1, 0), min(cy + 2, m.shape[0])):
                for nx in range(max(cx - 1, 0), min(cx + 2, m.shape[1])):
                    if m[ny, nx] and not out[ny, nx]:
                        out[ny, nx] = n
                        todo.append((ny, nx))
    return out


def test_label_parts_agrees_with_a_flood_fill_on_random_masks():
    from segwl.export import label_parts
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = rng.random(tuple(rng.integers(1, 25, 2))) < rng.random()
        got, n = label_parts(m)
        assert np.array_equal(got, _flood_parts(m)) and n == got.max()     # same parts, same reading-order numbers


def test_label_export_does_not_import_torch():
    import subprocess, sys
    code = 'import sys, segwl.export; print(sorted(m for m in ("torch", "onnx", "pycocotools") if m in sys.modules))'
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=checkout_env(), check=True)
    assert r.stdout.strip() == '[]'


# Each format's own validator, for every run (issue 25, item 2)

def _validate_label_studio(folder: Path) -> list:
    "The errors label-studio-sdk's own `validate_prediction` finds in the tasks of a Label Studio export."
    from label_studio_sdk.label_interface import LabelInterface
    li = LabelInterface((folder/'label_config.xml').read_text())
    tasks = json.loads((folder/'tasks.json').read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    return [e for t in tasks for p in t['predictions'] for e in li.validate_prediction(p, return_errors=True)]


def _validate_coco(folder: Path) -> COCO:
    "The export loaded by pycocotools, after a strict JSON parse (no NaN, no Infinity); every mask decoded."
    json.loads((folder/'annotations.json').read_text(), parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    coco = COCO(str(folder/'annotations.json'))
    for a in coco.loadAnns(coco.getAnnIds()):
        assert coco.annToMask(a).sum() == a['area']
        assert isinstance(a.get('score', 0.0), (int, float))
    return coco


def test_label_studio_scores_outside_0_1_pass_the_sdks_validator(labels, tmp_path):
    "Scores as a tiny random model gives them (-0.036, 1.02, NaN): clipped into [0, 1] or left out, never rejected."
    pytest.importorskip('label_studio_sdk', reason='label-studio-sdk is not installed (pip install label-studio-sdk)')
    rows = [json.loads(line) for line in (labels/'manifest.jsonl').read_text().splitlines()]
    for r, s in zip(rows, [-0.036, 1.02, float('nan'), 0.4]): r['score'] = s
    (labels/'manifest.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    export_labels(labels, tmp_path/'ls', 'label-studio')
    assert _validate_label_studio(tmp_path/'ls') == []
    tasks = {t['data']['image'].rsplit('=', 1)[1]: t['predictions'][0] for t in
             json.loads((tmp_path/'ls'/'tasks.json').read_text())}
    assert (tasks['ring.png']['score'], tasks['two.png']['score'], tasks['corner.png']['score']) == (0.0, 1.0, 0.4)
    assert 'score' not in tasks['speck.png'] and all('score' not in r for r in tasks['speck.png']['result'])


def test_the_sdk_validator_does_reject_what_was_written_before(labels, tmp_path):
    "The validator is real: the prediction segwl wrote before (score -0.036) is rejected with the issue's message."
    pytest.importorskip('label_studio_sdk', reason='label-studio-sdk is not installed (pip install label-studio-sdk)')
    from label_studio_sdk.label_interface import LabelInterface
    from segwl.export import ls_config
    errors = LabelInterface(ls_config('cat')).validate_prediction({'result': [], 'score': -0.036}, return_errors=True)
    assert errors == ['Score must be between 0.00 and 1.00 inclusive, got -0.036']


def test_a_tiny_random_run_passes_every_formats_validator(tmp_path, capsys):
    "segwl label with tiny random SAM and CLIP (scores anywhere), then every format: each passes its own reader."
    import segwl.cli as cli
    from segwl.testing import scene_folder, synthetic_scene
    ref, m = synthetic_scene((64, 80), seed=1)
    Image.fromarray(ref).save(tmp_path/'ref.png')
    Image.fromarray(m).save(tmp_path/'ref_mask.png')
    scene_folder(tmp_path/'images', [(48, 64), (64, 48), (56, 56)], seed=3)
    fast = ['--trials', '2', '--n-object', '3', '--n-background', '3', '--no-progress', '--device', 'cpu']
    code = cli.main([str(a) for a in ['label', '--reference', tmp_path/'ref.png', tmp_path/'ref_mask.png', '--text',
                                      'a red ellipse', '--images', tmp_path/'images', '--out', tmp_path/'labels',
                                      '--models', 'tiny-random', *fast]])
    assert code == 0, capsys.readouterr().err
    for fmt in ('coco', 'yolo', 'voc', 'label-studio'):
        assert cli.main(['export', str(tmp_path/'labels'), '--format', fmt, '--out', str(tmp_path/fmt),
                         '--min-area', '0']) == 0, capsys.readouterr().err
    capsys.readouterr()
    scores = [r['score'] for r in read_manifest(tmp_path/'labels'/'manifest.jsonl')]
    assert any(not 0 <= s <= 1 for s in scores), scores       # what Label Studio refused: here -0.15 .. -0.05
    coco = _validate_coco(tmp_path/'coco')
    assert len(coco.getImgIds()) == 3
    for txt in (tmp_path/'yolo'/'labels').glob('*.txt'):
        for line in txt.read_text().splitlines():
            v = np.array(line.split()[1:], float)
            assert line.split()[0] == '0' and len(v) >= 6 and len(v) % 2 == 0 and ((0 <= v) & (v <= 1)).all()
    for png in (tmp_path/'voc'/'SegmentationClass').glob('*.png'):
        assert set(np.unique(np.asarray(Image.open(png)))) <= {0, 1}
    if importlib.util.find_spec('label_studio_sdk'): assert _validate_label_studio(tmp_path/'label-studio') == []
