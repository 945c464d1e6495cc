"The tuning panel, headless: controls set programmatically, results, caching, folder labelling, settings file, errors."
import json, threading
from pathlib import Path
import numpy as np
import pytest
from conftest import iou, segwl
from segwl.data import save_mask, load_mask
from segwl.seed import SeedSettings
from segwl.folder import read_manifest
from segwl.panels import TuningPanel, TINY_STAMP
from segwl.testing import ColourSegmenter, ColourScorer, synthetic_scene, scene_folder
from segwl.cli import build_parser, settings_from_args


class Gated(ColourSegmenter):
    "A stand-in that, once `gated`, waits in `set_image` (one call per image) until the test opens `gate`."
    def __init__(self):
        super().__init__()
        self.gated, self.gate, self.waiting = False, threading.Event(), threading.Event()

    def set_image(self, image):
        if self.gated:
            self.waiting.set()
            assert self.gate.wait(20), 'the test never opened the gate'
        super().set_image(image)

@pytest.fixture
def setup(tmp_path):
    ref, ref_mask = synthetic_scene((64, 80), seed=100)
    truth = scene_folder(tmp_path/'images', [(60, 72), (48, 64), (70, 56), (52, 52)])
    seg, scorer = ColourSegmenter(), ColourScorer(window=16, stride=8)
    panel = TuningPanel(ref, ref_mask, 'a red ellipse', tmp_path/'images', segmenter=seg, scorer=scorer,
                        settings=SeedSettings(trials=3), out=tmp_path/'labels', config_path=tmp_path/'s.json')
    return panel, seg, scorer, truth, tmp_path

def test_result_follows_the_controls(setup):
    p, seg, scorer, truth, tmp = setup
    assert p.error is None and iou(p.result.mask, truth[tmp/'images'/'scene_00.png']) > 0.9
    c = p.controls
    c['n_object'].value, c['n_background'].value, c['n_text'].value, c['n_text_background'].value = 5, 4, 2, 0
    r = p.result
    n = {k: len(v) for k, v in r.points.items()}
    assert n == dict(reference_object=5, reference_background=4, text_object=1, text_background=0,
                     text_object_dropped=1, text_background_dropped=0)   # the second peak is weak: dropped
    c['trials'].value = 4
    assert len(p.result.candidate_scores) == 4 and all(len(s) == 3 for s in p.result.candidate_scores)
    assert p.result.score == max(max(s) for s in p.result.candidate_scores)
    assert [s for _, s in p.candidates] == p.result.candidate_scores[p.result.best_trial]
    for name in ['scene_01.png', 'scene_02.png', 'scene_03.png']:
        c['image'].value = name
        assert p.error is None and iou(p.result.mask, truth[tmp/'images'/name]) > 0.9, name
    assert p.view.value[:3] == b'\xff\xd8\xff' and 'score' in p.summary.value

def test_peak_threshold_slider_keeps_and_drops_text_peaks(setup):
    """#12: the weak second peak is dropped at the default threshold (hollow marker, counted in the summary), kept at
    0; moving the threshold reuses the map and the embedding."""
    p, seg, scorer, truth, tmp = setup
    c = p.controls
    c['n_text'].value = 2
    assert (c['peak_threshold'].value, p.settings().peak_threshold) == (0.8, 0.8)
    pts = p.result.points
    assert (len(pts['text_object']), len(pts['text_object_dropped'])) == (1, 1)
    assert 'text object 1 (weak, dropped 1)' in p.summary.value
    c['peak_threshold'].value = 0.0                                  # every separated peak, as the seed did
    pts = p.result.points
    assert (len(pts['text_object']), len(pts['text_object_dropped']), p.settings().peak_threshold) == (2, 0, 0.0)
    assert 'text object 2 (weak, dropped 0)' in p.summary.value
    assert (seg.set_image_calls, len(scorer.texts)) == (1, 1)


def test_gates_are_off_by_default_then_say_absent(setup):
    "#12: the gates start off (None, level disabled); on, an image below them is absent with an empty mask and why."
    p, seg, scorer, truth, tmp = setup
    c = p.controls
    s = p.settings()
    assert (s.min_text_score, s.min_mask_score) == (None, None) and p.result.present
    assert (c['min_text_score'].disabled, c['min_mask_score'].disabled) == (True, True)
    text_score = p.result.text_score                                 # the colour scorer: 0.15 on scene_00
    c['min_text_score'].value = round(text_score + 0.05, 2)
    assert p.result.present and p.settings().min_text_score is None  # the level alone changes nothing
    c['min_text_score_on'].value = True
    assert not c['min_text_score'].disabled and p.settings().min_text_score == round(text_score + 0.05, 2)
    assert not p.result.present and not p.result.mask.any()
    assert "absent</b> (text score" in p.summary.value and '< min_text_score' in p.summary.value
    c['min_text_score'].value = round(text_score - 0.05, 2)
    assert p.result.present and iou(p.result.mask, truth[tmp/'images'/'scene_00.png']) > 0.9
    c['min_text_score_on'].value = False
    assert p.result.present and p.settings().min_text_score is None


