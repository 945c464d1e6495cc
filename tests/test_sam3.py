"SAM 3 and SAM 2.1 through transformers: tiny twins with known answers, the registry, and the weight-loading paths."
import json, time
import numpy as np
import pytest
import torch
from huggingface_hub import constants
from segwl.backends.sam2 import Sam2Segmenter, HubError, hub_snapshot
from segwl.backends.sam3 import Sam3Segmenter, Sam3Error
from segwl.protocols import ConceptSegmenter, PromptableSegmenter, InputError
from segwl.registry import create_backend, get_backend, versions

torch.set_num_threads(1)
IMAGE = np.random.default_rng(0).integers(0, 256, (96, 150, 3), dtype=np.uint8)


@pytest.fixture(scope='module')
def sam3():
    return Sam3Segmenter.tiny_random()


def test_sam3_one_vision_pass_many_prompts(sam3):
    calls = []
    hook = sam3.model.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        sam3.set_image(IMAGE)
        prompts = [(None, [[5, 5, 40, 50]], [1]), ('a dog', [[5, 5, 40, 50], [60, 10, 140, 90]], [1, 0]),
                   ('a dog', np.zeros((0, 4)), [])]
        for text, boxes, labels in prompts:
            masks, scores = sam3.segment(text, boxes, labels)
            assert masks.shape == (5, 96, 150) and masks.dtype == bool and scores.shape == (5,)
    finally: hook.remove()
    assert len(calls) == 1
    assert isinstance(sam3, ConceptSegmenter)


def test_sam3_text_encoder_runs_once_per_text(sam3):
    calls = []
    hook = sam3.model.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        sam3.set_image(IMAGE)
        for _ in range(3): sam3.segment('a brand new text', [[5, 5, 40, 50]], [1])
        sam3.set_image(IMAGE[::-1].copy())
        sam3.segment('a brand new text', [[5, 5, 40, 50]], [1])
    finally: hook.remove()
    assert len(calls) == 1


def test_sam3_scores_are_instance_times_presence(sam3):
    sam3.set_image(IMAGE)
    masks, scores = sam3.segment('a dog', [[15, 30, 45, 60]], [1])
    tok = sam3.tokenizer('a dog')
    with torch.inference_mode():
        px = sam3.processor(images=IMAGE, return_tensors='pt')['pixel_values']
        out = sam3.model(pixel_values=px, input_ids=tok['input_ids'], attention_mask=tok['attention_mask'],
                         input_boxes=torch.tensor([[[30 / 150, 45 / 96, 30 / 150, 30 / 96]]]),
                         input_boxes_labels=torch.tensor([[1]]))
    want = np.sort((out.pred_logits[0].sigmoid() * out.presence_logits[0].sigmoid()).numpy())[::-1]
    np.testing.assert_allclose(scores, want, atol=1e-5)


def test_sam3_floor_can_leave_nothing():
    seg = Sam3Segmenter.tiny_random(score_floor=1.0)
    seg.set_image(IMAGE)
    masks, scores = seg.segment('a dog', [[5, 5, 40, 50]], [1])
    assert masks.shape == (0, 96, 150) and scores.shape == (0,)


def test_sam3_checks_its_inputs(sam3):
    fresh = Sam3Segmenter.tiny_random()
    with pytest.raises(Sam3Error, match='no image set'): fresh.segment('x', [[1, 1, 2, 2]], [1])
    sam3.set_image(IMAGE)
    with pytest.raises(InputError, match='outside'): sam3.segment('x', [[1, 1, 151, 20]], [1])
    with pytest.raises(InputError, match='one per box'): sam3.segment('x', [[1, 1, 20, 20]], [1, 1])
    with pytest.raises(InputError, match='str or None'): sam3.segment(3, [[1, 1, 20, 20]], [1])
    with pytest.raises(Sam3Error, match='nothing to look for'): sam3.segment(None, np.zeros((0, 4)), [])
    with pytest.raises(InputError, match='HxWx3 uint8'): sam3.set_image(IMAGE.astype(np.float32))
    assert sam3.shape is None                               # a failed set_image forgets the last image


