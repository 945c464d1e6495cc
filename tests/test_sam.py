"SAM backend: shapes and coordinates with a tiny random SAM, and the checkpoint download against a local HTTP server."
import hashlib, http.server, io, socket, threading
import numpy as np
import pytest
import torch
from segment_anything.utils.transforms import ResizeLongestSide
from segwl.backends import sam
from segwl.data import SegwlError
from segwl.protocols import PromptableSegmenter
from segwl.backends.sam import SamSegmenter, sam_checkpoint, tiny_sam, load_sam, SAM_CHECKPOINTS

torch.set_num_threads(1)

@pytest.fixture(autouse=True)
def own_state(tmp_path_factory, monkeypatch):
    "Hash stamps go to a folder of the test's own, never the user's."
    monkeypatch.setenv('SEGWL_STATE', str(tmp_path_factory.mktemp('state')))

@pytest.fixture(scope='module')
def seg():
    return SamSegmenter.tiny_random(seed=0)

def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

# --- the segmenter -------------------------------------------------------------------------------------------

def test_protocol(seg):
    assert isinstance(seg, PromptableSegmenter)

@pytest.mark.parametrize('h,w', [(37, 91), (300, 120), (1, 5), (256, 256), (513, 17)])
@pytest.mark.parametrize('multimask,k', [(True, 3), (False, 1)])
def test_masks_at_image_size(seg, h, w, multimask, k):
    seg.set_image(_img(h, w))
    masks, scores = seg.predict(np.array([[w / 2, h / 2], [0, 0]]), np.array([1, 0]), multimask=multimask)
    assert masks.shape == (k, h, w) and masks.dtype == bool
    assert scores.shape == (k,) and np.issubdtype(scores.dtype, np.floating) and np.isfinite(scores).all()

def test_deterministic_for_a_seed():
    img, pts, lab = _img(60, 80), np.array([[10., 20.], [70., 50.]]), np.array([1, 0])
    outs = []
    for seed in (5, 5, 6):
        s = SamSegmenter.tiny_random(seed=seed)
        s.set_image(img)
        outs.append(s.predict(pts, lab))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    assert not np.array_equal(outs[0][1], outs[2][1])

def test_tiny_random_leaves_global_rng_alone():
    torch.manual_seed(123)
    a = torch.rand(3)
    torch.manual_seed(123)
    SamSegmenter.tiny_random(seed=9)
    b = torch.rand(3)
    assert torch.equal(a, b)

def test_embedding_once_per_set_image(seg):
    calls = []
    hook = seg.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        seg.set_image(_img(50, 70))
        for _ in range(5): seg.predict(np.array([[3., 4.]]), np.array([1]))
        assert len(calls) == 1
        seg.set_image(_img(20, 20))
        seg.predict(np.array([[3., 4.]]), np.array([1]))
        assert len(calls) == 2
    finally: hook.remove()

@pytest.mark.parametrize('h,w', [(37, 91), (300, 120), (999, 3)])
def test_points_reach_prompt_encoder_transformed(seg, h, w, monkeypatch):
    seen = []
    pe = seg.model.prompt_encoder
    orig = pe.forward
    def spy(points, boxes, masks):
        seen.append(points)
        return orig(points, boxes, masks)
    monkeypatch.setattr(pe, 'forward', spy)
    seg.set_image(_img(h, w))
    pts = np.array([[0, 0], [w, h], [w / 3, h / 4]])
    seg.predict(pts, np.array([1, 0, 1]))
    coords, labels = seen[-1]
    expected = ResizeLongestSide(256).apply_coords(pts, (h, w))
    np.testing.assert_allclose(coords[0].numpy(), expected, atol=1e-4)
    assert labels[0].tolist() == [1, 0, 1]
    short = int(min(h, w) * 256 / max(h, w) + 0.5)            # the far corner lands on the resized corner
    assert tuple(np.round(coords[0, 1].numpy(), 3)) == ((256., float(short)) if w >= h else (float(short), 256.))

def test_points_shift_the_mask(seg):
    "The decoder sees where the points are: moving them changes the masks (random weights, but not constant)."
    seg.set_image(_img(64, 64))
    a, _ = seg.predict(np.array([[5., 5.]]), np.array([1]))
    b, _ = seg.predict(np.array([[60., 60.]]), np.array([1]))
    assert not np.array_equal(a, b)