def test_min_mask_score_gate(setup):
    "#12: the segmenter's score under `min_mask_score`: absent; the level goes to the settings file."
    p, seg, scorer, truth, tmp = setup
    class Unsure(ColourSegmenter):
        def predict(self, *a, **k):
            masks, scores = super().predict(*a, **k)
            return masks, scores * 0.6                               # the colour segmenter's 1.0 becomes 0.6
    p = TuningPanel(p.reference, p.reference_mask, 'a red ellipse', tmp/'images', Unsure(), scorer,
                    settings=SeedSettings(trials=2), config_path=tmp/'s.json')
    c = p.controls
    c['min_mask_score'].value = 0.7
    assert p.result.present and p.result.score == pytest.approx(0.6)
    c['min_mask_score_on'].value = True
    assert not p.result.present and not p.result.mask.any()
    assert 'absent</b> (score 0.600 < min_mask_score 0.7)' in p.summary.value
    c['min_mask_score'].value = 0.5
    assert p.result.present and iou(p.result.mask, truth[tmp/'images'/'scene_00.png']) > 0.9
    assert SeedSettings.from_json(p.save_settings()).min_mask_score == 0.5


def test_folder_run_counts_absent_images(setup):
    "#12: an image without the object comes back absent: counted in the status line, the log and the manifest."
    p, seg, scorer, truth, tmp = setup
    from PIL import Image
    Image.fromarray(np.full((60, 72, 3), (40, 120, 200), np.uint8)).save(tmp/'images'/'zz_empty.png')
    p2 = TuningPanel(p.reference, p.reference_mask, 'a red ellipse', tmp/'images', ColourSegmenter(),
                     ColourScorer(window=16, stride=8), settings=SeedSettings(trials=2, min_text_score=0.05),
                     out=tmp/'labels')
    assert p2.controls['min_text_score_on'].value and p2.controls['min_text_score'].value == 0.05
    p2.controls['image'].value = 'zz_empty.png'
    assert not p2.result.present and 'text score 0.000 < min_text_score 0.05' in p2.summary.value
    assert p2.label_folder(background=False) == dict(ok=4, absent=1, error=0, skipped=0, total=5)
    assert p2.status.value.startswith('5 of 5 images labelled, 1 absent, ')
    assert 'labelled 4, absent 1,' in p2.log.outputs[-1]['text']
    rows = {r['file']: r['status'] for r in read_manifest(tmp/'labels'/'manifest.jsonl')}
    assert rows['zz_empty.png'] == 'absent' and sum(v == 'ok' for v in rows.values()) == 4


def test_sliders_reuse_the_sam_embedding_and_the_similarity_map(setup):
    p, seg, scorer, truth, tmp = setup
    assert (seg.set_image_calls, len(scorer.texts)) == (1, 1)
    c = p.controls
    for k, v in [('n_object', 2), ('n_background', 12), ('n_text', 5), ('n_text_background', 3), ('trials', 6),
                 ('seed', 9)]:
        c[k].value = v
    assert (seg.set_image_calls, len(scorer.texts)) == (1, 1)      # cheap steps only
    assert seg.predict_calls == 3 + 3 + 3 + 3 + 3 + 6 + 6           # the trials did rerun
    c['window'].value = 24
    assert (seg.set_image_calls, len(scorer.texts), scorer.window) == (1, 2, 24)
    c['stride'].value = 4
    assert (seg.set_image_calls, len(scorer.texts), scorer.stride) == (1, 3, 4)
    c['window'].value = 16
    c['stride'].value = 8                                            # back to a map already computed
    assert len(scorer.texts) == 4                                    # (16, 4) is new, then (16, 8) is cached
    c['image'].value = 'scene_01.png'
    assert (seg.set_image_calls, len(scorer.texts)) == (2, 5)
    c['image'].value = 'scene_00.png'
    assert (seg.set_image_calls, len(scorer.texts)) == (3, 5)       # map cached; SAM holds one image at a time
    c['text'].value = 'something else'
    assert (len(scorer.texts), scorer.texts[-1]) == (6, 'something else')

def test_shrunk_targets_show_candidates_in_the_target_frame(tmp_path):
    ref, ref_mask = synthetic_scene((64, 80), seed=100)
    truth = scene_folder(tmp_path/'big', [(120, 160)])
    p = TuningPanel(ref, ref_mask, 'red', tmp_path/'big', ColourSegmenter(), ColourScorer(),
                    settings=SeedSettings(max_side=64, trials=2))
    assert p.error is None and p.result.mask.shape == (120, 160)
    assert all(m.shape == (120, 160) for m, _ in p.candidates)
    assert iou(p.result.mask, truth[tmp_path/'big'/'scene_00.png']) > 0.85

