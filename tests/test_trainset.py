"Issue 22 in the training rooms: hostile architecture names, manifest scores that are not numbers, the renamed floor."
import json
import pytest
from segwl.cli import main
from segwl.arch import parse_arch, ArchError
from segwl.trainset import synthetic_dataset, select_training_data
from segwl.finetune import TrainSettings

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread

TINY_FLAGS = ('--arch', 'tiny-unet', '--size', 32, '--batch-size', 2, '--no-pretrained', '--device', 'cpu',
              '--epochs', 1, '--quiet')


@pytest.fixture
def syn(tmp_path): return synthetic_dataset(tmp_path/'syn', n=6)

def rows(scores, **fields) -> str:
    "A manifest with one ok row per score, for im0.png, im1.png, ... (json.dumps writes NaN and Infinity as such)."
    return ''.join(json.dumps(dict(file=f'im{i}.png', status='ok', error=None, score=s, text_score=0.3, seconds=1)
                              | fields) + '\n' for i, s in enumerate(scores))

@pytest.mark.parametrize('arch', ['smp:Unet:tu-../../evil', 'unet-tu-local-dir:/etc', 'smp:Unet:tu-hf_hub:x/y',
                                  'unet-tu-/abs/path'])
def test_an_architecture_name_is_never_a_path(syn, tmp_path, capsys, arch):
    "issue 22: a timm encoder name that reads as a path or a hub id: exit 2 naming it and the valid forms."
    code = main(['train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--arch', arch,
                 *TINY_FLAGS[2:]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"segwl train: error: --arch {arch}: unknown ")
    assert 'Valid forms: torchvision: ' in err and 'smp:DECODER:ENCODER' in err
    assert 'Traceback' not in err and not (tmp_path/'m').exists()

def test_an_architecture_name_from_a_config_file_is_checked_too(syn, tmp_path, capsys):
    (tmp_path/'t.json').write_text(json.dumps({'arch': 'smp:Unet:tu-../../evil'}))
    code = main(['train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--config', tmp_path/'t.json'])
    err = capsys.readouterr().err
    assert code == 2 and f"settings file {tmp_path/'t.json'}: --arch smp:Unet:tu-../../evil: unknown encoder" in err

def test_a_real_timm_encoder_is_still_known():
    assert parse_arch('smp:Unet:tu-mobilenetv3_small_050') == ('smp', 'Unet', 'tu-mobilenetv3_small_050')
    with pytest.raises(ArchError, match='unknown encoder'): parse_arch('unet-tu-no_such_net')

@pytest.mark.parametrize('flag', ['--min-score', '--min-label-score'])
def test_min_score_on_scores_that_are_not_numbers(syn, tmp_path, capsys, flag):
    "issue 22: text, list, NaN and infinite scores never pass the floor, are counted apart, and nothing breaks."
    man = tmp_path/'manifest.jsonl'
    man.write_text(rows(['0.9', [0.9], float('nan'), float('inf'), 0.95, 0.2]))
    code = main(['train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--manifest', man,
                 flag, 0.5, *TINY_FLAGS])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert 'data: 1 of 6 images used, 1 below min score, 4 score not a number' in out
    info = json.loads((tmp_path/'m'/'model.json').read_text())
    assert info['settings']['min_label_score'] == 0.5 and 'min_score' not in info['settings']
    c = info['data']['counts']
    assert (c['used'], c['below_min_score'], c['score_not_a_number']) == (1, 1, 4)

def test_text_scores_that_are_not_numbers(syn):
    man = syn[0].parent/'m.jsonl'
    man.write_text(''.join(json.dumps(dict(file=f'im{i}.png', status='ok', error=None, score=0.9, text_score=t,
                                           seconds=1)) + '\n' for i, t in enumerate(['x', None, float('-inf'), 0.3])))
    pairs, c = select_training_data(*syn, manifest=man, min_text_score=0.25)
    assert [p.name for p, _ in pairs] == ['im3.png']
    assert (c['text_score_not_a_number'], c['below_min_text_score'], c['not_in_manifest']) == (2, 1, 2)

def test_old_min_score_key_and_flag_still_work(syn, tmp_path, capsys):
    "The training floor's old name: a --config file, an old model.json's settings, code; the note in --help."
    (tmp_path/'old.json').write_text(json.dumps({'min_score': 0.5, 'arch': 'tiny-unet'}))
    man = tmp_path/'manifest.jsonl'
    man.write_text(rows([0.9, 0.9, 0.2, 0.9, 0.9, 0.9]))
    code = main(['train', '--images', syn[0], '--masks', syn[1], '--out', tmp_path/'m', '--manifest', man,
                 '--config', tmp_path/'old.json', *TINY_FLAGS])
    out = capsys.readouterr().out
    assert code == 0 and 'data: 5 of 6 images used, 1 below min score' in out
    old = json.loads((tmp_path/'m'/'model.json').read_text())['settings']
    old['min_score'] = old.pop('min_label_score')                             # as a run before the rename wrote it
    assert TrainSettings.from_dict(old).min_label_score == 0.5
    assert TrainSettings(min_score=0.5) == TrainSettings(min_label_score=0.5)
    with pytest.raises(SystemExit): main(['train', '--help'])
    assert 'old name: min_score, --min-score, still accepted' in ' '.join(capsys.readouterr().out.split())

def test_only_the_verdicts_segwl_writes_count_as_reviewed(syn, tmp_path):
    "issue 22: `reviewed: \"yes\"` or a list is not a review: such a row is filtered like any other."
    verdicts = ['yes', ['accepted'], 'accepted', {'a': 1}, 'rejected', True]
    man = tmp_path/'manifest.jsonl'
    man.write_text(''.join(json.dumps(dict(file=f'im{i}.png', status='ok', error=None, score=0.1, text_score=0.3,
                                           seconds=1, reviewed=v)) + '\n' for i, v in enumerate(verdicts)))
    pairs, c = select_training_data(*syn, manifest=man, min_label_score=0.5)
    assert [p.name for p, _ in pairs] == ['im2.png', 'im4.png'] and c['reviewed'] == 2 and c['below_min_score'] == 4
    pairs, c = select_training_data(*syn, manifest=man, reviewed_only=True)
    assert [p.name for p, _ in pairs] == ['im2.png', 'im4.png'] and c['not_reviewed'] == 4
