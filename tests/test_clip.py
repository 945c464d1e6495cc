"ClipScorer: window geometry with a stand-in of known answer, batching, caching, weights and the offline error."
import hashlib, json, socket
from pathlib import Path
from types import SimpleNamespace
import numpy as np
import pytest
import torch
from PIL import Image

from segwl.data import SegwlError
from segwl.protocols import TextRegionScorer
from segwl.backends.clip import (ClipScorer, TINY_CLIP_CFG, clip_weights, map_shape, window_boxes,
                        window_geometry)

pytestmark = pytest.mark.usefixtures('one_thread')      # each test: torch on one thread


class RedModel(torch.nn.Module):
    "Stand-in CLIP: image -> (fraction of red pixels, rest), every text -> (1, 0); counts its calls."
    def __init__(self, size=32):
        super().__init__()
        self.visual = SimpleNamespace(image_size=size, image_mean=(0, 0, 0), image_std=(1, 1, 1))
        self.text_calls, self.batches = 0, []
    def encode_image(self, x):
        self.batches.append(len(x))
        red = ((x[:, 0] > .6) & (x[:, 1] < .4) & (x[:, 2] < .4)).float().mean((1, 2))
        return torch.stack([red, 1 - red], 1)
    def encode_text(self, tokens):
        self.text_calls += 1
        return torch.tensor([[1., 0.]]).expand(len(tokens), 2)

def tokens(texts): return torch.zeros(len(texts), 1, dtype=torch.long)

def red_square(h, w, x0, y0, side):
    im = np.full((h, w, 3), 90, np.uint8)
    im[y0:y0 + side, x0:x0 + side] = (230, 20, 20)
    return im


@pytest.fixture(scope='module')
def tiny():
    return ClipScorer.tiny_random(seed=0, window=64, stride=32, batch_size=16, map_mode='windows')

@pytest.fixture
def photo():
    return np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)


# --- geometry, with a known answer -------------------------------------------------------------------------------

@pytest.mark.parametrize('h,w,x0,y0,side', [
    (357, 500, 380, 40, 90), (357, 500, 30, 250, 90), (357, 500, 200, 130, 90),
    (400, 120, 20, 300, 70), (120, 400, 300, 20, 70), (90, 90, 50, 50, 30), (90, 90, 5, 10, 30)])
def test_peak_on_red_square(h, w, x0, y0, side):
    sc = ClipScorer(RedModel(), None, tokens, window=160, stride=80, batch_size=8)
    m = sc.similarity_map(red_square(h, w, x0, y0, side), 'red')
    assert m.dtype == np.float32 and m.shape == map_shape(h, w, window_geometry(h, w, 160, 80)[1])
    i, j = np.unravel_index(np.argmax(m), m.shape)
    px, py = (j + .5) * w / m.shape[1], (i + .5) * h / m.shape[0]      # the documented frame
    assert x0 - 10 <= px <= x0 + side + 10 and y0 - 10 <= py <= y0 + side + 10
    # the peak cell's block of pixels overlaps the square
    ry, rx = np.arange(m.shape[0] + 1) * h // m.shape[0], np.arange(m.shape[1] + 1) * w // m.shape[1]
    assert ry[i] < y0 + side and ry[i + 1] > y0 and rx[j] < x0 + side and rx[j + 1] > x0


def test_resized_map_hot_spot_on_square():
    sc = ClipScorer(RedModel(), None, tokens)
    for (h, w, x0, y0) in [(357, 500, 300, 150), (500, 357, 100, 250)]:
        m = sc.similarity_map(red_square(h, w, x0, y0, 90), 'red')
        big = np.asarray(Image.fromarray(m).resize((w, h), Image.BILINEAR))
        y, x = np.argwhere(big >= big.max() - 0.1 * (big.max() - big.min())).mean(0)
        assert x0 <= x <= x0 + 90 and y0 <= y <= y0 + 90


