"The classes room: classes files and their every bad input, classes.json, label maps on disk, the overlap rule."
import ast, json
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
import segwl.classes as C
from segwl.classes import (ClassSpec, ClassesError, read_classes, make_classes, check_for_method, class_names,
                           write_classes_json, read_classes_json, find_classes_json, is_label_map_folder, palette_of,
                           save_label_map, load_label_map, compose, class_row_fields, colourise, PALETTE, MAX_CLASSES)
from segwl.data import SegwlError


def ref(folder: Path, name: str, hw=(30, 40), box=(5, 20, 10, 30), value=255) -> tuple[Path, Path]:
    "Write `name`.jpg and `name`.png (object = `box` y0, y1, x0, x1 filled with `value`); their paths."
    m = np.zeros(hw, np.uint8)
    m[box[0]:box[1], box[2]:box[3]] = value
    Image.fromarray(np.full((*hw, 3), 120, np.uint8)).save(folder/f'{name}.jpg')
    Image.fromarray(m).save(folder/f'{name}.png')
    return folder/f'{name}.jpg', folder/f'{name}.png'


@pytest.fixture
def refs(tmp_path):
    ref(tmp_path, 'cat')
    ref(tmp_path, 'cat2', box=(0, 10, 0, 10))
    ref(tmp_path, 'dog', box=(10, 30, 0, 20))
    ref(tmp_path, 'empty', value=0)
    ref(tmp_path, 'full', box=(0, 30, 0, 40))
    return tmp_path


def classes_file(folder: Path, data, name='classes.json') -> Path:
    p = folder/name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


GOOD = {'classes': [{'name': 'cat', 'text': 'a photo of a cat', 'references': [['cat.jpg', 'cat.png'],
                                                                               ['cat2.jpg', 'cat2.png']]},
                    {'name': 'dog', 'text': 'a photo of a dog', 'references': [['dog.jpg', 'dog.png']]}]}


def test_read_classes_json_file(refs):
    cl = read_classes(classes_file(refs, GOOD))
    assert class_names(cl) == ['cat', 'dog']                       # id = position + 1
    assert cl[0].references == [(refs/'cat.jpg', refs/'cat.png'), (refs/'cat2.jpg', refs/'cat2.png')]
    assert [int(m.sum()) for _, m in cl[0].load()] == [15 * 20, 10 * 10]
    assert cl[1].text == 'a photo of a dog' and cl[1].load()[0][0].shape == (30, 40, 3)


def test_relative_paths_are_relative_to_the_file_not_the_cwd(refs, tmp_path, monkeypatch):
    sub = tmp_path/'elsewhere'
    sub.mkdir()
    monkeypatch.chdir(sub)
    cl = read_classes(classes_file(refs, GOOD))
    assert cl[1].references == [(refs/'dog.jpg', refs/'dog.png')]


def test_read_classes_yaml(refs):
    p = classes_file(refs, 'classes:\n  - name: cat\n    references: [[cat.jpg, cat.png]]\n'
                           '  - name: dog\n    text: a dog\n    references:\n      - [dog.jpg, dog.png]\n', 'c.yaml')
    cl = read_classes(p)
    assert [(c.name, c.text) for c in cl] == [('cat', None), ('dog', 'a dog')]
    assert cl[1].references == [(refs/'dog.jpg', refs/'dog.png')]
    with pytest.raises(ClassesError, match=r'c\.yaml: not valid YAML at line 3, column 1'):
        read_classes(classes_file(refs, 'classes:\n  - {name: cat\n', 'c.yaml'))
    with pytest.raises(ClassesError, match=r"name must be a text, got bool True \(write it in quotes\)"):
        read_classes(classes_file(refs, 'classes:\n  - name: yes\n    references: [[cat.jpg, cat.png]]\n', 'c.yml'))


def test_classes_from_a_python_list_of_arrays_and_paths(refs):
    img, mask = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    cl = make_classes([('cat', 'a cat', [(img, mask)]), ClassSpec('dog', None, [(refs/'dog.jpg', refs/'dog.png')]),
                       {'name': 'cow', 'references': [[str(refs/'cat.jpg'), str(refs/'cat.png')]]}])
    assert class_names(cl) == ['cat', 'dog', 'cow']
    assert cl[0].load()[0][1].sum() == 9 and cl[2].text is None
    assert cl[0].to_dict()['references'][0][0].startswith('array 8x8x3 sha1:')
    assert cl[1].to_dict() == dict(name='dog', text=None, references=[[str(refs/'dog.jpg'), str(refs/'dog.png')]])
    assert make_classes(cl) == cl


