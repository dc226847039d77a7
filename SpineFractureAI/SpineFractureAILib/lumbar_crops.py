"""Seed 004's image handling, shared by training export and inference so both see the same pixels:
mid-sagittal slice choice, boxes grown by 10 % before cropping, square crops (never distorted),
the segmentation classes."""
from __future__ import annotations

import cv2
import numpy as np

SEG_CLASSES = ["background", "intervertebral disc", "vertebral body", "spinal canal"]
LUMBAR_DISCS = ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
HERNIATION_CLASSES = ["not herniated", "herniated"]
GROW = 0.10  # the paper grows every box by 10 % before cropping


def grow_box(box, fraction: float = GROW) -> np.ndarray:
    """(x1, y1, x2, y2) grown by `fraction` of its width and height (half on each side)."""
    x1, y1, x2, y2 = map(float, box)
    dx, dy = (x2 - x1) * fraction / 2, (y2 - y1) * fraction / 2
    return np.array([x1 - dx, y1 - dy, x2 + dx, y2 + dy])


def square_crop(image: np.ndarray, box, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The square around a box (side = its longer edge), zero outside the image, resized to
    out_size; returns (crop, affine) with crop pixel = affine @ (x, y, 1) of the image."""
    x1, y1, x2, y2 = map(float, box)
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = out_size / side
    affine = np.array([[scale, 0, out_size / 2 - scale * cx], [0, scale, out_size / 2 - scale * cy]])
    crop = cv2.warpAffine(image, affine, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, affine


def image_to_crop(box, affine: np.ndarray) -> np.ndarray:
    """One box in image pixels -> crop pixels (square_crop's affine)."""
    corners = np.array([[box[0], box[1], 1.0], [box[2], box[3], 1.0]]) @ affine.T
    return np.r_[corners[0], corners[1]]


def crop_to_image(boxes: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Boxes in crop pixels -> image pixels (the inverse of square_crop's affine)."""
    scale, ox, oy = affine[0, 0], affine[0, 2], affine[1, 2]
    b = np.asarray(boxes, float).reshape(-1, 4)
    return np.stack([(b[:, 0] - ox) / scale, (b[:, 1] - oy) / scale, (b[:, 2] - ox) / scale,
                     (b[:, 3] - oy) / scale], 1)


def central_slices(centre: int, n: int, total: int) -> list[int]:
    """n neighbouring slice indices centred on `centre`, kept inside the stack."""
    first = int(np.clip(centre - n // 2, 0, max(total - n, 0)))
    return list(range(first, min(first + n, total)))


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def gap_box(upper: np.ndarray, lower: np.ndarray) -> np.ndarray | None:
    """The disc between two body masks of one slice: over the columns both cover, from the upper
    body's lowest pixel to the lower body's highest. A column where one body only grazes (a rounded
    corner: there the gap runs down the body's side) is not the disc: columns whose gap is more than
    twice the median gap are left out."""
    cols = np.nonzero(upper.any(0) & lower.any(0))[0]
    if len(cols) < 3:
        return None
    rows = np.arange(upper.shape[0])[:, None]
    bottom = np.where(upper[:, cols], rows, -1).max(0)
    top = np.where(lower[:, cols], rows, upper.shape[0]).min(0)
    ok = top > bottom
    if not ok.any():
        return None
    ok &= top - bottom <= 2 * np.median((top - bottom)[ok])
    return np.array([cols[ok].min(), bottom[ok].min() + 1, cols[ok].max() + 1, top[ok].max()], float)


def seg_target(label_img: np.ndarray) -> np.ndarray:
    """Phantom labels (VerSe bodies 1-28, discs 100 + upper level, canal 200) -> SEG_CLASSES ids."""
    out = np.zeros(label_img.shape, np.uint8)
    out[(label_img >= 100) & (label_img < 200)] = 1
    out[(label_img >= 1) & (label_img <= 28)] = 2
    out[label_img == 200] = 3
    return out