BAD = [
    (None, np.array([[1., 1.]]), np.array([1]), 'no image set'),
    ((40, 30), np.array([[31., 1.]]), np.array([1]), 'outside the 30x40'),
    ((40, 30), np.array([[1., -0.5]]), np.array([1]), 'outside'),
    ((40, 30), np.array([[1., 1., 1.]]), np.array([1]), '(N, 2)'),
    ((40, 30), np.array([1., 1.]), np.array([1]), '(N, 2)'),
    ((40, 30), np.zeros((0, 2)), np.zeros(0), 'N >= 1'),
    ((40, 30), np.array([[1., 1.]]), np.array([[1]]), 'one per point'),
    ((40, 30), np.array([[1., 1.]]), np.array([-1]), '1 (object) or 0'),
    ((40, 30), np.array([[np.inf, 1.]]), np.array([1]), 'outside'),
    ((40, 30), np.full((2, 1, 2), 1.), np.ones((2, 1)), 'for one prompt'),
]

@pytest.mark.parametrize('shape,pts,lab,msg', BAD, ids=[b[3] for b in BAD])
def test_bad_prompts(shape, pts, lab, msg):
    s = SamSegmenter.tiny_random()
    if shape: s.set_image(np.zeros((*shape, 3), np.uint8))
    with pytest.raises(SegwlError) as e: s.predict(pts, lab)
    assert msg in str(e.value)

