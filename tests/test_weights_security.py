"""Weights files that carry code (issue 14, item 1): a hostile TorchScript archive and a hostile pickle, saved under
the names segwl would load, are refused with a message naming the file and the reason, from Python and from
`segwl label`, and the code in them never runs; a checkpoint with a forged `.md5-ok` marker is not trusted."""
import hashlib, os
from pathlib import Path
import pytest
import torch
from conftest import segwl
from segwl.data import SegwlError
from segwl.backends import sam
from segwl.backends.clip import ClipScorer
from segwl.backends.sam import SAM_CHECKPOINTS, SamSegmenter, sam_checkpoint, tiny_sam

pytestmark = pytest.mark.filterwarnings('ignore::FutureWarning', 'ignore::UserWarning')   # torch.jit's deprecation


class Evil(torch.nn.Module):
    "A TorchScript module whose `__setstate__`, run as the archive loads, creates the file named in its state."
    def __init__(self, marker: str):
        super().__init__()
        self.w = torch.zeros(2)
        self.path = marker

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        self.w = state[0] + 0 * torch.from_file(state[1], shared=True, size=2)     # creates the file state[1]
        self.path = state[1]
        self.training = state[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w


class EvilPickle:
    "Unpickling it calls `open(marker, 'w')`, which creates the marker file."
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def hostile_torchscript(path, marker):
    torch.jit.save(torch.jit.script(Evil(str(marker))), str(path))
    return path


def hostile_pickle(path, marker):
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'extra': EvilPickle(marker)}, path)
    return path


HOSTILE = {'torchscript': hostile_torchscript, 'pickle': hostile_pickle}
WHY_CLIP = {'torchscript': "a TorchScript archive (a program as well as weights) that is not one of OpenAI's official",
            'pickle': 'cannot be read as a weights file (it holds pickled Python objects'}
WHY_SAM = {'torchscript': 'cannot be read as a weights file (it is a TorchScript archive, a program',
           'pickle': 'cannot be read as a weights file (it holds pickled Python objects'}


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    "Hash stamps in a folder of the test's own; a SAM download could not reach the network."
    monkeypatch.setenv('SEGWL_STATE', str(tmp_path/'state'))
    monkeypatch.setenv('SEGWL_SAM_BASE_URL', 'http://127.0.0.1:9/')


def test_the_hostile_files_do_run_code(tmp_path):
    "What the other tests refuse is real: loaded the unsafe way, each file creates its marker (saving them does not)."
    ts = hostile_torchscript(tmp_path/'ts.pt', tmp_path/'ts-ran')
    pk = hostile_pickle(tmp_path/'pk.pt', tmp_path/'pk-ran')
    assert not (tmp_path/'ts-ran').exists() and not (tmp_path/'pk-ran').exists()
    torch.jit.load(ts)
    torch.load(pk, weights_only=False)
    assert (tmp_path/'ts-ran').exists() and (tmp_path/'pk-ran').exists()


# --- CLIP ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', HOSTILE)
@pytest.mark.parametrize('name', ['evil.pt', 'ViT-B-32.pt', 'open_clip_pytorch_model.bin',
                                  'open_clip_model.safetensors'])
def test_clip_pretrained_file_refused(tmp_path, kind, name):
    "`--clip-pretrained FILE`: refused whatever the file is called (ViT-B-32.pt is OpenAI's name), before it runs."
    f = HOSTILE[kind](tmp_path/name, tmp_path/'ran')
    with pytest.raises(SegwlError) as e:
        ClipScorer.from_pretrained(model_name='ViT-B-32', pretrained=str(f), device='cpu')
    assert f"CLIP weights {f}: " in str(e.value) and WHY_CLIP[kind] in str(e.value)
    assert not (tmp_path/'ran').exists()


@pytest.mark.parametrize('kind', HOSTILE)
def test_clip_tag_with_hostile_file_in_url_cache(tmp_path, kind):
    "A file dropped into the URL cache under OpenAI's name is found for the tag `openai`, then refused."
    f = HOSTILE[kind](tmp_path/'ViT-B-32.pt', tmp_path/'ran')
    with pytest.raises(SegwlError) as e:
        ClipScorer.from_pretrained(model_name='ViT-B-32', pretrained='openai', device='cpu', cache_dir=str(tmp_path))
    assert f"CLIP weights {f}: " in str(e.value) and WHY_CLIP[kind] in str(e.value)
    assert not (tmp_path/'ran').exists()


