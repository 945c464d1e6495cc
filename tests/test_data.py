"Reading every image mode and format into RGB uint8, masks into bool, and every bad input into a clear error."
import io
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from segwl.data import (load_image, load_mask, load_reference, list_images, pair_masks, dataset_layout, save_mask,
                        ImageReadError, MaskError, BadReferenceError, LayoutError, SegwlError)

# (mode, pixel value, expected RGB): every mode Pillow hands us, with a known answer.
MODES = [
    ('1', 1, (255, 255, 255)),
    ('L', 77, (77, 77, 77)),
    ('LA', (77, 255), (77, 77, 77)),
    ('LA', (77, 0), (255, 255, 255)),              # fully transparent: composited on white
    ('RGB', (10, 20, 30), (10, 20, 30)),
    ('RGBA', (10, 20, 30, 255), (10, 20, 30)),
    ('RGBA', (10, 20, 30, 0), (255, 255, 255)),
    ('RGBA', (0, 0, 0, 128), (127, 127, 127)),     # half transparent black over white
    ('CMYK', (0, 0, 0, 0), (255, 255, 255)),
    ('CMYK', (0, 255, 255, 0), (255, 0, 0)),
    ('I;16', 65535, (255, 255, 255)),
    ('I;16', 257 * 100, (100, 100, 100)),          # scaled from 16 bits, not clipped at 255
    ('I', 65535, (255, 255, 255)),
    ('F', 0.5, (128, 128, 128)),
]

@pytest.mark.parametrize('mode,value,rgb', MODES, ids=[f"{m}-{v}" for m, v, _ in MODES])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode, value, rgb):
    p = tmp_path/'x.tif'
    Image.new(mode, (5, 3), value).save(p)
    a = load_image(p)
    assert a.shape == (3, 5, 3) and a.dtype == np.uint8 and a.flags.writeable
    assert tuple(int(v) for v in a[1, 2]) == pytest.approx(rgb, abs=1)

def test_palette_with_and_without_transparency(tmp_path):
    im = Image.new('P', (2, 1))
    im.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
    im.putpixel((1, 0), 1)
    im.save(tmp_path/'p.png')
    assert load_image(tmp_path/'p.png')[0].tolist() == [[200, 0, 0], [0, 0, 200]]
    im.save(tmp_path/'pt.png', transparency=0)
    assert load_image(tmp_path/'pt.png')[0].tolist() == [[255, 255, 255], [0, 0, 200]]

@pytest.mark.parametrize('ext,kw', [('.png', {}), ('.bmp', {}), ('.webp', {'lossless': True}), ('.tif', {}),
                                    ('.gif', {}), ('.jpg', {'quality': 100})])
def test_every_format(tmp_path, ext, kw):
    a = np.zeros((6, 8, 3), np.uint8)
    a[:, 4:] = (250, 250, 250)
    Image.fromarray(a).save(tmp_path/f'x{ext}', **kw)
    b = load_image(tmp_path/f'x{ext}')
    assert b.shape == (6, 8, 3)
    assert np.abs(b.astype(int) - a).max() <= 8       # JPEG and GIF's palette are close, the others exact