@pytest.mark.parametrize('h,w', [(357, 500), (400, 120), (90, 90), (1, 1), (3, 700), (1000, 999)])
def test_windows_cover_whole_image(h, w):
    boxes = window_boxes(h, w, 160, 80)
    seen = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        seen[y0:y1, x0:x1] = True
    assert seen.all()
    assert len({(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes}) == 1   # one square size: one batch shape


def test_attributes_changed_after_construction():
    red = RedModel()
    sc = ClipScorer(red, None, tokens, window=160, stride=80, batch_size=100)
    im = red_square(357, 500, 200, 130, 90)
    sc.similarity_map(im, 'red')
    n_default = red.batches[-1]
    sc.window, sc.stride = 100, 50
    m = sc.similarity_map(im, 'red')
    assert red.batches[-1] > n_default and m.shape == map_shape(357, 500, 50)
    sc.batch_size = 5
    sc.similarity_map(im, 'red')
    assert max(red.batches[-10:]) == 5


def test_image_score_whole_image_not_centre_crop():
    sc = ClipScorer(RedModel(), None, tokens)
    corner = sc.image_score(red_square(100, 400, 0, 0, 60), 'red')    # outside any centre crop
    f = 60 * 60 * (32 / 400) ** 2 / 32 ** 2
    assert corner == pytest.approx(f / np.hypot(f, 1 - f), abs=0.005)
    assert sc.image_score(np.full((50, 50, 3), 90, np.uint8), 'red') == pytest.approx(0, abs=1e-6)


def test_bad_image_refused():
    sc = ClipScorer(RedModel(), None, tokens)
    for bad in [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3)),
                np.zeros((0, 5, 3), np.uint8)]:
        with pytest.raises(ValueError, match='HxWx3 uint8|image is empty'): sc.similarity_map(bad, 'x')


# --- the tiny random real model ----------------------------------------------------------------------------------

def test_tiny_is_real_open_clip(tiny):
    import open_clip
    assert isinstance(tiny.model, open_clip.model.CLIP) and tiny.input_size == (64, 64)
    assert isinstance(tiny, TextRegionScorer)
    assert tiny.tokenizer(['a photo of a cat']).shape == (1, TINY_CLIP_CFG['text_cfg']['context_length'])


def test_batched_equals_one_at_a_time(tiny, photo):
    calls = []
    enc = tiny.model.encode_image
    tiny.model.encode_image = lambda x, **k: (calls.append(len(x)), enc(x, **k))[1]
    try:
        n = len(window_boxes(150, 200, 64, 32))
        tiny.batch_size = 16
        m16 = tiny.similarity_map(photo, 'a photo of a cat')
        assert calls == [16] * (n // 16) + ([n % 16] if n % 16 else [])
        calls.clear()
        tiny.batch_size = 1
        m1 = tiny.similarity_map(photo, 'a photo of a cat')
        assert calls == [1] * n
    finally:
        del tiny.model.encode_image
        tiny.batch_size = 16
    np.testing.assert_allclose(m1, m16, atol=1e-5)
    assert m16.std() > 0


def test_text_embedding_once_per_text(photo):
    sc = ClipScorer.tiny_random(seed=0, window=64, stride=32)
    calls = []
    enc = sc.model.encode_text
    sc.model.encode_text = lambda t, **k: (calls.append(t.shape[0]), enc(t, **k))[1]
    for _ in range(3):
        sc.similarity_map(photo, 'a cat')
        sc.image_score(photo, 'a cat')
    assert len(calls) == 1
    sc.similarity_map(photo, 'a dog')
    assert len(calls) == 2 and set(sc.text_cache) == {'a cat', 'a dog'}
    e = sc.text_embedding('a cat')
    assert float(e.norm()) == pytest.approx(1, abs=1e-5)


def test_tiny_deterministic(photo):
    a, b, c = (ClipScorer.tiny_random(seed=s) for s in (0, 0, 1))
    assert a.image_score(photo, 'cat') == pytest.approx(b.image_score(photo, 'cat'), abs=1e-6)
    assert a.image_score(photo, 'cat') != pytest.approx(c.image_score(photo, 'cat'), abs=1e-6)


def test_image_score_is_open_clips_cosine(tiny, photo):
    "At the input size nothing is letterboxed or resized: the score is the cosine open_clip's own pipeline gives."
    sq = photo[:64, :64]
    with torch.inference_mode():
        e = tiny.model.encode_image(tiny.preprocess(Image.fromarray(sq))[None])
        t = tiny.model.encode_text(tiny.tokenizer(['a cat']))
    assert tiny.image_score(sq, 'a cat') == pytest.approx(torch.cosine_similarity(e, t).item(), abs=1e-5)


# --- weights -----------------------------------------------------------------------------------------------------

def test_local_file_loads(tmp_path, tiny, photo):
    import open_clip
    (tmp_path/'segwl-tiny.json').write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path/'segwl-tiny.json')
    torch.save(tiny.model.state_dict(), tmp_path/'tiny.pt')
    sc = ClipScorer.from_pretrained('segwl-tiny', pretrained=str(tmp_path/'tiny.pt'), device='cpu', window=64,
                                    stride=32, map_mode='windows')
    assert sc.image_score(photo, 'a cat') == pytest.approx(tiny.image_score(photo, 'a cat'), abs=1e-5)
    np.testing.assert_allclose(sc.similarity_map(photo, 'a cat'), tiny.similarity_map(photo, 'a cat'), atol=1e-5)
    np.testing.assert_allclose(sc.dense_map(photo, 'a cat'), tiny.dense_map(photo, 'a cat'), atol=1e-5)
    from safetensors.torch import save_file                # the same weights as safetensors, under any name
    save_file(tiny.model.state_dict(), tmp_path/'tiny.bin')
    sc = ClipScorer.from_pretrained('segwl-tiny', pretrained=str(tmp_path/'tiny.bin'), device='cpu')
    assert sc.image_score(photo, 'a cat') == pytest.approx(tiny.image_score(photo, 'a cat'), abs=1e-5)
    # a file of the wrong shapes is refused with the file's name
    torch.save({'nothing': torch.zeros(1)}, tmp_path/'bad.pt')
    with pytest.raises(SegwlError, match='bad.pt'):
        ClipScorer.from_pretrained('segwl-tiny', pretrained=str(tmp_path/'bad.pt'), device='cpu')