def test_reference_as_paths_and_the_examples_folder(examples):
    ref = examples/'reference'
    p = TuningPanel(ref/'Abyssinian_88.jpg', ref/'Abyssinian_88.png', 'a photo of a cat', examples/'unlabeled'/'images',
                    ColourSegmenter(), ColourScorer(), settings=SeedSettings(trials=1, max_side=128))
    assert p.error is None and p.ref_paths['image'].endswith('Abyssinian_88.jpg')
    assert (p.reference_mask == load_mask(ref/'Abyssinian_88.png')).all() and p.reference_mask.any()
    assert len(p.controls['image'].options) == len(list((examples/'unlabeled'/'images').iterdir()))

def test_saved_settings_round_trip_through_label_settings_and_the_cli(setup):
    p, seg, scorer, truth, tmp = setup
    c = p.controls
    c['n_object'].value, c['trials'].value, c['window'].value, c['stride'].value, c['seed'].value = 4, 2, 20, 6, 7
    path = p.save_settings()
    assert path == tmp/'s.json' and p.error is None and str(path) in p.log.outputs[-1]['text']
    s = SeedSettings.from_json(path)
    assert s == p.settings() and (s.n_object, s.trials, s.window, s.stride, s.seed) == (4, 2, 20, 6, 7)
    args = build_parser().parse_args(['label', '--reference-image', 'r.jpg', '--reference-mask', 'r.png', '--text', 't',
                                      '--images', 'i', '--out', 'o', '--config', str(path)])
    assert settings_from_args(args) == s

def test_folder_button_writes_what_segwl_label_writes(setup):
    p, seg, scorer, truth, tmp = setup
    p.controls['trials'].value = 2
    p.label_button.click()
    assert p.wait(60) == dict(ok=4, absent=0, error=0, skipped=0, total=4)
    out = tmp/'labels'
    rows = read_manifest(out/'manifest.jsonl')
    assert sorted(r['file'] for r in rows) == sorted(q.name for q in truth) and all(r['status'] == 'ok' for r in rows)
    assert p.progress.value == p.progress.max == 4 and p.progress.bar_style == 'success'
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['settings'] == p.settings().to_dict() and cfg['text'] == 'a red ellipse'
    assert cfg['models'] == dict(segmenter=dict(name='colour-segmenter', kind='segmenter', weights='stand-in'),
                                 scorer=dict(name='colour-scorer', kind='scorer', weights='stand-in'))
    for q, m in truth.items(): assert iou(load_mask(out/'masks'/f'{q.stem}.png'), m) > 0.9
    assert 'labelled 4' in p.log.outputs[-1]['text']
    p.label_button.click()                                          # resumes: nothing to do
    assert p.wait(60)['skipped'] == 4 and 'already done 4' in p.log.outputs[-1]['text']
    p.controls['seed'].value = 3
    p.label_button.click()                                          # other settings: refused, in the panel
    assert p.wait(60) is None and 'seed' in p.error and 'label the folder: error' in p.log.outputs[-1]['text']
    assert not p.label_button.disabled and not p.controls['seed'].disabled


@pytest.fixture
def gated(tmp_path):
    ref, ref_mask = synthetic_scene((64, 80), seed=100)
    truth = scene_folder(tmp_path/'images', [(60, 72), (48, 64), (70, 56), (52, 52)])
    seg = Gated()
    panel = TuningPanel(ref, ref_mask, 'a red ellipse', tmp_path/'images', seg, ColourScorer(window=16, stride=8),
                        settings=SeedSettings(trials=2), out=tmp_path/'labels')
    seg.gated = True                                                # from here on, the test paces the images
    yield panel, seg, truth, tmp_path/'labels'
    seg.gate.set()
    panel.wait(60)


def _settings_frozen(p) -> list:
    return [k for k, w in p.controls.items() if w.disabled]