@pytest.mark.parametrize('kind', HOSTILE)
@pytest.mark.parametrize('name', ['open_clip_model.safetensors', 'open_clip_pytorch_model.bin'])
def test_clip_tag_with_hostile_file_in_hub_cache(tmp_path, kind, name):
    "A file dropped into the Hugging Face cache of the tag's repo is found offline, then refused."
    repo = tmp_path/'models--timm--vit_base_patch32_clip_224.openai'
    (repo/'refs').mkdir(parents=True)
    (repo/'refs'/'main').write_text('0' * 40)
    (repo/'snapshots'/('0' * 40)).mkdir(parents=True)
    f = HOSTILE[kind](repo/'snapshots'/('0' * 40)/name, tmp_path/'ran')
    with pytest.raises(SegwlError) as e:
        ClipScorer.from_pretrained(model_name='ViT-B-32', pretrained='openai', device='cpu', cache_dir=str(tmp_path))
    assert f"CLIP weights {f}: " in str(e.value) and WHY_CLIP[kind] in str(e.value)
    assert not (tmp_path/'ran').exists()


# --- SAM -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', HOSTILE)
@pytest.mark.parametrize('name', ['sam_vit_b_01ec64.pth', 'mine.pth'])
def test_sam_checkpoint_file_refused(tmp_path, kind, name):
    "`--sam-checkpoint FILE`: read with weights_only=True, refused before it runs."
    f = HOSTILE[kind](tmp_path/name, tmp_path/'ran')
    with pytest.raises(SegwlError) as e:
        SamSegmenter.from_checkpoint(sam_type='vit_b', checkpoint=f, device='cpu')
    assert f"SAM checkpoint {f}: " in str(e.value) and WHY_SAM[kind] in str(e.value)
    assert not (tmp_path/'ran').exists()


@pytest.mark.parametrize('kind', HOSTILE)
def test_forged_md5_marker_not_trusted(tmp_path, kind):
    "A fake `sam_vit_b_01ec64.pth` in the cache with a correct-looking `.md5-ok` beside it is hashed, and refused."
    name, md5 = SAM_CHECKPOINTS['vit_b']
    f = HOSTILE[kind](tmp_path/name, tmp_path/'ran')
    st = f.stat()
    (tmp_path/f'{name}.md5-ok').write_text(f"{md5} {st.st_size} {st.st_mtime_ns}")     # the old marker's form
    new_form = f"{md5} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_dev} {st.st_ino}"
    (tmp_path/sam._stamp_file(f).name).write_text(new_form)                            # today's form, in the cache
    with pytest.raises(SegwlError) as e:
        SamSegmenter.from_checkpoint(sam_type='vit_b', cache_dir=tmp_path, device='cpu')
    fake_md5 = hashlib.md5(f.read_bytes()).hexdigest()
    why = f"cached SAM checkpoint {f} is damaged or not the official file (MD5 {fake_md5}, expected {md5})"
    assert why in str(e.value)
    assert not (tmp_path/'ran').exists()


def test_rewritten_checkpoint_hashed_again(tmp_path, monkeypatch):
    "A verified file rewritten in place, same size, old mtime put back, fails its stamp (ctime moved) and the hash."
    torch.save(tiny_sam(seed=1).state_dict(), tmp_path/'w')
    data = bytearray((tmp_path/'w').read_bytes())
    monkeypatch.setitem(SAM_CHECKPOINTS, 'tiny', ('sam_tiny.pth', hashlib.md5(data).hexdigest()))
    (tmp_path/'c').mkdir()
    (tmp_path/'c'/'sam_tiny.pth').write_bytes(data)
    assert sam_checkpoint('tiny', cache_dir=tmp_path/'c') == tmp_path/'c'/'sam_tiny.pth'    # hashed, stamped
    t = (tmp_path/'c'/'sam_tiny.pth').stat().st_mtime_ns
    data[-100] ^= 1
    (tmp_path/'c'/'sam_tiny.pth').write_bytes(data)
    os.utime(tmp_path/'c'/'sam_tiny.pth', ns=(t, t))
    with pytest.raises(SegwlError, match='is damaged or not the official file'):
        sam_checkpoint('tiny', cache_dir=tmp_path/'c')


# --- through the command line --------------------------------------------------------------------------------------

def _label(examples, out, *flags):
    return segwl('label', '--reference-image', examples/'reference'/'Abyssinian_88.jpg',
                 '--reference-mask', examples/'reference'/'Abyssinian_88.png', '--text', 'a photo of a cat',
                 '--images', examples/'unlabeled'/'images', '--out', out, '--device', 'cpu', '--no-progress', *flags)


@pytest.mark.parametrize('kind', HOSTILE)
def test_cli_sam_checkpoint_refused(tmp_path, examples, kind):
    f = HOSTILE[kind](tmp_path/'sam_vit_b_01ec64.pth', tmp_path/'ran')
    r = _label(examples, tmp_path/'out', '--sam-checkpoint', f)
    assert r.returncode == 2, r.stderr
    assert f"SAM checkpoint {f}: " in r.stderr and WHY_SAM[kind] in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'ran').exists() and not (tmp_path/'out'/'masks').exists()


