"""What the radiograph models see: an 8-bit image windowed on the patient, and square crops round
each body; training and inference call the same functions."""
from __future__ import annotations

import cv2
import numpy as np

CROP_SIZE = 96
CROP_CONTEXT = 1.7  # crop side / the body's larger box side: the endplates' neighbours are in view


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Bone-bright pixels of any range -> uint8, windowed on the 1st-99.8th percentile of the patient."""
    p = pixels.astype(np.float32)
    top = np.percentile(p, 99.5)
    body = p[p > p.min() + 0.2 * (top - p.min())]
    lo, hi = np.percentile(body if body.size > 100 else p, [1.0, 99.8])
    return np.round(np.clip((p - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def crop_body(image8: np.ndarray, box, size: int = CROP_SIZE) -> np.ndarray:
    """A square crop centred on a box [c1, r1, c2, r2] (pixels), CROP_CONTEXT times its larger side."""
    c1, r1, c2, r2 = box
    side = max(c2 - c1, r2 - r1) * CROP_CONTEXT
    cc, rc = (c1 + c2) / 2, (r1 + r2) / 2
    scale = size / max(side, 1.0)
    m = np.array([[scale, 0, size / 2 - cc * scale], [0, scale, size / 2 - rc * scale]], np.float32)
    return cv2.warpAffine(image8, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_resized(image8: np.ndarray, box, size: int) -> np.ndarray:
    """A model's input: the CROP_SIZE crop (as the training data stores it) resized to size."""
    crop = crop_body(image8, box)
    return crop if size == CROP_SIZE else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
