"""A quality score for a label mask without ground truth: the colour contrast across its outline.

A correct outline separates two different things: just inside it is the object, just outside the background. A
dilated mask has background on both sides of its outline, an eroded one object on both sides, a shifted or swapped
one a mixture. So compare the colours of the band just inside the outline with the band just outside it (each 2% of
the image diagonal wide): score = 1 - Bhattacharyya coefficient of their colour histograms (8 levels per RGB
channel), 0 when the two bands look alike, towards 1 when they share no colour. It looks at the image and the mask
only, never at a true mask. A thin or empty band (a tiny mask, or a mask filling the image) scores 0."""
import numpy as np
import torch
import torch.nn.functional as F

def _dilate(m, d):
    t = torch.from_numpy(np.array(m, dtype=np.float32))[None, None]
    return F.max_pool2d(t, 2*d + 1, stride=1, padding=d)[0, 0].numpy() > 0

def _erode(m, d): return ~_dilate(~m, d)

def label_quality(img: np.ndarray, mask: np.ndarray, width: float = 0.02) -> float:
    "Colour contrast across the outline of `mask` on `img`, in [0, 1]: higher = more likely a correct outline."
    m = np.asarray(mask, bool)
    w = max(1, round(width * np.hypot(*m.shape)))
    inner, outer = m & ~_erode(m, w), _dilate(m, w) & ~m
    if inner.sum() < 16 or outer.sum() < 16: return 0.0
    q = (img[..., 0] // 32).astype(np.int64) * 64 + (img[..., 1] // 32) * 8 + img[..., 2] // 32
    hi = np.bincount(q[inner], minlength=512) / inner.sum()
    ho = np.bincount(q[outer], minlength=512) / outer.sum()
    return float(1 - np.sqrt(hi * ho).sum())