def test_label_in_the_background_then_wait(gated):
    p, seg, truth, out = gated
    t = p.label_folder()
    assert seg.waiting.wait(20) and t.is_alive() and p.running          # blocked inside the first image
    assert (p.label_button.disabled, p.stop_button.disabled) == (True, False)
    assert _settings_frozen(p) == [k for k in p.controls if k != 'image']    # settings frozen, the image stays live
    assert p.status.value == '0 of 4 images labelled' and p.progress.bar_style == 'info'
    p.label_button.click()                                          # a second click starts nothing
    assert p._thread is t and 'already running' in p.log.outputs[-1]['text']
    seg.gate.set()
    assert p.wait(60) == dict(ok=4, absent=0, error=0, skipped=0, total=4) and not t.is_alive()
    assert (p.label_button.disabled, p.stop_button.disabled, p.running) == (False, True, False)
    assert _settings_frozen(p) == ['min_text_score', 'min_mask_score', 'map_mode']   # gates off; one kind of map
    assert p.progress.value == 4 and p.progress.bar_style == 'success'
    assert p.status.value.startswith('4 of 4 images labelled, ') and p.status.value.endswith(' s per image')
    assert sorted(q.name for q in (out/'masks').iterdir()) == [q.name for q in sorted(truth)]
    for q, m in truth.items(): assert iou(load_mask(out/'masks'/f'{q.stem}.png'), m) > 0.9


def test_stop_after_the_first_image_then_resume(gated):
    p, seg, truth, out = gated
    p.stop_button.click()                                           # nothing running: nothing to stop
    assert p.log.outputs == () or 'stopping' not in p.log.outputs[-1]['text']
    p.label_button.click()
    assert seg.waiting.wait(20)                                     # inside scene_00
    p.stop_button.click()
    assert p.stop_button.disabled and 'stopping after the image' in p.log.outputs[-1]['text']
    seg.gate.set()
    assert p.wait(60) is None and p.error is None
    rows = read_manifest(out/'manifest.jsonl')
    assert [(r['file'], r['status']) for r in rows] == [('scene_00.png', 'ok')]
    assert [q.name for q in (out/'masks').iterdir()] == ['scene_00.png'] and not list(out.glob('.*.part'))
    assert 'stopped after labelling 1 image(s)' in p.log.outputs[-1]['text']
    assert (p.progress.value, p.progress.bar_style, p.label_button.disabled) == (1, 'warning', False)
    assert p.status.value.startswith('1 of 4 images labelled, ') and p.status.value.endswith('(stopped)')
    p.label_button.click()                                          # resumes where it stopped
    assert p.wait(60) == dict(ok=3, absent=0, error=0, skipped=1, total=4)
    assert p.status.value.startswith('3 of 3 images labelled (1 done earlier)')
    assert sorted(r['file'] for r in read_manifest(out/'manifest.jsonl')) == [q.name for q in sorted(truth)]
    for q, m in truth.items(): assert iou(load_mask(out/'masks'/f'{q.stem}.png'), m) > 0.9


def test_the_panel_sets_its_image_again_after_a_run(gated):
    "refresh and the folder thread share one model: after the run used it, the panel's canvas must be set again."
    p, seg, truth, out = gated
    seg.gated = False
    n0 = seg.set_image_calls
    assert p.label_folder(background=False)['ok'] == 4
    assert seg.set_image_calls == n0 + 4
    p.controls['n_object'].value = 5                               # same image as before the run: SAM set again
    assert seg.set_image_calls == n0 + 5 and iou(p.result.mask, truth[sorted(truth)[0]]) > 0.9

def test_settings_file_runs_segwl_label(setup, capsys):
    p, seg, scorer, truth, tmp = setup
    p.controls['trials'].value = 1
    p.controls['n_object'].value = 2
    path = p.save_settings()
    ref, ref_mask = synthetic_scene((64, 80), seed=100)
    from PIL import Image
    Image.fromarray(ref).save(tmp/'ref.png')
    save_mask(ref_mask, tmp/'ref_mask.png')
    only = tmp/'one'
    only.mkdir()
    (only/'scene_00.png').write_bytes((tmp/'images'/'scene_00.png').read_bytes())
    segwl('label', '--reference-image', tmp/'ref.png', '--reference-mask', tmp/'ref_mask.png', '--text', 'x',
          '--images', only, '--out', tmp/'cli', '--models', 'tiny-random', '--config', path, '--no-progress',
          check_rc=0)
    assert json.loads((tmp/'cli'/'config.json').read_text())['settings'] == SeedSettings.from_json(path).to_dict()

def test_errors_land_in_the_output_widget(setup):
    p, seg, scorer, truth, tmp = setup
    (tmp/'images'/'broken.jpg').write_bytes(b'')
    p2 = TuningPanel(p.reference, p.reference_mask, 'x', tmp/'images', seg, scorer)
    p2.controls['image'].value = 'broken.jpg'
    assert p2.result is None and p2.view.value == b''
    assert 'broken.jpg' in p2.error and 'broken.jpg' in p2.log.outputs[-1]['text']
    p2.controls['image'].value = 'scene_00.png'
    assert p2.error is None and iou(p2.result.mask, truth[tmp/'images'/'scene_00.png']) > 0.9
    class Failing(ColourSegmenter):
        def predict(self, *a, **k): raise RuntimeError('backend exploded')
    p3 = TuningPanel(p.reference, p.reference_mask, 'x', tmp/'images', Failing(), scorer)
    assert 'broken.jpg' in p3.error                                  # the first image, at construction
    p3.controls['image'].value = 'scene_00.png'
    assert 'backend exploded' in p3.error
    assert any('backend exploded' in o['text'] for o in p3.log.outputs)   # message, then the traceback
    (tmp/'a_file').write_text('')
    p.config_path.value = str(tmp/'a_file'/'s.json')                # its folder is a file
    assert p.save_settings() is None and 'save settings: error' in ''.join(o['text'] for o in p.log.outputs)

