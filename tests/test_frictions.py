"""Small frictions of a newcomer's second hour (issue 25, item 5): one progress flag under both its names, `segwl train`
answering a bad flag before PyTorch loads and pointing at the sub-folder that holds images."""
import subprocess, sys
import pytest
import segwl.cli as cli
from conftest import ROOT, segwl

PROGRESS = ['label', 'train', 'predict', 'evaluate', 'run-notebook', 'demo']


@pytest.mark.parametrize('command', PROGRESS)
def test_every_command_that_shows_progress_takes_both_spellings(command):
    p = cli.build_parser(command).commands[command]
    for flag in ('--no-progress', '--quiet'):
        action = next(a for a in p._actions if flag in a.option_strings)
        assert action.dest == 'no_progress', (command, flag)


def test_train_answers_a_bad_flag_before_torch_and_suggests_the_close_one(tmp_path):
    code = ("import sys\nfrom segwl.cli import main\ntry: main(sys.argv[1:])\n"
            "except SystemExit as e: print('exit', e.code)\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code, 'train', '--images', 'i', '--masks', 'm', '--out', 'o', '--quite'],
                       capture_output=True, text=True, env={'PYTHONPATH': str(ROOT), 'PATH': '/usr/bin:/bin'})
    assert r.stdout.split() == ['exit', '2', 'False'], r.stdout + r.stderr      # parsed and refused: no torch loaded
    assert 'unrecognized arguments: --quite (did you mean --quiet?)' in r.stderr


def test_train_points_at_the_sub_folder_with_images(tmp_path, examples):
    r = segwl('train', '--images', examples/'unlabeled', '--masks', tmp_path, '--out', tmp_path/'m', '--no-progress',
              check_rc=2)
    assert f"{examples/'unlabeled'}: no images to train on" in r.stderr
    assert f"these sub-folders hold images: {examples/'unlabeled'/'images'}" in r.stderr and 'Traceback' not in r.stderr