BAD_FILES = [
    ('{"classes": [\n  {"name": "cat",}\n]}', r'not valid JSON at line 2, column 18'),
    ('not json at all', r'not valid JSON at line 1, column 1'),
    ('{"objects": []}', r"unknown key\(s\) 'objects'; known: classes"),
    ('{"clases": []}', r"'clases' \(did you mean 'classes'\?\)"),
    ('{}', r'no "classes" key'),
    ('[{"name": "cat"}]', r'expected an object with a "classes" list, got list'),
    ('{"classes": {"name": "cat"}}', r'expected a list of classes, got'),
    ('{"classes": "cat"}', r'expected a list of classes'),
    ('{"classes": []}', r'no class: list at least one'),
    ('{"classes": [{"name": "cat", "references": [["cat.jpg", "cat.png"]]}, '
     '{"name": "cat", "references": [["dog.jpg", "dog.png"]]}]}', r"two classes named 'cat' \(classes 1 and 2\)"),
    ('{"classes": [{"name": "cat", "references": [["cat.jpg", "cat.png"]]}, '
     '{"name": "Cat ", "references": [["dog.jpg", "dog.png"]]}]}',
     r"two classes named 'cat' and 'Cat' \(classes 1 and 2\)"),
    ('{"classes": [{"name": "cat", "text": "a cat"}]}', r"class 'cat': no reference"),
    ('{"classes": [{"name": "cat", "references": []}]}', r"class 'cat': no reference"),
    ('{"classes": [{"name": "cat", "references": ["cat.jpg", "cat.png"]}]}', r'write \[\[image, mask\]\]'),
    ('{"classes": [{"name": "cat", "references": [["cat.jpg"]]}]}', r'reference 1: expected an \[image, mask\] pair'),
    ('{"classes": [{"name": "cat", "references": [["cat.jpg", "gone.png"]]}]}', r'gone\.png: file not found'),
    ('{"classes": [{"name": "cat", "references": [["gone.jpg", "cat.png"]]}]}', r'gone\.jpg: file not found'),
    ('{"classes": [{"name": "cat", "references": [["empty.jpg", "empty.png"]]}]}', r'reference mask is empty'),
    ('{"classes": [{"name": "cat", "references": [["full.jpg", "full.png"]]}]}', r'reference mask is all object'),
    ('{"classes": [{"name": "cat", "referenses": [["cat.jpg", "cat.png"]]}]}',
     r"class 1: unknown key\(s\) 'referenses' \(did you mean 'references'\?\)"),
    ('{"classes": [{"name": "cat", "txt": "a", "references": [["cat.jpg", "cat.png"]]}]}', r"did you mean 'text'\?"),
    ('{"classes": [{"nmae": "cat", "references": [["cat.jpg", "cat.png"]]}]}', r"did you mean 'name'\?"),
    ('{"classes": [{"name": "", "references": [["cat.jpg", "cat.png"]]}]}', r'class 1: the name is empty'),
    ('{"classes": [{"name": 7, "references": [["cat.jpg", "cat.png"]]}]}', r'class 1: the name must be a text'),
    ('{"classes": [{"name": null, "references": [["cat.jpg", "cat.png"]]}]}', r'the name must be a text'),
    ('{"classes": [{"references": [["cat.jpg", "cat.png"]]}]}', r'class 1: no "name"'),
    ('{"classes": [{"name": "background", "references": [["cat.jpg", "cat.png"]]}]}', r"'background' is id 0"),
    ('{"classes": [{"name": "a:b", "references": [["cat.jpg", "cat.png"]]}]}', r"holds ':'"),
    ('{"classes": [{"name": "cat", "text": 3, "references": [["cat.jpg", "cat.png"]]}]}', r'text must be'),
    ('{"classes": [{"name": "cat", "references": [["cat.jpg", 3]]}]}', r'the mask must be a file path'),
    ('{"classes": [{"name": "a", "name": "b", "references": [["cat.jpg", "cat.png"]]}]}', r"'name' appears twice"),
    ('{"classes": ["cat"]}', r"class 1: expected \(name, text, references\)"),
    (b'\xff\xfe{', r'not UTF-8 text'),
]


