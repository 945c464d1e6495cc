"""The Ray engine against the local one (label: seed and canvas; predict), on a local Ray instance of 2 CPUs started
here (never another address)."""
import json, subprocess, sys, textwrap
from pathlib import Path
import pytest
from PIL import Image
from conftest import checkout_env, ray_pythonpath
from segwl.engine import EngineError, label_folder_ray, predict_folder_ray, ray_session, _ray
from segwl.recipe import LabellerSpec
from segwl.folder import label_folder, read_manifest
from segwl.testing import synthetic_scene, concept_scene

pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning:ray.data.context')   # Ray Data's own
REF = synthetic_scene((60, 90), seed=1)


def colour_spec() -> LabellerSpec:
    return LabellerSpec(REF, 'a red ellipse', dict(trials=2), 'colour-segmenter', 'colour-scorer', device='cpu')


def tiny_spec() -> LabellerSpec:
    return LabellerSpec(REF, 'a red ellipse', dict(trials=2), 'sam-vit_b', 'clip', random=True, device='cpu')


@pytest.fixture(scope='module')
def ray_address(tmp_path_factory):
    "The engine's own local Ray instance (2 CPUs) for this module; its address, for drivers in other processes."
    pytest.importorskip('ray', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    pytest.importorskip('ray.data', reason='the Ray engine needs Ray Data: pip install "ray[data]"')
    with pytest.MonkeyPatch.context() as mp:       # the instance's processes and its drivers' start in time
        mp.setenv('PYTHONPATH', ray_pythonpath(tmp_path_factory.mktemp('shim')))
        session = ray_session(None, workers=2)
        try: ray = session.__enter__()
        except EngineError as e: pytest.skip(f"a local Ray instance could not start on this machine: {e}")
        try: yield ray.get_runtime_context().gcs_address
        finally: session.__exit__(None, None, None)


@pytest.fixture(scope='module')
def folder(engine_images) -> Path: return engine_images


def local_run(spec: LabellerSpec, folder: Path, out: Path) -> Path:
    "`out`, where the local engine labelled `folder` with `spec`'s labeller."
    label_folder(spec.build(), folder, out, progress=False, config=dict(models=spec.models()))
    return out


@pytest.fixture(scope='module')
def tiny_local(folder, tmp_path_factory) -> Path:
    "The local engine's output for the tiny random SAM and CLIP."
    return local_run(tiny_spec(), folder, tmp_path_factory.mktemp('tiny')/'local')


def rows_of(out: Path) -> dict:
    "`{file: row}` of a manifest, `seconds` left out; one row per file is asserted."
    rows = read_manifest(out/'manifest.jsonl')
    assert len(rows) == len({r['file'] for r in rows}), [r['file'] for r in rows]
    return {r['file']: {k: v for k, v in r.items() if k != 'seconds'} for r in rows}


def assert_same(a: Path, b: Path):
    "Same rows (but `seconds`) and the same mask and instances files, byte for byte; no `.part` leftovers."
    assert rows_of(a) == rows_of(b)
    for sub in ('masks', 'instances'):
        names = sorted(p.name for p in (a/sub).glob('*'))
        assert names == sorted(p.name for p in (b/sub).glob('*')), sub
        for n in names: assert (a/sub/n).read_bytes() == (b/sub/n).read_bytes(), f"{sub}/{n}"
    assert not list(b.rglob('*.part'))


def test_no_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'ray', None)
    with pytest.raises(EngineError, match=r'pip install "segwl\[ray\]"'): _ray()


def test_stand_ins_match_local(ray_address, folder, tmp_path):
    spec = colour_spec()
    n_local = label_folder(spec.build(), folder, tmp_path/'local', progress=False, config=dict(models=spec.models()))
    n_ray = label_folder_ray(spec, folder, tmp_path/'ray', workers=2, progress=False)
    assert n_ray == n_local == dict(ok=6, absent=0, error=3, skipped=0, total=9)
    assert_same(tmp_path/'local', tmp_path/'ray')
    statuses = {f: r['status'] for f, r in rows_of(tmp_path/'ray').items()}
    assert [f for f, s in sorted(statuses.items()) if s == 'error'] == ['broken.png', 'twin.jpg', 'twin.png']
    cfg = json.loads((tmp_path/'ray'/'config.json').read_text())
    assert cfg['models']['segmenter']['name'] == 'colour-segmenter' and cfg['settings']['trials'] == 2


