"The recipe: one `LabellerSpec` for both methods, the `Labeller` protocol and its result, the old names and old runs."
import ast, json
import numpy as np
import pytest
from PIL import Image
from conftest import ROOT, cli as run
import segwl.cli as cli
from segwl.data import SegwlError, BadReferenceError
from segwl.protocols import Labeller, LabelResult, Instance
from segwl.recipe import LabellerSpec, METHODS, MAX_REFERENCES
from segwl.seed import SeedSettings, SeedResult
from segwl.canvas import CanvasSettings, CanvasResult
from segwl.folder import read_manifest
from segwl.testing import synthetic_scene, concept_scene, scene_folder

REF = synthetic_scene((60, 90), seed=1)
CREF = concept_scene((90, 120), 1, seed=1)[:2]


def specs():
    return dict(seed=LabellerSpec(REF, 'a red ellipse', dict(trials=2), 'colour-segmenter', 'colour-scorer'),
                canvas=LabellerSpec([CREF], None, None, 'colour-concept', method='canvas'))


@pytest.mark.parametrize('method', list(METHODS))
def test_every_result_has_the_common_fields(method):
    "Both methods through one recipe: a `Labeller`, and a `LabelResult` whose common fields have their types."
    lab = specs()[method].build(device='cpu')
    assert isinstance(lab, Labeller) and isinstance(lab, METHODS[method].labeller_class)
    assert (len(lab.references), lab.settings) == (1, specs()[method].settings)
    im, truth, parts = concept_scene((80, 100), 2, seed=9)
    r = lab.label(im)
    assert isinstance(r, LabelResult) and isinstance(r, dict(seed=SeedResult, canvas=CanvasResult)[method])
    assert r.mask.shape == im.shape[:2] and r.mask.dtype == bool
    assert isinstance(r.score, float) and isinstance(r.present, bool) and isinstance(r.candidate_scores, list)
    assert r.text_score is None or isinstance(r.text_score, float)
    if method == 'seed': assert r.instances is None and isinstance(r.text_score, float)
    else:
        assert len(r.instances) == 2 and all(isinstance(i, Instance) for i in r.instances)
        for i in r.instances:
            ys, xs = np.nonzero(i.mask)
            assert i.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) and 0 <= i.score <= 1
        assert r.text_score is None and r.present


def test_messages_name_the_fix_in_the_callers_words():
    "The same mistake, in Python's words and in the command line's (the flags `segwl label` passes as terms)."
    flags = cli.label_terms()
    for terms, text, weights in ((None, 'needs text', 'option segmenter checkpoint'),
                                 (flags, 'needs --text', '--sam-checkpoint')):
        with pytest.raises(SegwlError, match=text): LabellerSpec(REF, ' ', terms=terms)
        with pytest.raises(SegwlError, match=f'{weights}: real weights, but tiny random models'):
            LabellerSpec(REF, 'x', random=True, options=dict(segmenter=dict(checkpoint='s.pth')), terms=terms)
    with pytest.raises(BadReferenceError, match=f'{MAX_REFERENCES + 1} references: the canvas method takes 1 to 5'):
        LabellerSpec([CREF] * (MAX_REFERENCES + 1), method='canvas', terms=flags)
    with pytest.raises(SegwlError, match='--scorer colour-scorer: the canvas method has no scorer'):
        LabellerSpec([CREF], None, scorer='colour-scorer', method='canvas', terms=flags)


def test_the_old_names_still_import():
    from segwl.pseudolabel import PseudoLabeler, LabelSettings, LabelResult as Old, MAX_REFERENCES as M
    from segwl.concept import CanvasLabeler, ConceptResult, Instance as OldInstance, connected_parts  # noqa: F401
    from segwl.engine import LabelerSpec
    from segwl.panels import TuningPanel, SeedPanel
    import segwl.seed, segwl.canvas
    assert (PseudoLabeler, LabelSettings, Old, M) == (segwl.seed.SeedLabeller, SeedSettings, LabelResult, 5)
    assert (CanvasLabeler, ConceptResult, OldInstance) == (segwl.canvas.CanvasLabeller, CanvasResult, Instance)
    assert LabelerSpec is LabellerSpec and issubclass(SeedPanel, TuningPanel)


def test_old_settings_names_are_read():
    "`min_score` (the seed's gate, the canvas's floor) is read from files, taken as a keyword, and refused twice."
    assert SeedSettings.from_dict(dict(min_score=0.4)).min_mask_score == 0.4
    assert CanvasSettings.from_dict(dict(min_score=0.4)).min_instance_score == 0.4
    assert LabellerSpec([CREF], None, dict(min_score=0.3), method='canvas').settings.min_instance_score == 0.3
    with pytest.raises(SegwlError, match='min_score and min_mask_score are one setting'):
        SeedSettings.from_dict(dict(min_score=0.4, min_mask_score=0.5))