def test_sam2_points_one_encoder_pass():
    seg = Sam2Segmenter.tiny_random()
    assert isinstance(seg, PromptableSegmenter)
    calls = []
    hook = seg.model.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    seg.set_image(IMAGE)
    a = seg.predict([[10.5, 20.5], [100, 50]], [1, 0])
    b = seg.predict([[10.5, 20.5]], [1], multimask=False)
    hook.remove()
    assert (a[0].shape, b[0].shape, len(calls)) == ((3, 96, 150), (1, 96, 150), 1)


def test_registry_entries():
    assert get_backend('sam3').kind == 'concept'
    assert [get_backend(f'sam2.1-{s}').kind for s in ('tiny', 'small', 'base-plus', 'large')] == ['segmenter'] * 4
    assert dict(get_backend('sam2.1-large').defaults) == {'model_id': 'facebook/sam2.1-hiera-large'}
    assert isinstance(create_backend('sam3', random=True, device='cpu'), Sam3Segmenter)
    assert isinstance(create_backend('sam2.1-tiny', random=True), Sam2Segmenter)
    assert 'transformers' in versions('sam3') and versions('sam3')['transformers'].split('.')[0] >= '5'


def test_offline_messages_are_quick_and_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    t = time.time()
    with pytest.raises(HubError) as e: Sam3Segmenter.from_pretrained(cache_dir=tmp_path)
    msg = str(e.value)
    for want in ('facebook/sam3', 'HF_HUB_OFFLINE', 'request access', 'https://huggingface.co/facebook/sam3',
                 'hf auth login', 'huggingface-cli login', 'HF_TOKEN', str(tmp_path)):
        assert want in msg, want
    with pytest.raises(HubError) as e: Sam2Segmenter.from_pretrained('small', cache_dir=tmp_path)
    assert 'facebook/sam2.1-hiera-small' in str(e.value) and 'request access' not in str(e.value)
    assert time.time() - t < 10


def test_unreachable_hub_is_one_quick_try(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')       # discard port: connection refused
    t = time.time()
    with pytest.raises(HubError, match='cannot reach http://127.0.0.1:9'): hub_snapshot('facebook/sam3', tmp_path, True)
    assert time.time() - t < 10


def _clip_tokenizer(folder):
    "A real CLIP tokenizer over a tiny vocabulary (letters and a few words, no merges), as files in `folder`."
    from transformers import CLIPTokenizer
    vocab = {'<|startoftext|>': 0, '<|endoftext|>': 1, 'a</w>': 2, 'dog</w>': 3, 'visual</w>': 4}
    for c in 'abcdefghijklmnopqrstuvwxyz':
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + '</w>', len(vocab))
    (folder/'vocab.json').write_text(json.dumps(vocab))
    (folder/'merges.txt').write_text('#version: 0.2\n')
    return CLIPTokenizer(str(folder/'vocab.json'), str(folder/'merges.txt'))


def test_from_pretrained_reads_a_local_folder(tmp_path):
    from transformers import Sam3Processor
    tiny = Sam3Segmenter.tiny_random(seed=3)
    (tmp_path/'tok').mkdir()
    tiny.tokenizer = _clip_tokenizer(tmp_path/'tok')
    Sam3Processor(tiny.processor, tiny.tokenizer).save_pretrained(tmp_path/'sam3')
    tiny.model.save_pretrained(tmp_path/'sam3')
    seg = Sam3Segmenter.from_pretrained(str(tmp_path/'sam3'), device='cpu', score_floor=0.0)
    seg.set_image(IMAGE)
    tiny.set_image(IMAGE)
    got, want = seg.segment(None, [[5, 5, 40, 50]], [1]), tiny.segment(None, [[5, 5, 40, 50]], [1])
    assert got[0].shape == (5, 96, 150)
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)    # same weights, same tokenizer, same answer

    small = Sam2Segmenter.tiny_random(seed=4)
    small.model.save_pretrained(tmp_path/'sam2')
    small.processor.save_pretrained(tmp_path/'sam2')
    s2 = Sam2Segmenter.from_pretrained(str(tmp_path/'sam2'), device='cpu')
    s2.set_image(IMAGE)
    small.set_image(IMAGE)
    np.testing.assert_allclose(s2.predict([[20, 30]], [1])[1], small.predict([[20, 30]], [1])[1], atol=1e-6)
    with pytest.raises(Sam3Error, match='does not hold SAM 3'): Sam3Segmenter.from_pretrained(str(tmp_path/'tok'))