def test_tiny_sam_clip_match_local(ray_address, folder, tiny_local, tmp_path):
    n = label_folder_ray(tiny_spec(), folder, tmp_path/'ray', workers=2, progress=False)
    assert (n['ok'] + n['absent'], n['error']) == (6, 3)
    assert_same(tiny_local, tmp_path/'ray')


# A driver that kills itself when it writes its `kill_at`-th result (the last of its JSON arguments): that mask is on
# disk, its row is not, and another mask is half written.
KILL_ON_WRITE = """
import json, os, signal, sys
from pathlib import Path
import segwl.engine as E
from segwl.data import atomic_path
args = json.loads(sys.argv[1])
write, calls = E.write_result, []
def write_result(res, out, collide):
    row = write(res, out, collide)
    calls.append(row['file'])
    if len(calls) == args[-1]:
        with atomic_path(out/'masks'/'half.png') as tmp:
            Path(tmp).write_bytes(b'half')
            os.kill(os.getpid(), signal.SIGKILL)
    return row
E.write_result = write_result
"""

KILLED_DRIVER = KILL_ON_WRITE + """
from segwl.testing import synthetic_scene
images, out, address, kill_at = args
spec = E.LabelerSpec(synthetic_scene((60, 90), seed=1), 'a red ellipse', dict(trials=2), 'colour-segmenter',
                     'colour-scorer', device='cpu')         # the old spelling, kept by segwl.engine
E.label_folder_ray(spec, images, out, workers=2, address=address, progress=False)
"""


@pytest.fixture(scope='module')
def colour_local(folder, tmp_path_factory) -> Path:
    "The local engine's output for the colour stand-ins."
    return local_run(colour_spec(), folder, tmp_path_factory.mktemp('colour')/'local')