@pytest.mark.parametrize('text,msg', BAD_FILES, ids=[f'bad{i}' for i in range(len(BAD_FILES))])
def test_every_bad_classes_file_names_the_file_and_the_problem(refs, text, msg):
    p = refs/'classes.json'
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ClassesError, match=msg) as e:
        read_classes(p)
    assert str(e.value).startswith(f'classes file {p}')
    assert isinstance(e.value, SegwlError)                          # the CLI turns it into exit 2


def test_more_than_255_classes(refs):
    one = {'name': 'c', 'references': [['cat.jpg', 'cat.png']]}
    many = {'classes': [dict(one, name=f'c{i}') for i in range(MAX_CLASSES + 1)]}
    with pytest.raises(ClassesError, match=r'256 classes: at most 255'):
        read_classes(classes_file(refs, many))
    assert len(read_classes(classes_file(refs, {'classes': many['classes'][:255]}), load=False)) == 255


def test_missing_folder_and_files(refs):
    with pytest.raises(ClassesError, match=r'nope\.json: file not found'):
        read_classes(refs/'nope.json')
    with pytest.raises(ClassesError, match='is a folder'):
        read_classes(refs)


def test_load_false_still_checks_that_files_exist_but_decodes_nothing(refs):
    p = classes_file(refs, {'classes': [{'name': 'cat', 'references': [['empty.jpg', 'empty.png']]}]})
    assert class_names(read_classes(p, load=False)) == ['cat']      # the empty mask is found only when loaded
    with pytest.raises(ClassesError, match='empty'):
        read_classes(p, load=False)[0].load()


def test_check_for_method(refs):
    p = classes_file(refs, {'classes': [{'name': 'cat', 'text': 'a cat', 'references': [['cat.jpg', 'cat.png']]},
                                        {'name': 'dog', 'text': ' ', 'references': [['dog.jpg', 'dog.png']]}]})
    cl = read_classes(p)
    assert check_for_method(cl, 'canvas') is cl
    with pytest.raises(ClassesError, match=r"classes file .*classes\.json: class\(es\) 'dog' have no text.*canvas"):
        check_for_method(cl, 'seed')
    assert check_for_method(cl[:1], 'seed') == cl[:1]
    with pytest.raises(ClassesError, match='expected one of seed, canvas'):
        check_for_method(cl, 'sam')


def test_classes_json_round_trip_and_where_it_is_found(tmp_path):
    out = tmp_path/'labels'
    path = write_classes_json(out, ['cat', 'dog', 'cow'])
    entries = [{'id': 1, 'name': 'cat', 'colour': [128, 0, 0]}, {'id': 2, 'name': 'dog', 'colour': [0, 128, 0]},
               {'id': 3, 'name': 'cow', 'colour': [128, 128, 0]}]
    assert json.loads(path.read_text()) == entries and path.read_text().count('\n') == 5   # one entry a line
    (out/'masks').mkdir()
    (out/'manifest.jsonl').write_text('')
    for where in (out, out/'masks', out/'manifest.jsonl', path):
        assert find_classes_json(where) == path and read_classes_json(where) == entries
    assert is_label_map_folder(out/'masks')
    single = tmp_path/'single'
    (single/'masks').mkdir(parents=True)
    assert not is_label_map_folder(single) and not is_label_map_folder(single/'masks')
    assert read_classes_json(single, missing_ok=True) is None
    with pytest.raises(ClassesError, match=r'single.*no classes\.json in it or beside it'):
        read_classes_json(single/'masks')
    assert palette_of(entries)[:4].tolist() == PALETTE[:4].tolist()


BAD_CLASSES_JSON = [
    ('[{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]', r'ids must be 1\.\.2, each once'),
    ('[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]', r'ids must be 1\.\.2'),
    ('[{"id": 2, "name": "a"}]', r'ids must be 1\.\.1'),
    ('[{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]', r"class names 'a' are given twice"),
    ('[{"id": 1, "name": "a", "color": [1, 2, 3]}]', r"'color' \(did you mean 'colour'\?\)"),
    ('[{"id": "1", "name": "a"}]', r'id must be an integer'),
    ('[{"id": 1, "name": ""}]', r'name is empty'),
    ('[{"id": 1, "name": "a", "colour": [1, 2, 256]}]', r'colour must be \[r, g, b\]'),
    ('[]', r'non-empty list'), ('{"classes": []}', r'non-empty list'), ('[1]', r'entry 1: expected an object'),
    ('[{"id": 1, "name": "a"', r'not valid JSON at line 1'),
]


