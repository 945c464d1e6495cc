"""A labels folder (and a model folder) works from any folder, and moved together with its images (issue 25, item 3):
labelled in one working folder, exported, reviewed and trained on from another, then the whole tree moved."""
import json, shutil
import pytest
import torch
from PIL import Image
from conftest import cli as run
from segwl.testing import synthetic_scene, scene_folder

torch.set_num_threads(1)
STAND_INS = ['--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--trials', '2', '--no-progress']




@pytest.fixture
def tree(tmp_path):
    "A dataset tree as a user has it: images/, a reference image and its mask."
    ds = tmp_path/'work'/'ds'
    scene_folder(ds/'images', [(48, 64), (64, 48), (56, 56)], seed=3)
    ref, m = synthetic_scene((64, 80), seed=1)
    Image.fromarray(ref).save(ds/'ref.png')
    Image.fromarray(m).save(ds/'ref_mask.png')
    return tmp_path, ds


def test_labels_work_from_another_folder_and_moved_with_their_images(tree, monkeypatch):
    tmp, ds = tree
    monkeypatch.chdir(ds)                                          # labelled from inside the tree, paths as typed
    code, _, err = run('label', '--reference', 'ref.png', 'ref_mask.png', '--text', 'a red ellipse',
                       '--images', 'images', '--out', 'labels', *STAND_INS)
    assert code == 0, err
    cfg = json.loads((ds/'labels'/'config.json').read_text())
    assert (cfg['images'], cfg['images_relative']) == (str(ds/'images'), '../images')
    assert cfg['reference'][0]['image_relative'] == '../ref.png' and cfg['reference'][0]['image'] == str(ds/'ref.png')

    monkeypatch.chdir(tmp)                                         # everything else from the parent folder
    code, out, err = run('export', 'work/ds/labels', '--format', 'coco', '--out', 'coco1')
    assert code == 0 and '3 images' in out, err                    # was: exit 2, images folder not found
    code, out, err = run('review', 'work/ds/labels', '--sheet', 'sheet.png')
    assert code == 0 and (tmp/'sheet.png').is_file(), err
    code, out, err = run('train', '--images', 'work/ds/images', '--masks', 'work/ds/labels/masks', '--manifest',
                         'work/ds/labels/manifest.jsonl', '--out', 'work/ds/model', '--arch', 'tiny-unet',
                         '--no-pretrained', '--size', 32, '--epochs', 1, '--device', 'cpu', '--quiet')
    assert code == 0, err
    data = json.loads((ds/'model'/'model.json').read_text())['data']
    assert (data['images_dir'], data['images_dir_relative'], data['manifest_relative']) == (
        str(ds/'images'), '../images', '../labels/manifest.jsonl')

    moved = tmp/'elsewhere'/'ds'                                   # the whole tree moves; its old place is gone
    shutil.move(ds, moved)
    monkeypatch.chdir(tmp/'elsewhere')
    code, out, err = run('export', 'ds/labels', '--format', 'coco', '--out', 'coco2')
    assert code == 0 and '3 images' in out, err
    coco = json.loads((tmp/'elsewhere'/'coco2'/'annotations.json').read_text())
    assert len(coco['images']) == 3 and str(moved/'images') in json.dumps(coco['info'])
    from segwl.export import check_files
    from segwl.checkpoint import load_model
    assert [p.parent for p in check_files(load_model(moved/'model', 'cpu'))] == [moved/'images'] * 3
    code, out, err = run('label', '--reference', 'ds/ref.png', 'ds/ref_mask.png', '--text', 'a red ellipse',
                         '--images', 'ds/images', '--out', 'ds/labels', *STAND_INS)
    assert code == 0 and '3 already done' in out, err              # the moved run resumes: same references
