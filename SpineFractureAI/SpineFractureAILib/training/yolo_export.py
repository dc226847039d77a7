"""Write YOLO-format segmentation data (sagittal slices + polygons) from labelled volumes.

The images go through exactly the slicing the predictor uses, so training and
inference see the same pixels.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..slicing import Intensity, make_stack, sample_labels
from ..terminology import FRACTURE_SEG_CLASSES  # noqa: F401  (re-exported for the training modules)
from ..volume import Volume


def mask_polygon(mask: np.ndarray, min_area: float = 12.0) -> np.ndarray | None:
    """The largest outer contour of a binary mask as (N, 2) pixel-edge coordinates."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best = max(contours, key=cv2.contourArea)
    if cv2.contourArea(best) < min_area or len(best) < 3:
        return None
    return best[:, 0, :].astype(np.float64) + 0.5  # OpenCV gives pixel indices; centres in YOLO units


def slice_instances(label_img: np.ndarray, class_of_label: dict[int, int], min_area: float = 12.0):
    """[(class, polygon)] for every labelled object in one slice."""
    found = []
    for value in np.unique(label_img):
        if int(value) in class_of_label:
            poly = mask_polygon(label_img == value, min_area)
            if poly is not None:
                found.append((class_of_label[int(value)], poly))
    return found


def write_yolo_slices(out_dir: Path, split: str, name: str, image: Volume, labels: Volume,
                      class_of_label: dict[int, int], size: int, intensity: Intensity,
                      slice_mm: float, empty_fraction: float = 0.1,
                      rng: np.random.Generator | None = None, val_every: int = 0,
                      drop_class: int | None = None) -> int:
    """Export one labelled volume's sagittal slices; returns the number of images written.
    Objects of `drop_class` keep their slice (a negative example) but write no label line."""
    rng = rng or np.random.default_rng(0)
    stack = make_stack(image, "sagittal", size, intensity, slice_mm=slice_mm)
    label_stack = sample_labels(labels, stack)
    written = 0
    for s in range(len(stack)):
        instances = slice_instances(label_stack[s], class_of_label)
        if not instances and rng.random() > empty_fraction:
            continue
        instances = [(cls, poly) for cls, poly in instances if cls != drop_class]
        part = "val" if val_every and written % val_every == val_every - 1 else split
        img_dir, lab_dir = out_dir / "images" / part, out_dir / "labels" / part
        img_dir.mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{name}_s{s:03d}"
        cv2.imwrite(str(img_dir / f"{stem}.png"), stack.images[s])
        lines = [f"{cls} " + " ".join(f"{v / size:.5f}" for v in poly.ravel()) for cls, poly in instances]
        (lab_dir / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        written += 1
    return written


def write_data_yaml(out_dir: Path, names: list[str], extra: dict | None = None) -> Path:
    lines = [f"path: {out_dir.resolve()}", "train: images/train", "val: images/val", "names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    path = out_dir / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    if extra:
        (out_dir / "dataset.json").write_text(json.dumps(extra, indent=1))
    return path