def test_tiny_random_models_by_registry_name(examples, tmp_path):
    """The real backends (tiny twins) behind the proxies: one SAM embedding and one CLIP map while point sliders
    move; the dense map disables window and stride; the stamp shows in the panel, the log and the run's record."""
    import torch
    torch.set_num_threads(1)
    from segwl.data import load_image
    ref = examples/'reference'
    p = TuningPanel.from_names(ref/'Abyssinian_88.jpg', ref/'Abyssinian_88.png', 'a photo of a cat',
                               examples/'unlabeled'/'images', segmenter='sam-vit_b', scorer='clip', random=True,
                               device='cpu', settings=SeedSettings(trials=2, max_side=96), out=tmp_path/'labels')
    assert p.error is None, p.error
    assert (type(p.raw_segmenter).__name__, type(p.raw_scorer).__name__) == ('SamSegmenter', 'ClipScorer')
    assert p.models == dict(segmenter=dict(name='sam-vit_b', kind='segmenter', weights='tiny-random'),
                            scorer=dict(name='clip', kind='scorer', weights='tiny-random'))
    assert TINY_STAMP in p.backends.value and 'segmenter <b>sam-vit_b</b> (tiny random)' in p.backends.value
    c = p.controls
    assert (c['map_mode'].value, p.raw_scorer.map_kind()) == ('auto', 'dense')
    assert (c['map_mode'].disabled, c['window'].disabled, c['stride'].disabled) == (False, True, True)
    assert p.settings().window == p.raw_scorer.window == c['window'].value       # still recorded
    c['n_object'].value = 3
    c['n_text'].value = 1
    assert p.error is None and [len(p.result.points[k]) for k in ('reference_object', 'text_object')] == [3, 1]
    assert (p.segmenter.set_image_calls, p.scorer.map_calls) == (1, 1)
    assert p.result.mask.shape == load_image(p.image_path).shape[:2]
    c['map_mode'].value = 'windows'                            # CLIP's map is computed again, SAM's embedding kept
    assert p.error is None and p.raw_scorer.map_mode == 'windows' and p.settings().map_mode == 'windows'
    assert (p.segmenter.set_image_calls, p.scorer.map_calls) == (1, 2)
    assert (c['window'].disabled, c['stride'].disabled) == (False, False)
    c['map_mode'].value = 'dense'
    assert (c['window'].disabled, c['stride'].disabled, p.raw_scorer.map_mode) == (True, True, 'dense')
    assert p.label_folder(background=False) == dict(ok=5, absent=0, error=0, skipped=0, total=5)
    assert TINY_STAMP in p.log.outputs[-1]['text']
    cfg = json.loads((tmp_path/'labels'/'config.json').read_text())
    assert cfg['models'] == p.models and cfg['settings']['map_mode'] == 'dense'


def _run_doc_notebook(name: str, tmp_path, monkeypatch) -> dict:
    "The namespace after running the code cells of docs/`name` in docs/ (as JupyterLab does), temp files in `tmp_path`."
    from conftest import ROOT
    nb = json.loads((ROOT/'docs'/name).read_text())
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, 'tempdir', None)
    monkeypatch.chdir(ROOT/'docs')
    ns = {}
    for c in nb['cells']:
        if c['cell_type'] == 'code': exec(''.join(c['source']), ns)
    return ns


def test_the_screenshot_notebooks_run(tmp_path, monkeypatch):
    "docs/panel_demo, panel_tiny_demo and panel_canvas_demo.ipynb (sources of docs/panel*.png) still work."
    p = _run_doc_notebook('panel_demo.ipynb', tmp_path, monkeypatch)['panel']
    assert p.error is None and p.progress.value == 3 and 'labelled 3' in p.log.outputs[0]['text']
    assert p.models['scorer'] == dict(name='colour-scorer', kind='scorer', weights='stand-in', window='48', stride='16')
    assert (p.controls['map_mode'].disabled, p.controls['image'].value) == (True, 'scene_01.png')
    p = _run_doc_notebook('panel_tiny_demo.ipynb', tmp_path, monkeypatch)['panel']
    assert p.error is None and TINY_STAMP in p.backends.value
    assert [p.controls[k].disabled for k in ('map_mode', 'window', 'stride')] == [False, True, True]
    p = _run_doc_notebook('panel_canvas_demo.ipynb', tmp_path, monkeypatch)['panel']         # docs/panel_canvas.png
    assert type(p) is CanvasPanel and p.error is None and p.counts == dict(ok=3, absent=1, error=0, skipped=0, total=4)
    assert (p.controls['image'].value, len(p.result.instances), len(p.pairs)) == ('scene_3.png', 3, 2)