@pytest.mark.parametrize('text,msg', BAD_CLASSES_JSON, ids=[f'bad{i}' for i in range(len(BAD_CLASSES_JSON))])
def test_bad_classes_json(tmp_path, text, msg):
    (tmp_path/'classes.json').write_text(text)
    with pytest.raises(ClassesError, match=msg) as e:
        read_classes_json(tmp_path)
    assert str(tmp_path/'classes.json') in str(e.value)


def test_label_map_png_round_trip_palette_and_atomic(tmp_path):
    rng = np.random.default_rng(0)
    lm = rng.integers(0, 4, (17, 23)).astype(np.uint8)
    entries = [{'id': 1, 'name': 'a', 'colour': [1, 2, 3]}, {'id': 2, 'name': 'b', 'colour': [4, 5, 6]},
               {'id': 3, 'name': 'c', 'colour': [7, 8, 9]}]
    p = tmp_path/'masks'/'x.png'
    save_label_map(lm, p, palette_of(entries))
    im = Image.open(p)
    assert im.mode == 'P' and im.getpalette()[:12] == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert np.array_equal(np.asarray(im.convert('RGB')), colourise(lm, entries))   # what a viewer shows
    assert np.array_equal(load_label_map(p, n_classes=3, shape=(17, 23)), lm)
    assert list(p.parent.iterdir()) == [p]                                          # no temporary file left
    save_label_map(np.zeros((17, 23), bool), p)                                      # replaced in one step
    assert load_label_map(p).max() == 0
    with pytest.raises(ClassesError, match=r'label map .*x\.png: value\(s\) 2, 3 above the 1 class\(es\)'):
        save_label_map(lm, p)
        load_label_map(p, n_classes=1)


def test_every_id_up_to_255(tmp_path):
    lm = np.arange(256, dtype=np.uint8).repeat(2).reshape(16, 32)
    save_label_map(lm, tmp_path/'all.png')
    assert np.array_equal(load_label_map(tmp_path/'all.png', n_classes=255), lm)
    assert np.array_equal(np.asarray(Image.open(tmp_path/'all.png').convert('RGB')), PALETTE[lm])


def test_bad_label_maps(tmp_path):
    Image.fromarray(np.array([[0, 255]], np.uint8)).save(tmp_path/'binary.png')
    with pytest.raises(ClassesError, match=r'binary\.png: value\(s\) 255 above .*single-class run'):
        load_label_map(tmp_path/'binary.png', n_classes=2)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path/'rgb.png')
    with pytest.raises(ClassesError, match=r'rgb\.png: a RGB picture, not a label map'):
        load_label_map(tmp_path/'rgb.png')
    (tmp_path/'junk.png').write_bytes(b'not a png')
    with pytest.raises(ClassesError, match=r'junk\.png'):
        load_label_map(tmp_path/'junk.png')
    with pytest.raises(ClassesError, match=r'gone\.png: file not found'):
        load_label_map(tmp_path/'gone.png')
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path/'deep.png')
    with pytest.raises(ClassesError, match=r'values 0\.\.300'):
        load_label_map(tmp_path/'deep.png')
    with pytest.raises(ClassesError, match='must be integers'):
        save_label_map(np.zeros((2, 2), np.float32), tmp_path/'f.png')
    with pytest.raises(ClassesError, match='HxW'):
        save_label_map(np.zeros((2, 2, 3), np.uint8), tmp_path/'f.png')
    assert not (tmp_path/'f.png').exists()


