"""Issue 23's bad input, through the command line: each case exits 2 with one message naming the file and the
problem, and writes nothing (the output folder is not created)."""
import json, shutil
import numpy as np
import pytest
from PIL import Image
from segwl.classes import load_label_map, save_label_map
from segwl.testing import classes_scene
from segwl.trainset import synthetic_classes_dataset
from conftest import cli

CANVAS = ('--method', 'canvas', '--segmenter', 'colour-concept', '--no-progress')
TINY = ('--arch', 'tiny-unet', '--no-pretrained', '--device', 'cpu', '--quiet')




def one(name: str, refs, image, mask, **kw) -> dict:
    return dict(name=name, text=f"a {name} thing", references=[[image, mask]], **kw)


@pytest.fixture
def d(tmp_path):
    "Two good references (red, blue), an empty and an all-object mask, and a folder of two images to label."
    refs = tmp_path/'refs'
    refs.mkdir()
    for i, n in enumerate(('red', 'blue')):
        im, lm, _ = classes_scene((90, 120), [1, 0] if i == 0 else [0, 1], seed=40 + i)
        Image.fromarray(im).save(refs/f'{n}.png')
        Image.fromarray((lm > 0).astype(np.uint8) * 255).save(refs/f'{n}_mask.png')
    Image.fromarray(np.zeros((90, 120), np.uint8)).save(refs/'empty_mask.png')
    Image.fromarray(np.full((90, 120), 255, np.uint8)).save(refs/'full_mask.png')
    (tmp_path/'imgs').mkdir()
    for i in range(2): Image.fromarray(classes_scene((90, 120), [1, 1], seed=i)[0]).save(tmp_path/'imgs'/f's{i}.png')
    return tmp_path


RED, BLUE = one('red', None, 'red.png', 'red_mask.png'), one('blue', None, 'blue.png', 'blue_mask.png')
CASES = {   # name: (content of refs/bad.json, what the message says besides the file's name)
    'not JSON': ('{"classes": [{"name": "red",', 'not valid JSON at line 1'),
    'YAML-looking text': ('classes:\n  - name: red\n', 'not valid JSON at line 1, column 1: Expecting value; a '
                                                        'classes file is JSON, or YAML in a file named .yaml'),
    'no classes key': (json.dumps({'labels': [RED]}), "unknown key(s) 'labels'"),
    'empty object': ('{}', 'no "classes" key'),
    'not an object': (json.dumps([RED, BLUE]), 'expected an object with a "classes" list, got list'),
    'no class': (json.dumps({'classes': []}), 'no class: list at least one'),
    'two classes one name': (json.dumps({'classes': [RED, dict(BLUE, name='Red')]}),
                             "two classes named 'red' and 'Red' (classes 1 and 2)"),
    'no reference key': (json.dumps({'classes': [RED, {'name': 'blue', 'text': 'x'}]}),
                         "class 'blue': no reference"),
    'empty references': (json.dumps({'classes': [RED, dict(BLUE, references=[])]}), "class 'blue': no reference"),
    'empty mask': (json.dumps({'classes': [RED, one('blue', None, 'blue.png', 'empty_mask.png')]}),
                   "class 'blue', reference 1"),
    'all-object mask': (json.dumps({'classes': [RED, one('blue', None, 'blue.png', 'full_mask.png')]}),
                        "class 'blue', reference 1"),
    'unknown file key': (json.dumps({'classes': [RED], 'clases': []}), "'clases' (did you mean 'classes'?)"),
    'unknown class key': (json.dumps({'classes': [RED, dict(BLUE, refrences=[])]}),
                          "class 2: unknown key(s) 'refrences' (did you mean 'references'?)"),
    'missing reference file': (json.dumps({'classes': [one('red', None, 'nothere.png', 'red_mask.png')]}),
                               'nothere.png: file not found'),
    'more than 255 classes': (json.dumps({'classes': [one(f'c{i}', None, 'red.png', 'red_mask.png')
                                                      for i in range(256)]}), '256 classes: at most 255'),
}
MASK_SAID = {'empty mask': ('empty_mask.png', 'empty'), 'all-object mask': ('full_mask.png', 'object')}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_classes_file(d, case):
    content, said = CASES[case]
    (d/'refs'/'bad.json').write_text(content)
    code, out, err = cli('label', '--classes', d/'refs'/'bad.json', '--images', d/'imgs', '--out', d/'out', *CANVAS)
    assert code == 2, (case, out, err)
    assert f"classes file {d/'refs'/'bad.json'}" in err and said in err, (case, err)
    for bit in MASK_SAID.get(case, ()): assert bit in err, (case, err)
    assert 'Traceback' not in err and not (d/'out').exists(), case


def test_a_missing_classes_file(d):
    code, out, err = cli('label', '--classes', d/'refs'/'nothere.json', '--images', d/'imgs', '--out', d/'out',
                         *CANVAS)
    assert code == 2 and f"classes file {d/'refs'/'nothere.json'}: file not found" in err, err
    assert not (d/'out').exists()


@pytest.mark.parametrize('extra', [('--reference', 'refs/red.png', 'refs/red_mask.png'),
                                   ('--reference-image', 'refs/red.png', '--reference-mask', 'refs/red_mask.png')])
def test_classes_with_reference(d, extra, monkeypatch):
    monkeypatch.chdir(d)
    (d/'refs'/'good.json').write_text(json.dumps({'classes': [RED, BLUE]}))
    code, out, err = cli('label', '--classes', 'refs/good.json', *extra, '--images', 'imgs', '--out', 'out', *CANVAS)
    assert code == 2 and '--classes excludes --reference' in err, err
    assert not (d/'out').exists()


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "A two-class (disc, square) tiny model: one epoch is enough to be refused."
    t = tmp_path_factory.mktemp('m')
    ti, tm = synthetic_classes_dataset(t/'train', n=4, size=32, seed=1)
    code, out, err = cli('train', '--images', ti, '--masks', tm, '--out', t/'model', '--size', 32, '--epochs', 1,
                         '--batch-size', 2, '--val-fraction', 0, *TINY)           # cli: torch on one thread meanwhile
    assert code == 0, out + err
    return t


def test_train_on_values_above_the_classes(tmp_path):
    ti, tm = synthetic_classes_dataset(tmp_path/'bad', n=4, size=32)
    lm = load_label_map(tm/'im2.png')
    lm[:4, :4] = 3
    save_label_map(lm, tm/'im2.png')
    code, out, err = cli('train', '--images', ti, '--masks', tm, '--out', tmp_path/'model', '--size', 32,
                         '--epochs', 1, '--batch-size', 2, *TINY)
    assert code == 2, out + err
    assert f"label map {tm/'im2.png'}: value(s) 3 above the 2 class(es)" in err and 'classes.json' in err, err
    assert not (tmp_path/'model').exists()


def test_evaluate_a_model_of_other_classes(model, tmp_path):
    gt = tmp_path/'gt'
    shutil.copytree(model/'train'/'masks', gt/'masks')
    (gt/'classes.json').write_text('[{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]')
    code, out, err = cli('evaluate', '--model', model/'model', '--images', model/'train'/'images', '--masks',
                         gt/'masks', '--out', tmp_path/'rep', '--quiet')
    assert code == 2 and 'has classes [disc, square]' in err and 'names [cat, dog]' in err, err
    assert str(gt/'classes.json') in err or str(gt/'masks') in err, err
    assert not (tmp_path/'rep').exists()