def test_gif_first_frame(tmp_path):
    frames = [Image.new('RGB', (4, 4), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path/'anim.gif', save_all=True, append_images=frames[1:])
    assert load_image(tmp_path/'anim.gif')[0, 0].tolist() == [255, 0, 0]

@pytest.mark.parametrize('orientation,shape,corner', [(1, (2, 4), (0, 0)), (3, (2, 4), (1, 3)), (6, (4, 2), (0, 1)),
                                                      (8, (4, 2), (3, 0))])
def test_exif_orientation_applied_to_images_and_masks(tmp_path, orientation, shape, corner):
    a = np.zeros((2, 4), np.uint8)
    a[0, 0] = 255  # one marked corner pixel
    ex = Image.Exif()
    ex[0x0112] = orientation
    Image.fromarray(a).convert('RGB').save(tmp_path/'i.png', exif=ex)
    Image.fromarray(a).save(tmp_path/'m.png', exif=ex)
    img, m = load_image(tmp_path/'i.png'), load_mask(tmp_path/'m.png')
    assert img.shape[:2] == shape and m.shape == shape
    assert img[corner][0] == 255 and m[corner] and m.sum() == 1

def test_masks_any_mode_nonzero_is_object(tmp_path):
    want = np.array([[0, 1, 1], [0, 0, 1]], bool)
    cases = {'L255': (want * 255).astype(np.uint8), 'L1': want.astype(np.uint8),
             'RGB': np.stack([np.zeros_like(want), want, np.zeros_like(want)], -1).astype(np.uint8) * 9,
             'I16': want.astype(np.uint16) * 1000}
    for name, a in cases.items():
        Image.fromarray(a).save(tmp_path/f'{name}.png')
        assert (load_mask(tmp_path/f'{name}.png') == want).all(), name
    pal = Image.fromarray(want.astype(np.uint8) * 3, mode='P')
    pal.putpalette([0, 0, 0] * 256)  # all black palette
    pal.save(tmp_path/'pal.png')
    assert (load_mask(tmp_path/'pal.png') == want).all()
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = want * 255  # white strokes, transparent bg
    Image.fromarray(rgba).save(tmp_path/'rgba.png')
    assert (load_mask(tmp_path/'rgba.png') == want).all()

def test_bad_files_name_the_file_and_the_problem(tmp_path):
    good = io.BytesIO()
    Image.new('RGB', (64, 64), 'red').save(good, 'JPEG')
    good = good.getvalue()
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png, 'PNG')
    files = {'empty.jpg': b'', 'text.jpg': b'hello', 'cut.jpg': good[:len(good) // 2], 'cut.png': png.getvalue()[:2000]}
    for name, data in files.items(): (tmp_path/name).write_bytes(data)
    (tmp_path/'dir.jpg').mkdir()
    expect = {'empty.jpg': 'file is empty', 'text.jpg': 'not an image', 'cut.jpg': 'truncated',
              'cut.png': 'cannot read image', 'dir.jpg': 'is a folder', 'missing.jpg': 'file not found'}
    for name, msg in expect.items():
        with pytest.raises(ImageReadError) as e: load_image(tmp_path/name)
        assert name in str(e.value) and msg in str(e.value), str(e.value)

def test_decompression_bomb_refused_before_decoding(tmp_path):
    Image.new('1', (12000, 12000)).save(tmp_path/'bomb.png')     # 144 Mpx in a few KB
    assert (tmp_path/'bomb.png').stat().st_size < 100_000
    with pytest.raises(ImageReadError, match='bomb.png.*decompression bomb'): load_image(tmp_path/'bomb.png')
    with pytest.raises(ImageReadError, match='decompression bomb'): load_mask(tmp_path/'bomb.png')

def test_mask_size_mismatch_and_reference_checks(tmp_path):
    Image.new('RGB', (500, 357)).save(tmp_path/'r.jpg')
    Image.new('L', (357, 500), 255).save(tmp_path/'rot.png')
    with pytest.raises(MaskError, match=r'rot.png is 357x500 \(WxH\) but its image is 500x357'):
        load_mask(tmp_path/'rot.png', shape=(357, 500))
    with pytest.raises(BadReferenceError, match='357x500'): load_reference(tmp_path/'r.jpg', tmp_path/'rot.png')
    Image.new('L', (500, 357), 0).save(tmp_path/'empty.png')
    with pytest.raises(BadReferenceError, match='empty.png: reference mask is empty'):
        load_reference(tmp_path/'r.jpg', tmp_path/'empty.png')
    Image.new('L', (500, 357), 255).save(tmp_path/'full.png')
    with pytest.raises(BadReferenceError, match='all object'): load_reference(tmp_path/'r.jpg', tmp_path/'full.png')
    assert issubclass(BadReferenceError, SegwlError)

def test_listing_and_pairing(tmp_path):
    for n in ['b.jpg', 'a.PNG', 'c.webp', 'notes.txt', '.hidden.jpg', 'x.json']: (tmp_path/n).write_bytes(b'x')
    (tmp_path/'sub.jpg').mkdir()
    assert [p.name for p in list_images(tmp_path)] == ['a.PNG', 'b.jpg', 'c.webp']
    masks = tmp_path/'masks'
    masks.mkdir()
    (masks/'a.png').write_bytes(b'x')
    (masks/'b.png').write_bytes(b'x')
    with pytest.raises(LayoutError, match='no mask for 1 image.*c.webp'): pair_masks(list_images(tmp_path), masks)
    with pytest.raises(LayoutError, match='not a folder'): list_images(tmp_path/'nope')

def test_save_mask_is_single_channel_0_255_and_atomic(tmp_path):
    save_mask(np.eye(3), tmp_path/'m.png')
    im = Image.open(tmp_path/'m.png')
    assert im.mode == 'L' and np.asarray(im).tolist() == (np.eye(3) * 255).tolist()
    assert [p.name for p in tmp_path.iterdir()] == ['m.png']

def test_examples_folder_is_a_valid_dataset(examples):
    lay = dataset_layout(examples)
    img, m = load_reference(lay.reference_image, lay.reference_mask)
    assert img.shape == (357, 500, 3) and 0.3 < m.mean() < 0.45       # manifest: foreground_fraction 0.3681
    assert len(list_images(lay.unlabeled)) == 5
    for i, mp in pair_masks(list_images(lay.test_images), lay.test_masks).items():
        assert load_mask(mp, shape=load_image(i).shape).any()

def test_pets_manifest_agrees_with_loaded_masks(pets_cat):
    import csv
    rows = list(csv.DictReader(open(pets_cat/'manifest.csv')))
    assert len(rows) == 101
    for r in rows[:30]:
        img = load_image(pets_cat/r['file'])
        assert img.shape[:2] == (int(r['height']), int(r['width']))
        split = r['split']
        stem = Path(r['file']).stem
        mp = pets_cat/'reference'/f'{stem}.png' if split == 'reference' else pets_cat/split/'masks'/f'{stem}.png'
        assert load_mask(mp, shape=img.shape).mean() == pytest.approx(float(r['foreground_fraction']), abs=1e-3)


# ---------------------------------------------------------------- the rooms cut from data (issue 21, item 4)
OLD_DATA_NAMES = ['IMAGE_EXTS', 'MAX_PIXELS', 'MAX_OBJECT_FRACTION', 'WARN_OBJECT_FRACTION', 'MAX_MASK_LEVELS',
                  'WARN_MASK_LEVELS', 'WRITE_ERRNOS', 'SegwlError', 'ImageReadError', 'MaskError', 'BadReferenceError',
                  'LayoutError', 'to_rgb', 'load_image', 'mask_from_pil', 'load_mask', 'SegwlWarning',
                  'check_reference_mask', 'mask_levels', 'check_mask_file', 'load_reference', 'is_image_file',
                  'list_images', 'find_mask', 'pair_masks', 'Layout', 'dataset_layout', 'resolve_device', 'OutputError',
                  'output_error', 'atomic_path', 'write_text', 'save_mask', 'FolderBusyError', 'output_lock',
                  'check_writable', 'clean_parts', 'short_list', 'read_json', 'why_refused', 'setting', 'check_setting',
                  'Settings', '_kind']          # segwl.data's __all__ before the cut, and the private name cli imports

def test_every_old_name_of_segwl_data_still_imports_and_is_its_new_home():
    import segwl.data, segwl.errors, segwl.outputs, segwl.settings
    missing = [n for n in OLD_DATA_NAMES if not hasattr(segwl.data, n)]
    assert not missing, missing
    for room in (segwl.errors, segwl.outputs, segwl.settings):
        for n in room.__all__: assert getattr(segwl.data, n) is getattr(room, n), (room.__name__, n)
    assert segwl.data.SegwlError is segwl.errors.SegwlError and issubclass(segwl.data.OutputError, SegwlError)


ROOMS = ['errors', 'outputs', 'settings', 'data']        # the order of nbs/00_, 00a_, 00b_, 00c_

def _segwl_imports(module: str) -> set:
    "The segwl modules `segwl/<module>.py` imports, anywhere in the file."
    import ast
    tree = ast.parse((Path(__file__).parent.parent/'segwl'/f'{module}.py').read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1: found.add((node.module or '').split('.')[0])
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or '').startswith('segwl.'):
            found.add(node.module.split('.')[1])
    return found

@pytest.mark.parametrize('i,room', list(enumerate(ROOMS)))
def test_rooms_import_only_rooms_above_and_stay_small(i, room):
    assert _segwl_imports(room) <= set(ROOMS[:i]), (room, _segwl_imports(room))
    assert len((Path(__file__).parent.parent/'segwl'/f'{room}.py').read_text().splitlines()) <= 450
