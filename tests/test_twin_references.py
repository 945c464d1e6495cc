"Issue 22: a reference given twice (the same image and mask) is left out once, with one warning naming it."
import json, shutil, warnings
import numpy as np
import pytest
from PIL import Image
import segwl.cli as cli
from segwl.canvas import CanvasLabeller
from segwl.errors import SegwlWarning
from segwl.recipe import check_references
from segwl.seed import SeedLabeller
from segwl.testing import ColourConcept, ColourScorer, ColourSegmenter, concept_scene, synthetic_scene

def said(fn):
    "`(fn(), [the SegwlWarnings it gave])`."
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        out = fn()
    return out, [str(x.message) for x in w if issubclass(x.category, SegwlWarning)]

TWIN = 'reference 2 is reference 1 again (the same image and mask): left out, a twin adds nothing'

def test_check_references_drops_twins_and_keeps_lookalikes():
    im, m = synthetic_scene((60, 90), seed=1)
    other = synthetic_scene((60, 90), seed=2)
    got, msgs = said(lambda: check_references([(im, m), (im.copy(), m.copy()), other, (im, np.roll(m, 3, 1))]))
    assert len(got) == 3 and got[1][0] is other[0] and (got[2][1] == np.roll(m, 3, 1)).all()   # another mask: kept
    assert len(msgs) == 1 and msgs[0].startswith(TWIN)
    got, msgs = said(lambda: check_references([(im, m), other]))
    assert len(got) == 2 and msgs == []

def test_seed_labeller_with_a_twin_labels_as_with_one():
    (im, m), (target, truth) = synthetic_scene((90, 120), seed=3), synthetic_scene((80, 100), seed=4)
    seg = ColourSegmenter()
    lab, msgs = said(lambda: SeedLabeller([(im, m), (im, m)], 'a red ellipse', seg, ColourScorer()))
    one = SeedLabeller([(im, m)], 'a red ellipse', ColourSegmenter(), ColourScorer())
    assert len(lab.references) == 1 and len(msgs) == 1 and msgs[0].startswith(TWIN)
    res = lab.label(target)
    assert (res.mask == one.label(target).mask).all() and (res.mask == truth).all()

def test_canvas_labeller_with_a_twin_labels_as_with_one():
    im, m, _ = concept_scene((100, 140), 1, seed=5)
    target, truth, parts = concept_scene((120, 160), 3, seed=6)
    seg = ColourConcept()
    lab, msgs = said(lambda: CanvasLabeller([(im, m), (im, m)], None, seg))
    one = CanvasLabeller([(im, m)], None, ColourConcept()).label(target)
    res = lab.label(target)
    assert len(lab.references) == 1 and len(msgs) == 1 and msgs[0].startswith(TWIN)
    assert len(res.instances) == len(one.instances) == 3 and (res.mask == one.mask).all() and (res.mask == truth).all()

@pytest.mark.parametrize('method', ['seed', 'canvas'])
def test_cli_names_the_twin_files_once(tmp_path, capsys, method):
    "The same pair twice, and a copy of it under other names: each left out, one warning naming the files."
    im, m, _ = concept_scene((100, 140), 1, seed=7)
    Image.fromarray(im).save(tmp_path/'cat.png')
    Image.fromarray(m).save(tmp_path/'cat_mask.png')
    shutil.copy(tmp_path/'cat.png', tmp_path/'copy.png')
    shutil.copy(tmp_path/'cat_mask.png', tmp_path/'copy_mask.png')
    (tmp_path/'imgs').mkdir()
    Image.fromarray(concept_scene((90, 120), 2, seed=8)[0]).save(tmp_path/'imgs'/'a.png')
    models = (['--segmenter', 'colour-concept'] if method == 'canvas' else
              ['--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--text', 'red'])
    pair = ['--reference', tmp_path/'cat.png', tmp_path/'cat_mask.png']
    argv = ['label', '--method', method, *models, *pair, *pair, '--reference', tmp_path/'copy.png',
            tmp_path/'copy_mask.png', '--images', tmp_path/'imgs', '--out', tmp_path/'out', '--no-progress']
    code, msgs = said(lambda: cli.main([str(a) for a in argv]))
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert len(msgs) == 1, msgs                                   # once, though the labeller checks them again
    assert msgs[0].startswith('reference 2 (cat.png, cat_mask.png) is reference 1 (cat.png, cat_mask.png) again (the '
                              'same image and mask); reference 3 (copy.png, copy_mask.png) is reference 1 (cat.png, '
                              'cat_mask.png) again'), msgs
    cfg = json.loads((tmp_path/'out'/'config.json').read_text())
    assert len(cfg['reference']) == 3                             # the record says what was given