def test_killed_run_resumes(ray_address, folder, colour_local, tmp_path):
    """SIGKILL on the 4th row's write, then a rerun: each image labelled once (the stand-ins: the kill, not the models,
    is under test; tiny SAM and CLIP on Ray are test_tiny_sam_clip_match_local's)."""
    out, script = tmp_path/'ray', tmp_path/'driver.py'
    script.write_text(textwrap.dedent(KILLED_DRIVER))
    arg = json.dumps([str(folder), str(out), ray_address, 4])
    r = subprocess.run([sys.executable, str(script), arg], env=checkout_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == -9, r.stderr[-3000:]                             # SIGKILLed midway
    assert len(read_manifest(out/'manifest.jsonl')) == 3                     # 3 rows; a 4th mask without its row
    assert len(list((out/'masks').glob('*.png'))) >= 3 and list(out.rglob('.*.part'))
    n = label_folder_ray(colour_spec(), folder, out, workers=2, progress=False)
    assert n['skipped'] + n['ok'] + n['absent'] + n['error'] == n['total'] == 9
    assert n['skipped'] <= 3
    assert_same(colour_local, out)                                           # every image exactly once, as local


def test_cli_engine_ray_matches_local(folder, ray_address, tmp_path, capsys):
    "`segwl label --engine ray` with two references writes what `--engine local` writes; a local rerun resumes it."
    import segwl.cli as cli
    ref = tmp_path/'ref.png'
    Image.fromarray(REF[0]).save(ref)
    Image.fromarray(REF[1]).save(tmp_path/'ref_mask.png')
    for a, name in zip(synthetic_scene((70, 50), seed=2), ('ref2.png', 'ref2_mask.png')):
        Image.fromarray(a).save(tmp_path/name)
    base = ['label', '--reference', ref, tmp_path/'ref_mask.png', '--reference', tmp_path/'ref2.png',
            tmp_path/'ref2_mask.png', '--text', 'a red ellipse', '--images', folder,
            '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--trials', '2', '--no-progress']
    assert cli.main([str(a) for a in [*base, '--out', tmp_path/'local']]) == 1          # the broken file: exit 1
    code = cli.main([str(a) for a in [*base, '--out', tmp_path/'ray', '--engine', 'ray', '--ray-address',
                                      ray_address, '--workers', '2']])
    out, err = capsys.readouterr()
    assert code == 1, err[-2000:]
    assert_same(tmp_path/'local', tmp_path/'ray')
    assert len(json.loads((tmp_path/'ray'/'config.json').read_text())['reference']) == 2
    assert cli.main([str(a) for a in [*base, '--out', tmp_path/'ray']]) == 1
    assert '0 labelled, 0 absent, 3 failed, 6 already done' in capsys.readouterr().out


# The canvas method on Ray: the same masks, rows and instances files (COCO RLE) as the local engine.

@pytest.fixture(scope='module')
def concept_folder(tmp_path_factory) -> Path:
    "Scenes of 0 to 3 red ellipses among look-alikes (absent and ok rows), a broken file, and two references."
    d = tmp_path_factory.mktemp('canvas')
    for i, hw in enumerate([(96, 128), (100, 80), (80, 110), (120, 160)]):
        (d/'images').mkdir(exist_ok=True)
        Image.fromarray(concept_scene(hw, i, seed=30 + i)[0]).save(d/'images'/f"c{i}.png")
    (d/'images'/'broken.png').write_text('no image')
    for s in (1, 2):
        img, mask, _ = concept_scene((90, 120), 1, seed=s)
        Image.fromarray(img).save(d/f"ref{s}.png")
        Image.fromarray(mask).save(d/f"ref{s}_mask.png")
    return d


def test_cli_canvas_on_ray_matches_local(concept_folder, ray_address, tmp_path, capsys):
    "`segwl label --method canvas --engine ray` (no longer refused) writes what the local engine writes."
    import segwl.cli as cli
    d = concept_folder
    base = ['label', '--method', 'canvas', '--reference', d/'ref1.png', d/'ref1_mask.png', '--reference',
            d/'ref2.png', d/'ref2_mask.png', '--images', d/'images', '--segmenter', 'colour-concept',
            '--min-score', '0.6', '--no-progress']
    assert cli.main([str(a) for a in [*base, '--out', tmp_path/'local']]) == 1           # the broken file: exit 1
    code = cli.main([str(a) for a in [*base, '--out', tmp_path/'ray', '--engine', 'ray', '--ray-address',
                                      ray_address, '--workers', '2']])
    out, err = capsys.readouterr()
    assert code == 1, err[-2000:]
    assert '3 labelled, 1 absent, 1 failed, 0 already done' in out, out
    assert_same(tmp_path/'local', tmp_path/'ray')
    rows = rows_of(tmp_path/'ray')
    assert {f: r.get('instances') for f, r in rows.items()} == {'c0.png': 0, 'c1.png': 1, 'c2.png': 2, 'c3.png': 3,
                                                                'broken.png': None}
    instances = json.loads((tmp_path/'ray'/'instances'/'c3.json').read_text())
    assert len(instances) == 3 and {'rle', 'score', 'box'} <= set(instances[0])
    cfg = json.loads((tmp_path/'ray'/'config.json').read_text())
    assert (cfg['method'], cfg['models']['concept']['name'], cfg['settings']['min_instance_score']) == (
        'canvas', 'colour-concept', 0.6)                                      # --min-score: the old flag, mapped
    assert cli.main([str(a) for a in [*base, '--out', tmp_path/'ray']]) == 1              # a local rerun resumes it
    assert '0 labelled, 0 absent, 1 failed, 4 already done' in capsys.readouterr().out


# segwl predict on Ray: a tiny-unet model, each worker loading it once; the driver writes what predict_folder writes.

@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory) -> Path:
    "A model folder of the test-size architecture (one epoch on six synthetic images)."
    from segwl.finetune import TrainSettings, synthetic_dataset, train
    d = tmp_path_factory.mktemp('model')
    imgs, masks = synthetic_dataset(d/'syn')
    train(imgs, masks, d/'model', TrainSettings(arch='tiny-unet', size=32, epochs=1, batch_size=2, pretrained=False,
                                                device='cpu', val_fraction=0), progress=False)
    return d/'model'


@pytest.fixture(scope='module')
def predicted_local(tiny_model, folder, tmp_path_factory) -> Path:
    "The local engine's predictions for `folder` (a broken file and two files with one stem: error rows)."
    from segwl.finetune import predict_folder
    out = tmp_path_factory.mktemp('predict')/'local'
    rows = predict_folder(tiny_model, folder, out, device='cpu', progress=False)
    assert [r['status'] for r in rows].count('error') == 3 and len(rows) == 9
    return out