@pytest.fixture
def canvas_job(tmp_path):
    for k, (im, m) in enumerate([CREF]):
        Image.fromarray(im).save(tmp_path/f'ref{k}.png')
        Image.fromarray(m).save(tmp_path/f'ref{k}_mask.png')
    (tmp_path/'images').mkdir()
    for n in range(3): Image.fromarray(concept_scene((70, 90), n, seed=40 + n)[0]).save(tmp_path/'images'/f'c{n}.png')
    return ['label', '--method', 'canvas', '--segmenter', 'colour-concept', '--reference', tmp_path/'ref0.png',
            tmp_path/'ref0_mask.png', '--images', tmp_path/'images', '--out', tmp_path/'out', '--no-progress']




def test_a_run_from_before_the_rename_resumes(canvas_job, tmp_path):
    "A folder whose config.json says `min_score` (an older segwl) resumes, renamed; another value is refused."
    code, out, err = run(*canvas_job, '--min-score', '0.6', '--limit', '2')
    assert code == 0 and '1 labelled, 1 absent, 0 failed, 0 already done' in out, (out, err)
    cfg_path = tmp_path/'out'/'config.json'
    cfg = json.loads(cfg_path.read_text())
    assert cfg['settings']['min_instance_score'] == 0.6 and 'min_score' not in cfg['settings']
    cfg['settings'] = {('min_score' if k == 'min_instance_score' else k): v for k, v in cfg['settings'].items()}
    cfg_path.write_text(json.dumps(cfg))                                     # as an older segwl wrote it
    code, out, err = run(*canvas_job, '--min-instance-score', '0.6')
    assert code == 0 and '1 labelled, 0 absent, 0 failed, 2 already done' in out, (out, err)
    settings = json.loads(cfg_path.read_text())['settings']
    assert settings['min_instance_score'] == 0.6 and 'min_score' not in settings   # renamed, its value kept
    assert len(read_manifest(tmp_path/'out'/'manifest.jsonl')) == 3
    code, out, err = run(*canvas_job, '--min-instance-score', '0.7')
    assert code == 2 and 'min_instance_score' in err and '--no-resume' in err


def test_a_seed_run_from_before_the_rename_resumes(tmp_path):
    "The seed's gate, off (null) in an older config.json: the run resumes without a word."
    Image.fromarray(REF[0]).save(tmp_path/'ref.png')
    Image.fromarray(REF[1]).save(tmp_path/'ref_mask.png')
    scene_folder(tmp_path/'images', [(40, 60), (50, 40)], seed=3)
    argv = ['label', '--reference', tmp_path/'ref.png', tmp_path/'ref_mask.png', '--text', 'a red ellipse',
            '--segmenter', 'colour-segmenter', '--scorer', 'colour-scorer', '--images', tmp_path/'images', '--out',
            tmp_path/'out', '--trials', '2', '--no-progress', '--limit', '1']
    assert run(*argv)[0] == 0
    cfg_path = tmp_path/'out'/'config.json'
    cfg = json.loads(cfg_path.read_text())
    cfg['settings'] = {('min_score' if k == 'min_mask_score' else k): v for k, v in cfg['settings'].items()}
    cfg_path.write_text(json.dumps(cfg))
    code, out, err = run(*argv[:-2])
    assert code == 0 and '1 labelled, 0 absent, 0 failed, 1 already done' in out, (out, err)


def test_label_help_is_grouped_with_one_default_each():
    p = cli.build_parser('label').commands['label']
    groups = {g.title: [a.dest for a in g._group_actions] for g in p._action_groups if g._group_actions}
    assert {'models', 'engine', 'seed method (SeedSettings)', 'canvas method (CanvasSettings)'} <= set(groups)
    assert 's_min_mask_score' in groups['seed method (SeedSettings)']
    assert 's_min_instance_score' in groups['canvas method (CanvasSettings)']
    helps = [(a.help or '').replace('%(default)s', str(a.default)) for a in p._actions]
    assert all(h.count('[default') <= 1 and '(default' not in h for h in helps)
    assert '(default' not in p.format_help()
    models = next(g for g in p._action_groups if g.title == 'models').description
    real, fakes = models.split('Test stand-ins')
    assert 'colour-' not in real and all(n in fakes for n in ('colour-segmenter', 'colour-scorer', 'colour-concept'))


ROOMS = [f'segwl/{m}.py' for m in ('recipe', 'engine', 'panels', 'review', 'cli', 'seed', 'canvas', 'multiclass',
                                    'folder', 'fixes', 'classmenu', 'ticker', 'seedpanel', 'canvaspanel', 'doubt',
                                    'exportcmd', 'democmd')]
ROOMS += [str(p.relative_to(ROOT)) for p in sorted((ROOT/'bench').glob('*.py'))]


@pytest.mark.parametrize('path', ROOMS)
def test_no_attribute_probing(path):
    "No `hasattr`, no `getattr` with a fallback: labellers, results and backends are asked through their protocols."
    calls = [n for n in ast.walk(ast.parse((ROOT/path).read_text())) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)
             and (n.func.id == 'hasattr' or (n.func.id == 'getattr' and len(n.args) > 2))]
    assert not calls, [f"{path}:{c.lineno}" for c in calls]