def disc(cx, cy, r, hw=(48, 64)):
    yy, xx = np.mgrid[:hw[0], :hw[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@dataclass
class Inst:
    mask: np.ndarray
    score: float


@dataclass
class Result:
    instances: list
    present: bool = True


def test_overlap_goes_to_the_higher_score():
    a, b = disc(24, 24, 12), disc(40, 24, 12)
    lens = int((a & b).sum())
    assert lens > 0
    for sa, sb, winner in [(0.9, 0.6, 1), (0.6, 0.9, 2)]:
        r = compose({1: [Inst(a, sa)], 2: [Inst(b, sb)]})
        assert r.overlap == lens
        assert (r.label_map[a & b] == winner).all()
        loser = 3 - winner
        kept = {i.category_id: i for i in r.instances}
        assert kept[winner].area == (a if winner == 1 else b).sum()
        assert kept[loser].area == (b if winner == 1 else a).sum() - lens           # clipped
        assert not (kept[loser].mask & kept[winner].mask).any()


def test_equal_scores_go_to_the_lower_class_id():
    a, b = disc(24, 24, 12), disc(40, 24, 12)
    r = compose({2: (b, 0.7), 1: (a, 0.7)})                        # the dict's order does not matter
    assert (r.label_map[a & b] == 1).all()
    r = compose({3: (b, 0.7), 2: (a, 0.7)})
    assert (r.label_map[a & b] == 2).all()


def test_a_fully_covered_loser_disappears_and_the_rest_stays():
    big, small, far = disc(32, 24, 15), disc(30, 22, 5), disc(5, 5, 3)
    r = compose({1: Result([Inst(small, 0.8), Inst(far, 0.5)]), 2: Result([Inst(big, 0.95)])})
    assert [(i.category_id, i.score, i.area) for i in r.instances] == [(1, 0.5, far.sum()), (2, 0.95, big.sum())]
    assert r.overlap == small.sum()
    assert np.array_equal(r.label_map, np.where(big, 2, np.where(far, 1, 0)).astype(np.uint8))


def test_compose_forms_and_limits():
    a, b = disc(24, 24, 12), disc(40, 24, 12)
    r = compose({1: Result([Inst(a, 0.9)], present=False), 2: b})   # absent: no claim; a bare mask: no score
    assert (r.label_map == 2).sum() == b.sum() and r.overlap == 0
    r = compose({1: [(a, 0.9), (a & b, 0.2)]})                       # one class's instances may overlap each other
    assert r.overlap == 0 and len(r.instances) == 2 and r.instances[1].box == C._box(a & b)
    assert compose({5: []}, shape=(3, 4)).label_map.shape == (3, 4)
    r = compose({255: (a, 0.5)})
    assert r.label_map.max() == 255
    for bad, msg in [({0: a}, 'class id 0'), ({256: a}, 'class id 256'), ({1: a, 2: b[:10]}, 'several sizes'),
                     ({}, 'give shape='), ({1: 'mask'}, 'a claim must be'), ({1: a[None]}, 'must be HxW')]:
        with pytest.raises(ClassesError, match=msg):
            compose(bad)


def test_class_row_fields_absent_only_when_every_class_is():
    a, b = disc(24, 24, 12), disc(40, 24, 12)
    r = compose({1: (a, 0.6), 2: (b, 0.9)})
    row = class_row_fields(['cat', 'dog', 'cow'], r.label_map, {'cat': 0.6, 'dog': 0.9}, r.overlap)
    assert row == {'status': 'ok', 'score': 0.6, 'overlap': int((a & b).sum()),
                   'classes': {'cat': {'status': 'ok', 'score': 0.6}, 'dog': {'status': 'ok', 'score': 0.9},
                               'cow': {'status': 'absent', 'score': None}}}
    covered = compose({1: (disc(40, 24, 3), 0.5), 2: (b, 0.9)})
    row = class_row_fields(['cat', 'dog'], covered.label_map, [0.5, 0.9], covered.overlap)
    assert row['classes']['cat'] == {'status': 'absent', 'score': 0.5}    # lost every pixel: absent, as the file says
    row = class_row_fields(['cat', 'dog'], np.zeros((4, 4), np.uint8), [0.3, float('nan')])
    assert (row['status'], row['score'], row['classes']['dog']['score']) == ('absent', None, None)
    json.dumps(row)                                                      # a manifest line


@pytest.mark.parametrize('room,above', [('classfile', {'data', 'protocols'}),
                                        ('labelmaps', {'data', 'protocols', 'classfile'}),
                                        ('classes', {'classfile', 'labelmaps'})])
def test_the_room_imports_only_rooms_above_it(room, above):
    tree = ast.parse((Path(C.__file__).parent/f'{room}.py').read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
    assert mods <= above, mods
