"""Fidelity: each backend computes what the official inference code computes, on tiny seeded random models.

A refactor of a backend must not drift from the official numbers, so each test runs the official entry point beside
ours on the same weights and pixels: SAM 1 against segment-anything's `SamPredictor` (bit for bit), SAM 2.1 against
transformers' documented `Sam2Processor` usage, CLIP windows against open_clip's own preprocessing and encoders, and
SAM 3 against `Sam3Processor.post_process_instance_segmentation` (scores) and Meta's mask rule (masks)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from segwl.backends.sam import SamSegmenter, tiny_sam
from segwl.backends.sam2 import Sam2Segmenter
from segwl.backends.sam3 import Sam3Segmenter, boxes_cxcywh
from segwl.backends.clip import ClipScorer

IMAGE = np.random.default_rng(7).integers(0, 256, (83, 131, 3), dtype=np.uint8)    # odd sizes: resizing is exercised


pytestmark = pytest.mark.usefixtures('one_thread')  # one thread: ours and the official call reduce alike


# --- SAM 1: segment-anything's SamPredictor ----------------------------------------------------------------------

@pytest.mark.parametrize('multimask', [True, False])
def test_sam1_is_sam_predictor_bit_for_bit(multimask):
    from segment_anything import SamPredictor
    ours = SamSegmenter(tiny_sam(seed=3))
    official = SamPredictor(tiny_sam(seed=3))
    ours.set_image(IMAGE)
    official.set_image(IMAGE, image_format='RGB')
    for pts, labels in [([[40.5, 30.5]], [1]), ([[10, 70], [120, 5], [65.25, 41.75]], [1, 0, 1])]:
        got_masks, got_scores = ours.predict(np.array(pts), np.array(labels), multimask=multimask)
        want_masks, want_scores, _ = official.predict(point_coords=np.array(pts, float), point_labels=np.array(labels),
                                                      multimask_output=multimask)
        assert got_masks.shape == (3 if multimask else 1, 83, 131)
        assert np.array_equal(got_masks, want_masks)
        assert np.array_equal(got_scores, want_scores.astype(np.float32))


# --- SAM 2.1: transformers' documented usage ----------------------------------------------------------------------

@pytest.mark.parametrize('multimask', [True, False])
def test_sam2_is_transformers_documented_usage(multimask):
    "processor(images, input_points, input_labels) -> model(**inputs) -> processor.post_process_masks(original_sizes)."
    from transformers import Sam2Processor
    ours = Sam2Segmenter.tiny_random(seed=5)
    processor = Sam2Processor(image_processor=ours.processor)
    pts, labels = [[40.5, 30.5], [100, 12]], [1, 0]
    inputs = processor(images=Image.fromarray(IMAGE), input_points=[[pts]], input_labels=[[labels]],
                       return_tensors='pt')
    with torch.no_grad():
        outputs = ours.model(**inputs, multimask_output=multimask)
    want_masks = processor.post_process_masks(outputs.pred_masks, inputs['original_sizes'])[0][0].numpy()
    want_scores = outputs.iou_scores[0, 0].numpy()
    ours.set_image(IMAGE)
    got_masks, got_scores = ours.predict(pts, labels, multimask=multimask)
    assert got_masks.shape == want_masks.shape == (3 if multimask else 1, 83, 131)
    assert np.array_equal(got_masks, want_masks)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-6)


# --- CLIP windows: open_clip's own pipeline on the window's pixels -------------------------------------------------

def test_clip_windows_are_open_clip_on_each_window():
    "Windows of the input's size are not resized: each score is the cosine open_clip's preprocess and encoders give."
    sc = ClipScorer.tiny_random(seed=2, window=64, stride=32, batch_size=4, map_mode='windows')
    assert sc.input_size == (64, 64)
    image = np.random.default_rng(3).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    boxes, scores = sc.window_scores(image, 'a photo of a cat')
    assert len(boxes) == 3 * 4 and {(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes} == {(64, 64)}
    with torch.no_grad():
        pics = torch.stack([sc.preprocess(Image.fromarray(image[y0:y1, x0:x1])) for x0, y0, x1, y1 in boxes])
        img = F.normalize(sc.model.encode_image(pics), dim=-1)
        txt = F.normalize(sc.model.encode_text(sc.tokenizer(['a photo of a cat'])), dim=-1)
    np.testing.assert_allclose(scores, (img @ txt[0]).numpy(), rtol=0, atol=1e-5)


def test_clip_resized_windows_are_open_clip_on_the_same_pixels():
    "Windows larger than the input are resized by segwl; given those pixels, the score is open_clip's cosine."
    sc = ClipScorer.tiny_random(seed=2, window=96, stride=48, batch_size=8, map_mode='windows')
    image = np.random.default_rng(4).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    boxes, scores = sc.window_scores(image, 'a cat')
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        pics = torch.cat([sc._resized(x[..., y0:y1, x0:x1], (64, 64)) for x0, y0, x1, y1 in boxes])
        img = F.normalize(sc.model.encode_image(pics), dim=-1)
        txt = F.normalize(sc.model.encode_text(sc.tokenizer(['a cat'])), dim=-1)
    np.testing.assert_allclose(scores, (img @ txt[0]).numpy(), rtol=0, atol=1e-5)
    # the resize is open_clip's (PIL bicubic) to within rounding: the same window through open_clip's preprocess
    x0, y0, x1, y1 = boxes[0]
    pil = sc.preprocess(Image.fromarray(image[y0:y1, x0:x1]))
    assert float((pil - pics[0]).abs().mean()) < 0.05


# --- SAM 3: transformers' post-processing (scores), Meta's rule (masks) ------------------------------------------

@pytest.fixture(scope='module')
def sam3_both():
    "Ours on a kept vision pass, and transformers' documented one-call usage on the same model, text and boxes."
    seg = Sam3Segmenter.tiny_random(seed=6)
    # A random init's mask logits are ~1e-5, where float32's sigmoid rounds to 0.5 and Meta's `> 0.5` is a coin toss:
    # scaling the two projections whose dot product makes the logits gives logits of a trained model's size (~1-10).
    with torch.no_grad():
        for layer in (seg.model.mask_decoder.instance_projection, seg.model.mask_decoder.mask_embedder.layers[-1]):
            layer.weight.mul_(1000)
            layer.bias.mul_(1000)
    text, boxes, labels = 'a cat', [[10, 12, 60, 70], [80, 5, 125, 50]], [1, 0]
    seg.set_image(IMAGE)
    masks, scores = seg.segment(text, boxes, labels)
    tok = seg.tokenizer(text)
    with torch.no_grad():
        px = seg.processor(images=IMAGE, return_tensors='pt')['pixel_values']
        out = seg.model(pixel_values=px, input_ids=tok['input_ids'], attention_mask=tok['attention_mask'],
                        input_boxes=torch.tensor(boxes_cxcywh(boxes, IMAGE.shape[:2]), dtype=torch.float32)[None],
                        input_boxes_labels=torch.tensor([labels]))
    return seg, masks, scores, out


def sam3_processor(seg, folder):
    "transformers' `Sam3Processor` over the tiny twin's image processor and a real CLIP tokenizer of a tiny vocabulary."
    import json
    from transformers import CLIPTokenizer, Sam3Processor
    vocab = {'<|startoftext|>': 0, '<|endoftext|>': 1, 'a</w>': 2, 'cat</w>': 3}
    (folder/'vocab.json').write_text(json.dumps(vocab))
    (folder/'merges.txt').write_text('#version: 0.2\n')
    return Sam3Processor(seg.processor, CLIPTokenizer(str(folder/'vocab.json'), str(folder/'merges.txt')))


def test_sam3_scores_are_post_process_instance_segmentation(sam3_both, tmp_path):
    seg, masks, scores, out = sam3_both
    processor = sam3_processor(seg, tmp_path)
    res = processor.post_process_instance_segmentation(out, threshold=-1.0, target_sizes=[IMAGE.shape[:2]])[0]
    want = np.sort(res['scores'].numpy())[::-1]                     # transformers keeps query order; segwl sorts
    assert len(scores) == len(want) == 5
    np.testing.assert_allclose(scores, want, rtol=0, atol=1e-6)


def test_sam3_masks_follow_metas_rule(sam3_both):
    "Meta's Sam3Processor: mask logits bilinearly upsampled to the image, sigmoid, > 0.5 (that is, logits > 0)."
    seg, masks, scores, out = sam3_both
    probs = (out.pred_logits[0].sigmoid() * out.presence_logits[0].sigmoid()).numpy()
    order = np.argsort(-probs, kind='stable')
    up = F.interpolate(out.pred_masks[0][order][:, None], IMAGE.shape[:2], mode='bilinear', align_corners=False)
    meta = (up.sigmoid() > 0.5)[:, 0].numpy()
    assert masks.shape == meta.shape == (5, 83, 131)
    assert np.array_equal(masks, meta)


def test_sam3_transformers_masks_differ_only_on_boundaries(sam3_both, tmp_path):
    """transformers' post-processing upsamples probabilities, not logits, then thresholds: where the two rules
    disagree the upsampled logit is near 0 (a boundary pixel), and they agree everywhere else."""
    seg, masks, scores, out = sam3_both
    processor = sam3_processor(seg, tmp_path)
    res = processor.post_process_instance_segmentation(out, threshold=-1.0, target_sizes=[IMAGE.shape[:2]])[0]
    order = np.argsort(-res['scores'].numpy(), kind='stable')
    theirs = res['masks'].numpy()[order]
    differ = theirs != masks
    assert differ.any(), "transformers now thresholds like Meta: update the mask rule's note in nbs/05b_sam3.ipynb"
    assert differ.mean() < 0.05
    # Bilinear mixes at most 2x2 low-resolution neighbours; where all of them have one sign both rules agree, so a
    # disagreeing pixel lies between a positive and a negative logit: on a boundary of the low-resolution mask.
    low = out.pred_masks[0][order]
    pos = F.interpolate((low > 0).float()[:, None], IMAGE.shape[:2], mode='bilinear', align_corners=False)[:, 0]
    mixed = pos[torch.from_numpy(differ)]
    assert ((mixed > 0) & (mixed < 1)).all()