def test_weights_only_refuses_pickled_code(tmp_path):
    import open_clip
    (tmp_path/'segwl-tiny.json').write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path/'segwl-tiny.json')
    flag = tmp_path/'code-ran'
    class Evil:                                       # unpickling it would run code (create a file)
        def __reduce__(self): return (Path.touch, (flag,))
    torch.save({'state_dict': Evil()}, tmp_path/'evil.pt')
    with pytest.raises(SegwlError, match=r'evil\.pt: cannot be read.*pickled Python objects'):
        ClipScorer.from_pretrained('segwl-tiny', pretrained=str(tmp_path/'evil.pt'), device='cpu')
    assert not flag.exists()


def _scripted_copy(model, path):
    "A TorchScript archive holding `model`'s tensors under the same names, as OpenAI's .pt files do."
    class Box(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor: return x
    root = Box()
    for k, v in model.state_dict().items():
        *path_, name = k.split('.')
        m = root
        for p in path_:
            if not hasattr(m, p): m.add_module(p, Box())
            m = getattr(m, p)
        m.register_buffer(name, v.clone())
    torch.jit.save(torch.jit.script(root), path)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_only_if_official(tmp_path, tiny, photo, monkeypatch):
    "A TorchScript archive is refused unless its SHA-256 is in the official table; then it loads like OpenAI's."
    import open_clip
    from segwl.backends import clip
    (tmp_path/'segwl-tiny.json').write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path/'segwl-tiny.json')
    _scripted_copy(tiny.model, tmp_path/'jit.pt')
    with pytest.raises(SegwlError, match=r"jit\.pt: a TorchScript archive .* not one of OpenAI's official files"):
        ClipScorer.from_pretrained('segwl-tiny', str(tmp_path/'jit.pt'), device='cpu')
    monkeypatch.setitem(clip.OPENAI_TORCHSCRIPT, hashlib.sha256((tmp_path/'jit.pt').read_bytes()).hexdigest(), 'jit.pt')
    sc = ClipScorer.from_pretrained('segwl-tiny', str(tmp_path/'jit.pt'), device='cpu')
    assert sc.image_score(photo, 'a cat') == pytest.approx(tiny.image_score(photo, 'a cat'), abs=1e-5)


def test_official_table_is_openais():
    "The table's hashes are the folder names of OpenAI's download URLs in open_clip's pretrained table."
    import open_clip.pretrained as pt
    from segwl.backends.clip import OPENAI_TORCHSCRIPT
    urls = [c['url'] for m in pt._PRETRAINED.values() for c in m.values() if 'openaipublic' in c.get('url', '')]
    assert OPENAI_TORCHSCRIPT == {u.split('/')[-2]: u.split('/')[-1] for u in urls}
    assert len(OPENAI_TORCHSCRIPT) == 9 and all(len(h) == 64 for h in OPENAI_TORCHSCRIPT)


def test_known_download_gets_its_tag_settings(tmp_path):
    "A file named like a tag's download (OpenAI's ViT-B-32.pt) gets the tag's QuickGELU and normalisation."
    (tmp_path/'ViT-B-32.pt').write_bytes(b'')
    path, cfg = clip_weights('ViT-B-32', str(tmp_path/'ViT-B-32.pt'))
    assert path == tmp_path/'ViT-B-32.pt' and cfg['quick_gelu'] is True
    (tmp_path/'mine.pt').write_bytes(b'')
    assert clip_weights('ViT-B-32', str(tmp_path/'mine.pt'))[1] == {}


def test_unknown_names():
    with pytest.raises(SegwlError, match='ViT-B-32'): ClipScorer.from_pretrained('ViT-B-99')
    with pytest.raises(SegwlError, match='laion2b_s34b_b79k'): clip_weights('ViT-B-32', 'no-such-tag')
    with pytest.raises(SegwlError, match='file not found'): clip_weights('ViT-B-32', '/nowhere/weights.pt')


