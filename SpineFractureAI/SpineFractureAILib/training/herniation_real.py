"""Herniation training crops without real herniation labels: real disc crops are the negatives (the
exams are volunteers and patients without disc labels of herniation), and the same crops deformed
(a posterior bulge into the canal, lost height, darker nucleus) are the positives. Phantom crops of
both classes join them, so neither class is "the real one" and the model cannot learn texture.

The deformation stands in for real herniations: say so wherever the model's output is shown."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..lumbar_crops import HERNIATION_CLASSES, grow_box, square_crop
from .lumbar_real import exam_levels, slice_targets, structures_head_first, training_exams


def herniate(crop: np.ndarray, disc_box_in_crop, rng, strength: float | None = None) -> np.ndarray:
    """A posterior disc herniation drawn into a sagittal disc crop (columns run anterior -> posterior):
    disc material pushed past the posterior margin, the disc a little lower and darker."""
    x1, y1, x2, y2 = disc_box_in_crop
    h, w = max(y2 - y1, 2.0), max(x2 - x1, 2.0)
    strength = float(rng.uniform(0.35, 1.0) if strength is None else strength)
    size = crop.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yc = (y1 + y2) / 2 + rng.uniform(-0.2, 0.2) * h
    # how far the bulge reaches past the posterior margin: 15-45 % of the disc's depth
    reach = strength * rng.uniform(0.15, 0.45) * w
    across = np.exp(-((yy - yc) / (0.45 * h * rng.uniform(0.7, 1.3))) ** 2)
    along = np.clip((xx - (x2 - 0.5 * w)) / (0.5 * w), 0, 1) * np.exp(-np.clip(xx - x2, 0, None) / max(reach, 1))
    dx = (reach * across * along).astype(np.float32)
    squeeze = 1 + strength * rng.uniform(0.0, 0.25)  # lost height: sample further from the disc centre
    map_y = (yc + (yy - yc) * np.where(np.abs(xx - (x1 + x2) / 2) < w / 2, squeeze, 1.0)).astype(np.float32)
    out = cv2.remap(crop, xx - dx, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    nucleus = np.exp(-(((xx - (x1 + x2) / 2) / (0.5 * w)) ** 2 + ((yy - yc) / (0.5 * h)) ** 2))
    darker = 1 - strength * rng.uniform(0.1, 0.45) * nucleus
    return np.clip(out * darker, 0, 255).astype(np.uint8)


def export_real_disc_crops(root, out_dir, size: int = 256, crop_size: int = 64, mid_slices: int = 3,
                           phantom_npz: str | Path | None = None, seed: int = 0, log=print) -> Path:
    """herniation.npz: real negatives, their herniated copies, and (optionally) phantom crops."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, labels, split, source = [], [], [], []
    for exam, part, stack, lab in training_exams(root, size):
        area = (lab > 0).sum((1, 2))
        mid = int(np.argmax(area))
        chosen = range(max(0, mid - mid_slices // 2), min(len(stack), mid - mid_slices // 2 + mid_slices))
        order = structures_head_first(lab[list(chosen)])
        levels = exam_levels(exam, len(order))
        for s in chosen:
            _, _, discs = slice_targets(lab[s], order, levels, exam.split("_")[0])
            for box in discs:
                crop, affine = square_crop(stack.images[s], grow_box(box + rng.normal(0, 1.0, 4)), crop_size)
                corners = np.array([[box[0], box[1], 1], [box[2], box[3], 1]]) @ affine.T
                images += [crop, herniate(crop, corners.ravel(), rng)]
                labels += [0, 1]
                split += [part, part]
                source += ["real", "real deformed"]
        log(f"{part} {exam}: {len(images)} crops so far")
    if phantom_npz and Path(phantom_npz).exists():
        ph = np.load(phantom_npz)
        images += list(ph["images"])
        labels += list(ph["labels"])
        split += list(ph["split"])
        source += ["phantom"] * len(ph["labels"])
    np.savez_compressed(out_dir / "herniation.npz", images=np.stack(images), labels=np.array(labels),
                        split=np.array(split), source=np.array(source), classes=np.array(HERNIATION_CLASSES))
    counts = {s: int(np.sum(np.array(source) == s)) for s in sorted(set(source))}
    (out_dir / "herniation.json").write_text(json.dumps({
        "crops": len(images), "by_source": counts, "crop_size": crop_size,
        "positives": "real disc crops deformed by training/herniation_real.herniate, and phantom herniations: "
                     "no real herniation label exists here"}, indent=1))
    return out_dir