@pytest.fixture(scope='module')
def label_help():
    return segwl('label', '--help', check_rc=0).stdout


@pytest.mark.parametrize('kind', HOSTILE)
def test_cli_clip_pretrained_refused(tmp_path, examples, kind, label_help):
    "The segmenter needs no SAM weights (a stand-in, or a tiny checkpoint); the hostile CLIP file is then refused."
    if '--clip-pretrained' not in label_help: pytest.skip('segwl label has no --clip-pretrained')
    if '--segmenter' in label_help: segmenter = ['--segmenter', 'colour-segmenter', '--scorer', 'clip']
    else:
        torch.save(tiny_sam(seed=0).state_dict(), tmp_path/'tiny.pth')
        segmenter = ['--sam-type', 'tiny', '--sam-checkpoint', tmp_path/'tiny.pth']
    f = HOSTILE[kind](tmp_path/'ViT-B-32.pt', tmp_path/'ran')
    r = _label(examples, tmp_path/'out', *segmenter, '--clip-model', 'ViT-B-32', '--clip-pretrained', f)
    assert r.returncode == 2, r.stderr
    assert f"CLIP weights {f}: " in r.stderr and WHY_CLIP[kind] in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'ran').exists() and not (tmp_path/'out'/'masks').exists()


# --- SAM 2.1 and SAM 3: a pytorch_model.bin in the Hugging Face cache (issue 22) -----------------------------------

def hub_cache_with(cache: Path, repo: str, config, kind: str, marker: Path) -> Path:
    "A Hub cache holding `repo` as a snapshot of its config and a hostile `pytorch_model.bin` (no safetensors)."
    base = cache/f"models--{repo.replace('/', '--')}"
    (base/'refs').mkdir(parents=True)
    (base/'refs'/'main').write_text('0' * 40)
    snap = base/'snapshots'/('0' * 40)
    config.save_pretrained(snap)
    return HOSTILE[kind](snap/'pytorch_model.bin', marker)


def _tiny_configs():
    from segwl.backends.sam2 import tiny_sam2_config
    from segwl.backends.sam3 import tiny_sam3_config
    return {'sam2.1-tiny': ('facebook/sam2.1-hiera-tiny', tiny_sam2_config()), 'sam3': ('facebook/sam3',
                                                                                        tiny_sam3_config())}


@pytest.mark.parametrize('kind', HOSTILE)
@pytest.mark.parametrize('backend', ['sam2.1-tiny', 'sam3'])
def test_hub_cache_pytorch_model_bin_refused(tmp_path, monkeypatch, kind, backend):
    "from_pretrained: a SegwlError naming the file, no code run, and never torch's weights_only=False advice."
    from segwl.backends.sam2 import Sam2Segmenter
    from segwl.backends.sam3 import Sam3Segmenter
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    repo, cfg = _tiny_configs()[backend]
    f = hub_cache_with(tmp_path/'hub', repo, cfg, kind, tmp_path/'ran')
    cls, what = (Sam2Segmenter, 'SAM 2.1') if backend != 'sam3' else (Sam3Segmenter, 'SAM 3')
    with pytest.raises(SegwlError) as e:
        cls.from_pretrained(repo, device='cpu', cache_dir=tmp_path/'hub')
    assert str(e.value).startswith(f"{what} weights {f}: refused, not a plain weights file (")
    why = {'torchscript': 'it is a TorchScript archive, a program', 'pickle': 'it holds pickled Python objects'}[kind]
    assert why in str(e.value)
    assert 'weights_only' not in str(e.value) and not (tmp_path/'ran').exists()


@pytest.mark.parametrize('backend', ['sam2.1-tiny', 'sam3'])
def test_cli_hub_cache_pytorch_model_bin_refused(tmp_path, examples, monkeypatch, backend):
    "segwl label with SAM 2.1 or SAM 3: exit 2 naming the file, no traceback, no torch advice, no code run."
    repo, cfg = _tiny_configs()[backend]
    f = hub_cache_with(tmp_path/'hub', repo, cfg, 'pickle', tmp_path/'ran')
    ref = [examples/'reference'/'Abyssinian_88.jpg', examples/'reference'/'Abyssinian_88.png']
    method = ['--segmenter', backend, '--scorer', 'colour-scorer', '--text', 'a cat'] if backend != 'sam3' else \
             ['--method', 'canvas', '--segmenter', 'sam3']
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path/'hub'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    r = segwl('label', '--reference', *ref, *method, '--images', examples/'unlabeled'/'images', '--out',
              tmp_path/'out', '--device', 'cpu', '--no-progress')
    assert r.returncode == 2, r.stderr
    assert f"weights {f}: refused, not a plain weights file" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert 'weights_only' not in r.stderr and not (tmp_path/'ran').exists()