def _count_downloads(monkeypatch):
    import open_clip
    tried = []
    monkeypatch.setattr(open_clip.pretrained, 'download_pretrained', lambda *a, **k: tried.append(a))
    return tried


def test_offline_error_forced(monkeypatch, tmp_path):
    "Offline mode: the error comes without a download attempt (open_clip's would retry for a minute)."
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    tried = _count_downloads(monkeypatch)
    with pytest.raises(SegwlError) as e:
        ClipScorer.from_pretrained('ViT-B-32', 'openai', device='cpu', cache_dir=str(tmp_path))
    assert tried == []
    msg = str(e.value)
    for part in ('ViT-B-32', 'openai', 'timm/vit_base_patch32_clip_224.openai', 'openaipublic',
                 "pretrained='/path/to/file'", 'HF_HUB_OFFLINE'):
        assert part in msg


def _online(host='huggingface.co'):
    try: socket.create_connection((host, 443), timeout=3).close()
    except OSError: return False
    return True


def test_offline_error_for_real(tmp_path, monkeypatch):
    "Without network (as here) the error comes after one connection attempt, not after open_clip's minute of retries."
    if _online(): pytest.skip('huggingface.co is reachable: this test is about machines without network')
    tried, connects = _count_downloads(monkeypatch), []
    connect = socket.create_connection
    monkeypatch.setattr(socket, 'create_connection', lambda *a, **k: (connects.append(a[0]), connect(*a, **k))[1])
    with pytest.raises(SegwlError, match='cannot reach huggingface.co') as e:
        ClipScorer.from_pretrained('ViT-B-32', 'laion2b_s34b_b79k', device='cpu', cache_dir=str(tmp_path))
    assert tried == [] and connects == [('huggingface.co', 443)]
    assert 'laion/CLIP-ViT-B-32-laion2B-s34B-b79K' in str(e.value)


def test_cached_weights_found_without_network(monkeypatch, tmp_path, tiny, photo):
    "A tag whose file is in the URL cache loads offline (the cache is looked at before the network)."
    import open_clip
    (tmp_path/'segwl-tiny.json').write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(tmp_path/'segwl-tiny.json')
    cfg = dict(url='https://example.invalid/weights/tiny-v1.pt', quick_gelu=False)
    monkeypatch.setattr(open_clip, 'get_pretrained_cfg', lambda m, t: cfg if (m, t) == ('segwl-tiny', 'v1') else {})
    torch.save(tiny.model.state_dict(), tmp_path/'tiny-v1.pt')
    sc = ClipScorer.from_pretrained('segwl-tiny', 'v1', device='cpu', cache_dir=str(tmp_path))
    assert sc.image_score(photo, 'a cat') == pytest.approx(tiny.image_score(photo, 'a cat'), abs=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(tiny, photo):
    g = ClipScorer.tiny_random(seed=0, device='cuda', window=64, stride=32, map_mode='windows')
    np.testing.assert_allclose(g.similarity_map(photo, 'a cat'), tiny.similarity_map(photo, 'a cat'), atol=2e-3)
    np.testing.assert_allclose(g.dense_map(photo, 'a cat'), tiny.dense_map(photo, 'a cat'), atol=2e-3)


# --- the dense map ------------------------------------------------------------------------------------------------

def test_dense_map_is_one_forward_pass(photo):
    "'auto' on a ViT: one pass of the image tower per map, whatever the image size, and one cell per patch."
    sc = ClipScorer.tiny_random(seed=0, dense_side=128)
    calls = []
    h = sc.model.visual.conv1.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    try:
        for hw, grid in (((150, 200), (6, 8)), ((400, 90), (8, 2)), ((20, 30), (5, 8))):
            calls.clear()
            m = sc.similarity_map(np.zeros((*hw, 3), np.uint8) + 128, 'a cat')
            assert m.shape == grid and calls == [(1, 3, grid[0] * 16, grid[1] * 16)]
        sc.map_mode = 'windows'
        calls.clear()
        sc.similarity_map(photo, 'a cat')                 # 6 windows, one batch
        assert sc.map_kind() == 'windows' and len(calls) == 1 and calls[0][0] == len(window_boxes(150, 200, 160, 80))
    finally: h.remove()


def test_dense_map_refused_on_other_towers():
    class NotViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = SimpleNamespace(image_size=32, image_mean=(0, 0, 0), image_std=(1, 1, 1))
    sc = ClipScorer(NotViT(), None, lambda t: torch.zeros(len(t), 1, dtype=torch.long), map_mode='dense')
    with pytest.raises(SegwlError, match="SimpleNamespace, not an open_clip VisionTransformer.*map_mode='windows'"):
        sc.similarity_map(np.zeros((40, 40, 3), np.uint8), 'x')
    sc.map_mode = 'auto'
    assert sc.map_kind() == 'windows'