def test_cli_predict_on_ray_matches_local(tiny_model, folder, predicted_local, ray_address, tmp_path, capsys):
    "`segwl predict --engine ray` writes the local engine's masks, rows and config; a local rerun resumes it."
    import segwl.cli as cli
    base = ['predict', '--model', tiny_model, '--images', folder, '--device', 'cpu', '--quiet']
    code = cli.main([str(a) for a in [*base, '--out', tmp_path/'ray', '--engine', 'ray', '--ray-address', ray_address,
                                      '--workers', '2']])
    out, err = capsys.readouterr()
    assert code == 1, err[-2000:]                                            # three error rows
    assert '6 masks written' in out and 'broken.png' in err
    assert_same(predicted_local, tmp_path/'ray')
    cfg = lambda o: json.loads((o/'config.json').read_text())
    assert cfg(tmp_path/'ray') == cfg(predicted_local)
    done = {p.name: p.stat().st_mtime_ns for p in (tmp_path/'ray'/'masks').iterdir()}
    assert cli.main([str(a) for a in [*base, '--out', tmp_path/'ray']]) == 1
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path/'ray'/'masks').iterdir()} == done   # none redone
    assert_same(predicted_local, tmp_path/'ray')


KILLED_PREDICT = KILL_ON_WRITE + """
images, out, model, address, kill_at = args
E.predict_folder_ray(model, images, out, workers=2, address=address, device='cpu', progress=False)
"""


def test_killed_predict_resumes(tiny_model, folder, predicted_local, ray_address, tmp_path):
    "A Ray predict SIGKILLed midway, then run again: every image predicted exactly once, as the local engine does."
    out, script = tmp_path/'ray', tmp_path/'driver.py'
    script.write_text(textwrap.dedent(KILLED_PREDICT))
    arg = json.dumps([str(folder), str(out), str(tiny_model), ray_address, 4])
    r = subprocess.run([sys.executable, str(script), arg], env=checkout_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == -9, r.stderr[-3000:]                             # SIGKILLed midway
    assert len(read_manifest(out/'manifest.jsonl')) == 3                     # 3 rows; a 4th mask without its row
    assert list(out.rglob('.*.part'))
    rows = predict_folder_ray(tiny_model, folder, out, workers=2, device='cpu', progress=False)
    assert sorted(r['file'] for r in rows) == sorted(p.name for p in folder.iterdir())
    assert_same(predicted_local, out)                                        # every image exactly once, as local


@pytest.mark.parametrize('argv, message', [
    (['predict', '--workers', '2'], '--workers and --ray-address go with --engine ray'),
    (['predict', '--ray-address', 'ray://head:10001'], '--workers and --ray-address go with --engine ray'),
    (['predict', '--engine', 'ray', '--workers', '0'], '--workers 0: expected at least 1'),
    (['label', '--method', 'canvas', '--workers', '2'], '--workers and --ray-address go with --engine ray')])
def test_cli_engine_usage_errors(argv, message, folder, tmp_path, capsys):
    "Engine flags that do not fit: exit 2 with the reason, before any model or Ray starts."
    import segwl.cli as cli
    more = dict(predict=['--model', tmp_path/'no-model'],
                label=['--reference', tmp_path/'r.png', tmp_path/'m.png', '--segmenter', 'colour-concept'])[argv[0]]
    code = cli.main([str(a) for a in [*argv, *more, '--images', folder, '--out', tmp_path/'out']])
    err = capsys.readouterr().err
    assert code == 2 and message in err and 'Traceback' not in err, err
    assert not (tmp_path/'out').exists()


def test_predict_on_ray_checks_the_model_first(folder, tmp_path, capsys):
    "A model folder that is not one: exit 2 naming it, before Ray starts (no instance needed)."
    pytest.importorskip('ray', reason='the Ray engine is an optional extra: pip install "segwl[ray]"')
    import segwl.cli as cli
    (tmp_path/'model').mkdir()
    code = cli.main([str(a) for a in ['predict', '--model', tmp_path/'model', '--images', folder, '--out',
                                      tmp_path/'out', '--engine', 'ray']])
    err = capsys.readouterr().err
    assert code == 2 and 'no model.json' in err and str(tmp_path/'model') in err, err