# ---------------------------------------------------------------- the canvas method's panel (#13)
from segwl.canvas import CanvasSettings
from segwl.panels import CanvasPanel
from segwl.testing import ColourConcept, concept_scene


@pytest.fixture
def concept_folder(tmp_path):
    "Scenes with 0, 1, 2 and 3 red ellipses among look-alikes, of several sizes and aspect ratios."
    from PIL import Image
    (tmp_path/'images').mkdir()
    scenes = {}
    for n, hw in enumerate([(180, 240), (260, 140), (180, 240), (260, 140)]):
        img, mask, parts = concept_scene(hw, n, seed=20 + n)
        Image.fromarray(img).save(tmp_path/'images'/f'scene_{n}.png')
        scenes[f'scene_{n}.png'] = (mask, len(parts))
    return tmp_path, scenes


@pytest.mark.parametrize('k', [1, 3])
def test_canvas_panel_instances_and_absent(concept_folder, k):
    "1 and 3 references of varied sizes: instance counts right, union IoU >= 0.95, absent where there is no object."
    tmp, scenes = concept_folder
    refs = [concept_scene(hw, 1, seed=2 + i)[:2] for i, hw in enumerate([(120, 260), (300, 90), (70, 70)][:k])]
    seg = ColourConcept()
    p = CanvasPanel(refs, None, tmp/'images', seg, out=tmp/'labels', config_path=tmp/'c.json')
    assert p.error is None and len(p.pairs) == k
    for name, (mask, n) in scenes.items():
        p.controls['image'].value = name
        r = p.result
        assert (p.error, len(r.instances), r.present, r.mask.shape) == (None, n, n > 0, mask.shape), name
        assert len(r.exemplars) == k and r.layout.references and len(r.layout.references) == k
        if n: assert iou(r.mask, mask) >= 0.95, name
        else: assert not r.mask.any() and 'absent' in p.summary.value
        assert len(p.candidates) == n and all(m.shape == mask.shape for m, _ in p.candidates)
    assert p.view.value[:3] == b'\xff\xd8\xff' and seg.set_image_calls == 4


def test_canvas_min_instance_score_slider_filters_without_a_model_call(concept_folder):
    tmp, scenes = concept_folder
    p = CanvasPanel([concept_scene((150, 110), 1, seed=1)[:2]], 'red', tmp/'images', ColourConcept())
    c = p.controls
    c['image'].value = 'scene_3.png'
    seg = p.raw_segmenter
    calls = (seg.set_image_calls, seg.segment_calls)
    scores = sorted(s for _, s in p.candidates)
    assert len(scores) == 3 and seg.texts[-1] == 'red'
    c['min_instance_score'].value = (scores[0] + scores[1]) / 2      # between the weakest and the next
    level = c['min_instance_score'].value
    assert scores[0] < level <= scores[1] and p.settings().min_instance_score == level        # steps of 0.001
    assert (len(p.result.instances), p.result.present) == (2, True)
    assert sorted(i.score for i in p.result.instances) == [s for s in scores if s >= level]
    c['min_instance_score'].value = 1.0
    assert (len(p.result.instances), p.result.present, p.result.mask.any()) == (0, False, False)
    assert "absent</b>: 0 instance(s) kept" in p.summary.value
    assert (seg.set_image_calls, seg.segment_calls) == calls          # filtering only: the answer was remembered
    c['text'].value = ''                                              # exemplars only: one new concept call
    assert seg.texts[-1] is None and seg.segment_calls == calls[1] + 1 and seg.set_image_calls == calls[0]
    c['layout'].value = 'top'                                         # another canvas: a new vision pass
    assert seg.set_image_calls == calls[0] + 1 and p.result.layout.side == 'top'
    assert p.settings() == CanvasSettings(min_instance_score=1.0, layout='top')