@pytest.mark.parametrize('img', [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_bad_images(img):
    with pytest.raises(SegwlError, match='set_image'): SamSegmenter.tiny_random().set_image(img)

def test_failed_set_image_forgets_the_old_one():
    s = SamSegmenter.tiny_random()
    s.set_image(_img(10, 10))
    with pytest.raises(SegwlError): s.set_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(SegwlError, match='no image set'): s.predict(np.array([[1., 1.]]), np.array([1]))

def test_encoder_input_is_bounded(seg):
    "Whatever the photo's size, the tiny encoder sees one 256 x 256 picture per set_image: what keeps it fast."
    seen = []
    hook = seg.model.image_encoder.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    try:
        for hw in ((480, 640), (37, 91), (2000, 30)): seg.set_image(_img(*hw))
    finally: hook.remove()
    assert seen == [(1, 3, 256, 256)] * 3

# --- the download ----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_weights():
    buf = io.BytesIO()
    torch.save(tiny_sam(seed=4).state_dict(), buf)
    return buf.getvalue()

class Server:
    "A local HTTP server for one file; `mode` 'ok' serves it, 'short' announces more bytes than it sends and hangs up."
    def __init__(self, files):
        self.files, self.mode, self.requests = files, 'ok', []
        outer = self
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                data = outer.files.get(self.path.lstrip('/'))
                if data is None: return self.send_error(404)
                self.send_response(200)
                self.send_header('Content-Length', str(len(data) + (1000 if outer.mode == 'short' else 0)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if outer.mode == 'short' else data)
                self.wfile.flush()
                if outer.mode == 'short': self.connection.shutdown(socket.SHUT_RDWR)
            def log_message(self, *a): pass
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

@pytest.fixture
def server(tiny_weights, monkeypatch):
    for v in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    monkeypatch.setitem(SAM_CHECKPOINTS, 'tiny', ('sam_tiny_test.pth', hashlib.md5(tiny_weights).hexdigest()))
    s = Server({'sam_tiny_test.pth': tiny_weights})
    monkeypatch.setenv('SEGWL_SAM_BASE_URL', s.url)
    yield s
    s.close()

def test_download_verify_cache_and_load(server, tmp_path, tiny_weights):
    p = sam_checkpoint('tiny', cache_dir=tmp_path, progress=False)
    assert p == tmp_path/'sam_tiny_test.pth' and p.read_bytes() == tiny_weights
    assert len(server.requests) == 1
    seg = SamSegmenter.from_checkpoint('tiny', cache_dir=tmp_path, device='cpu')     # reuses the cached file
    assert len(server.requests) == 1
    ref = SamSegmenter.tiny_random(seed=4)
    img = _img(33, 44)
    for s in (seg, ref): s.set_image(img)
    a, b = (s.predict(np.array([[20., 10.]]), np.array([1])) for s in (seg, ref))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert [f.name for f in tmp_path.iterdir()] == ['sam_tiny_test.pth']          # the stamp is not in the cache
    assert [f.name.split('.')[:2] for f in sam.sam_stamp_dir().iterdir()] == [['sam_tiny_test', 'pth']]

def test_cached_file_hashed_once(server, tmp_path, monkeypatch):
    sam_checkpoint('tiny', cache_dir=tmp_path, progress=False)
    hashed = []
    real = sam.file_md5
    monkeypatch.setattr(sam, 'file_md5', lambda p, *a: (hashed.append(p), real(p, *a))[1])
    for _ in range(3): sam_checkpoint('tiny', cache_dir=tmp_path)
    assert hashed == [] and len(server.requests) == 1
    for f in sam.sam_stamp_dir().iterdir(): f.unlink()            # no stamp: hashed once more, then remembered
    sam_checkpoint('tiny', cache_dir=tmp_path)
    sam_checkpoint('tiny', cache_dir=tmp_path)
    assert len(hashed) == 1 and len(server.requests) == 1

def test_env_cache_dir(server, tmp_path, monkeypatch):
    monkeypatch.setenv('SEGWL_CACHE', str(tmp_path/'c'))
    assert sam_checkpoint('tiny', progress=False) == tmp_path/'c'/'sam_tiny_test.pth'

def test_wrong_hash_leaves_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setitem(SAM_CHECKPOINTS, 'tiny', ('sam_tiny_test.pth', '0' * 32))
    with pytest.raises(SegwlError, match=r'sam_tiny_test\.pth.*expected 0{32}.*nothing was kept'):
        sam_checkpoint('tiny', cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []

def test_cut_short_leaves_nothing(server, tmp_path):
    server.mode = 'short'
    with pytest.raises(SegwlError, match='sam_tiny_test.pth') as e:
        sam_checkpoint('tiny', cache_dir=tmp_path, progress=False)
    assert server.url in str(e.value)
    assert list(tmp_path.iterdir()) == []
    server.mode = 'ok'                                                  # the next try succeeds
    assert sam_checkpoint('tiny', cache_dir=tmp_path, progress=False).stat().st_size > 0

def test_http_error_names_url(server, tmp_path, monkeypatch):
    monkeypatch.setitem(SAM_CHECKPOINTS, 'tiny', ('missing.pth', '0' * 32))
    with pytest.raises(SegwlError, match='404') as e: sam_checkpoint('tiny', cache_dir=tmp_path, progress=False)
    assert server.url + 'missing.pth' in str(e.value) and list(tmp_path.iterdir()) == []

def test_offline_message(tmp_path, monkeypatch):
    with socket.socket() as s:                          # a port that was free a moment ago: nothing listens there
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    monkeypatch.setenv('SEGWL_SAM_BASE_URL', f'http://127.0.0.1:{port}/segment_anything')
    with pytest.raises(SegwlError) as e: sam_checkpoint('vit_b', cache_dir=tmp_path, progress=False)
    msg = str(e.value)
    for part in ('sam_vit_b_01ec64.pth', f'http://127.0.0.1:{port}/segment_anything/sam_vit_b_01ec64.pth',
                 str(tmp_path/'sam_vit_b_01ec64.pth'), 'checkpoint=PATH'):
        assert part in msg, (part, msg)
    assert list(tmp_path.iterdir()) == []

def test_damaged_cached_file_is_named_not_trusted(server, tmp_path):
    (tmp_path/'sam_tiny_test.pth').write_bytes(b'half a file')
    with pytest.raises(SegwlError, match='damaged') as e: sam_checkpoint('tiny', cache_dir=tmp_path)
    assert str(tmp_path/'sam_tiny_test.pth') in str(e.value) and server.requests == []

def test_official_table():
    "The name's six hex digits are the start of the full MD5."
    for t, (name, md5) in sam.SAM_CHECKPOINTS.items():
        if t.startswith('vit_'): assert name == f"sam_{t}_{md5[:6]}.pth" and len(md5) == 32

# --- loading ---------------------------------------------------------------------------------------------------

def test_user_checkpoint_needs_no_md5(tmp_path, tiny_weights):
    (tmp_path/'mine.pth').write_bytes(tiny_weights)
    s = SamSegmenter.from_checkpoint('tiny', checkpoint=tmp_path/'mine.pth', device='cpu')
    assert isinstance(s, PromptableSegmenter)

def test_wrong_architecture_named(tmp_path):
    "A file of another architecture is refused before the big model is built, naming the file and both types."
    sd = {'image_encoder.patch_embed.proj.weight': torch.zeros(1024, 3, 16, 16),
          **{f'image_encoder.blocks.{i}.norm1.weight': torch.zeros(1) for i in range(24)}}
    torch.save(sd, tmp_path/'sam_vit_l_0b3195.pth')
    with pytest.raises(SegwlError, match=r"sam_vit_l_0b3195\.pth is a vit_l model.*not vit_b.*sam_type='vit_l'"):
        SamSegmenter.from_checkpoint('vit_b', checkpoint=tmp_path/'sam_vit_l_0b3195.pth', device='cpu')

def test_mismatching_state_dict(tmp_path):
    sd = tiny_sam().state_dict()
    sd['mask_decoder.iou_token.weight'] = torch.zeros(2, 2)
    torch.save(sd, tmp_path/'bad.pth')
    with pytest.raises(SegwlError, match=r"bad\.pth does not fit sam_type='tiny'"): load_sam(tmp_path/'bad.pth', 'tiny')

def test_unsafe_pickle_refused(tmp_path):
    "weights_only=True: a pickle that would run code is refused, not executed."
    class Evil:
        def __reduce__(self): return (print, ('pwned',))
    torch.save({'x': Evil()}, tmp_path/'evil.pth')
    with pytest.raises(SegwlError, match=r'evil\.pth: cannot be read .*pickled Python objects \(print\)'):
        load_sam(tmp_path/'evil.pth')

def test_truncated_checkpoint(tmp_path, tiny_weights):
    (tmp_path/'cut.pth').write_bytes(tiny_weights[:len(tiny_weights) // 3])
    with pytest.raises(SegwlError, match=r'cut\.pth: cannot be read'): load_sam(tmp_path/'cut.pth', 'tiny')

@pytest.mark.skipif(not (sam.sam_cache_dir()/SAM_CHECKPOINTS['vit_b'][0]).exists(),
                    reason='needs the real vit_b checkpoint in the cache')
def test_real_vit_b():
    s = SamSegmenter.from_checkpoint('vit_b', device='cpu')
    s.set_image(_img(120, 200))
    m, sc = s.predict(np.array([[100., 60.]]), np.array([1]))
    assert m.shape == (3, 120, 200)

@pytest.mark.parametrize('sam_type', ['vit_b', 'vit_l', 'vit_h'])
def test_arch_table_matches_segment_anything(sam_type):
    "The width/depth read from a file are those of segment-anything's own builders (built on 'meta': no memory)."
    from segment_anything import sam_model_registry
    with torch.device('meta'): m = sam_model_registry[sam_type](checkpoint=None)
    assert sam._arch_of(m.state_dict()) == sam.SAM_ARCHS[sam_type]

def test_real_vit_b_architecture_loads(tmp_path, monkeypatch):
    "The whole load path with vit_b's real keys and shapes; torch.load is stubbed to spare writing 375 MB."
    from segment_anything import sam_model_registry
    torch.manual_seed(0)
    sd = sam_model_registry['vit_b'](checkpoint=None).state_dict()
    (tmp_path/'vit_b.pth').write_bytes(b'stub')
    calls = []
    monkeypatch.setattr(torch, 'load', lambda *a, **kw: (calls.append(kw), sd)[1])
    m = load_sam(tmp_path/'vit_b.pth', 'vit_b')
    assert calls == [{'map_location': 'cpu', 'weights_only': True}]
    assert torch.equal(m.mask_decoder.iou_token.weight, sd['mask_decoder.iou_token.weight'])
    with pytest.raises(SegwlError, match=r'vit_b\.pth is a vit_b model.*not vit_h'):
        load_sam(tmp_path/'vit_b.pth', 'vit_h')