def test_canvas_folder_run_and_settings(concept_folder):
    "The folder button writes what `segwl label --method canvas` writes; absent rows counted; the settings file."
    tmp, scenes = concept_folder
    from PIL import Image
    from segwl.data import load_image
    ref_img, ref_mask = concept_scene((48, 64), 1, seed=60)[:2]
    Image.fromarray(ref_img).save(tmp/'ref.png')
    save_mask(ref_mask, tmp/'ref_mask.png')
    p = TuningPanel.from_names(tmp/'ref.png', tmp/'ref_mask.png', None, tmp/'images', segmenter='colour-concept',
                               method='canvas', out=tmp/'labels', config_path=tmp/'c.json')
    assert type(p) is CanvasPanel and (p.reference == load_image(tmp/'ref.png')).all()
    t = p.label_folder()
    assert p.wait(60) == dict(ok=3, absent=1, error=0, skipped=0, total=4) and not t.is_alive()
    assert p.status.value.startswith('4 of 4 images labelled, 1 absent, ')
    assert 'labelled 3, absent 1,' in p.log.outputs[-1]['text']
    out = tmp/'labels'
    rows = {r['file']: r for r in read_manifest(out/'manifest.jsonl')}
    assert {f: r['status'] for f, r in rows.items()} == {f: 'ok' if n else 'absent' for f, (_, n) in scenes.items()}
    for f, (mask, n) in scenes.items():
        if n: assert iou(load_mask(out/'masks'/f"{Path(f).stem}.png"), mask) >= 0.95
    cfg = json.loads((out/'config.json').read_text())
    assert (cfg['method'], cfg['models'], cfg['settings']) == (
        'canvas', dict(concept=dict(name='colour-concept', kind='concept', weights='stand-in')), p.settings().to_dict())
    assert cfg['reference'] == [dict(image=str((tmp/'ref.png').resolve()), mask=str((tmp/'ref_mask.png').resolve()),
                                     image_relative='../ref.png', mask_relative='../ref_mask.png')]   # both ways
    p.controls['min_instance_score'].value = 0.7
    path = p.save_settings()
    assert path == tmp/'c.json' and CanvasSettings.from_json(path).min_instance_score == 0.7
    assert p.label_folder(background=False) is None and 'min_instance_score' in p.error   # other settings: refused


def test_canvas_panel_tiny_sam3_by_registry_name(concept_folder):
    "The real SAM 3 backend (tiny random twin) behind the proxy: stamped; a slider costs no vision pass."
    tmp, scenes = concept_folder
    import torch
    torch.set_num_threads(1)
    refs = [concept_scene((48, 64), 1, seed=60)[:2]]
    p = CanvasPanel.from_names(refs, 'a red ellipse', tmp/'images', segmenter='sam3', random=True, device='cpu',
                               settings=CanvasSettings(max_side=64))
    assert p.error is None, p.error
    assert type(p.raw_segmenter).__name__ == 'Sam3Segmenter'
    assert p.models == dict(concept=dict(name='sam3', kind='concept', weights='tiny-random'))
    assert TINY_STAMP in p.backends.value and p.result.mask.shape == scenes['scene_0.png'][0].shape
    p.controls['min_instance_score'].value = 0.0                       # every instance in the target is kept
    assert len(p.result.instances) == len(p.candidates) and p.segmenter.set_image_calls == 1
    assert p.segmenter.segment_calls == 1


# ------------------------------------------------------------------ several classes (issue 23)
def _class_setup(tmp_path):
    "A classes file of red, green and blue beside its reference files, two 3-class scenes."
    from PIL import Image
    from segwl.testing import classes_scene, CLASS_COLOURS
    names, entries = list(CLASS_COLOURS), []
    (tmp_path/'refs').mkdir()
    for i, n in enumerate(names):
        im, lm, _ = classes_scene((90, 120), [int(j == i) for j in range(3)], seed=40 + i)
        Image.fromarray(im).save(tmp_path/'refs'/f'{n}.png')
        Image.fromarray((lm > 0).astype(np.uint8) * 255).save(tmp_path/'refs'/f'{n}_mask.png')
        entries.append({'name': n, 'text': f"a {n} thing", 'references': [[f'{n}.png', f'{n}_mask.png']]})
    (tmp_path/'refs'/'classes.json').write_text(json.dumps({'classes': entries}))
    (tmp_path/'images').mkdir()
    scenes = {}
    for i, counts in enumerate([(1, 1, 0), (0, 1, 1)]):
        im, scenes[f'k{i}.png'], _ = classes_scene((120, 160), counts, seed=70 + i)
        Image.fromarray(im).save(tmp_path/'images'/f'k{i}.png')
    return tmp_path/'refs'/'classes.json', scenes

def test_class_menu_switches_references_and_text(tmp_path):
    "Picking a class tunes with its reference and text: the chosen mask is that class's object, as known."
    from segwl.testing import NamedColourScorer
    from segwl.data import load_reference
    classes, scenes = _class_setup(tmp_path)
    p = TuningPanel(None, None, None, tmp_path/'images', ColourSegmenter(), NamedColourScorer(), classes=classes,
                    settings=SeedSettings(trials=2, min_text_score=1e-3))
    assert p.controls['class'].options == ('red', 'green', 'blue') and p.text == 'a red thing'
    for name, k in (('green', 2), ('red', 1)):
        p.controls['class'].value = name
        ref, mask = load_reference(tmp_path/'refs'/f'{name}.png', tmp_path/'refs'/f'{name}_mask.png')
        assert (p.text, p.picked_class.name) == (f"a {name} thing", name)
        assert np.array_equal(p.reference, ref) and np.array_equal(p.reference_mask, mask)
        assert iou(p.result.mask, scenes['k0.png'] == k) > 0.9
    p.controls['class'].value = 'blue'                                       # not in the first scene: absent
    assert p.result.present is False
    blue = p.result.text_score
    p.controls['text'].value = 'a green thing'                               # the text box edits blue's text
    assert p.class_texts['blue'] == 'a green thing' and p.result.text_score > blue   # green is there
    p.controls['class'].value = 'red'
    p.controls['class'].value = 'blue'
    assert p.text == 'a green thing'                                         # kept while another class was tuned

def test_label_with_all_classes_draws_the_label_map(tmp_path):
    "Every class at once: the known label map, each class's verdict, a picture in the classes' colours."
    import io
    from PIL import Image
    from segwl.testing import NamedColourScorer
    from segwl.classes import PALETTE
    classes, scenes = _class_setup(tmp_path)
    p = TuningPanel(None, None, None, tmp_path/'images', ColourSegmenter(), NamedColourScorer(), classes=classes,
                    settings=SeedSettings(trials=2, min_text_score=1e-3), out=tmp_path/'labels')
    p.controls['image'].value = 'k1.png'
    res = p.label_classes()
    assert p.error is None and np.array_equal(res.label_map, scenes['k1.png'])
    assert {n: v['status'] for n, v in res.classes.items()} == dict(red='absent', green='ok', blue='ok')
    assert 'green</b> ok' in p.class_summary.value and 'red</b> absent' in p.class_summary.value
    pic = np.asarray(Image.open(io.BytesIO(p.class_view.value)).convert('RGB')).astype(int)
    for k in (2, 3):                                                         # each class's colour in the legend
        assert (np.abs(pic - PALETTE[k]).max(-1) < 12).sum() > 30, k
    n = p.label_folder(background=False)
    assert (n['ok'], n['error']) == (2, 0)
    cfg = json.loads((tmp_path/'labels'/'config.json').read_text())
    assert [c['name'] for c in cfg['classes']] == ['red', 'green', 'blue']
    assert cfg['classes'][0]['references'] == [[str(tmp_path/'refs'/f) for f in ('red.png', 'red_mask.png')]]
    assert (tmp_path/'labels'/'classes.json').is_file()

def test_canvas_class_menu_takes_every_reference_of_the_class(tmp_path):
    from segwl.panels import CanvasPanel
    from segwl.testing import classes_scene
    classes, scenes = _class_setup(tmp_path)
    two = lambda s: (lambda x: (x[0], x[1] > 0))(classes_scene((90, 120), [0, 1, 0], seed=s))
    data = json.loads(classes.read_text())['classes']
    listed = [(c['name'], None, [[tmp_path/'refs'/f for f in pair] for pair in c['references']]) for c in data]
    listed[1] = ('green', None, [two(50), two(51)])
    p = CanvasPanel.from_names(None, None, tmp_path/'images', segmenter='colour-concept', classes=listed)
    assert (len(p.pairs), p.text) == (1, '')
    p.controls['class'].value = 'green'
    assert len(p.pairs) == 2 and iou(p.result.mask, scenes['k0.png'] == 2) > 0.95
    res = p.label_classes()
    assert np.array_equal(res.label_map, scenes['k0.png'])

def test_classes_exclude_a_reference(tmp_path):
    from segwl.errors import SegwlError
    classes, scenes = _class_setup(tmp_path)
    ref, mask = synthetic_scene((64, 80), seed=100)
    with pytest.raises(SegwlError, match='give classes alone'):
        TuningPanel(ref, mask, None, tmp_path/'images', ColourSegmenter(), ColourScorer(), classes=classes)

def test_the_classes_screenshot_notebook_runs(tmp_path, monkeypatch):
    "docs/panel_classes_demo.ipynb (docs/panel_classes.png): green picked, its two references, every class labelled."
    p = _run_doc_notebook('panel_classes_demo.ipynb', tmp_path, monkeypatch)['panel']
    assert type(p) is CanvasPanel and p.error is None and (p.picked_class.name, len(p.pairs)) == ('green', 2)
    assert {n: v['status'] for n, v in p.class_result.classes.items()} == dict(red='ok', green='ok', blue='ok')
    assert 'STAND-IN' in p.backends.value
