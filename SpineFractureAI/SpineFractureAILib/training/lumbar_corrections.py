"""The correction loop for lumbar MR (seed 004): corrected disc / vertebral body / spinal canal segments
and reviewed disc findings -> the formats `spinefracture train lumbar-mr --data DIR` reads: region
and disc boxes (YOLO), disc crops with herniated / not, 4-class masks; appended, with a manifest."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..lumbar_crops import grow_box, image_to_crop, mask_box, square_crop
from ..slicing import Intensity, make_stack, sample_labels
from ..volume import Volume
from .lumbar_data import MR_INTENSITY, write_yolo_image, yolo_box_line
from .yolo_export import write_data_yaml

SEGMENT_IDS = {"intervertebral disc": 1, "vertebral body": 2, "spinal canal": 3}


def _append_npz(path: Path, **arrays) -> None:
    """Add rows to a training archive (train_ensemble reads images, labels or masks, and split)."""
    if path.exists():
        old = np.load(path)
        arrays = {k: np.concatenate([old[k], v]) for k, v in arrays.items()}
    np.savez_compressed(path, **arrays)


def export_lumbar_labels(volume: Volume, labelmap: np.ndarray, names: dict[int, str], out_dir: str | Path,
                         discs: list[tuple[list, bool]], review: dict | None = None, size: int = 256,
                         crop_size: int = 64, slice_mm: float = 2.0) -> dict:
    """discs: (centre RAS, herniated) per reviewed disc finding (a rejected finding flips its label)."""
    out_dir = Path(out_dir)
    classes = np.zeros(labelmap.shape, np.uint8)
    for value, name in names.items():
        if name.strip().lower() in SEGMENT_IDS:
            classes[labelmap == value] = SEGMENT_IDS[name.strip().lower()]
    if not classes.any():
        raise ValueError("no segment named Intervertebral disc / Vertebral body / Spinal canal to export")
    stack = make_stack(volume, "sagittal", size, Intensity.from_manifest(MR_INTENSITY), slice_mm=slice_mm)
    labels = sample_labels(Volume(classes, volume.ijk_to_ras), stack)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    seg_images, seg_masks, crops, crop_labels = [], [], [], []
    slices = [s for s in range(len(stack)) if (labels[s] > 0).sum() >= 50]  # the analysed, labelled slices
    for n, s in enumerate(slices):
        split = "val" if n % 5 == 4 else "train"
        image, lab, stem = stack.images[s], labels[s], f"{volume.name}_{stamp}_s{s:03d}"
        seg_images.append(image)
        seg_masks.append(lab)
        region = mask_box(np.isin(lab, (1, 2)))
        write_yolo_image(out_dir / "region", split, stem, image, [yolo_box_line(region, size)])
        crop, affine = square_crop(image, grow_box(region), size)
        parts, count = ndimage.label(lab == 1)
        lines = []
        for box in (mask_box(parts == k) for k in range(1, count + 1)):
            lines.append(yolo_box_line(image_to_crop(box, affine), size))
            centre = stack.to_ras(s, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            near = [(np.linalg.norm(np.subtract(c, centre)), h) for c, h in discs]
            if near and min(near)[0] <= 15.0:  # a reviewed disc finding says herniated or not
                crops.append(square_crop(image, grow_box(box), crop_size)[0])
                crop_labels.append(int(min(near)[1]))
        write_yolo_image(out_dir / "discs", split, stem, crop, lines)
    for name, cls in (("region", "lumbar spine"), ("discs", "intervertebral disc")):
        write_data_yaml(out_dir / name, [cls])
    split = np.array(["val" if n % 5 == 4 else "train" for n in range(len(seg_images))])
    _append_npz(out_dir / "segmentation.npz", images=np.stack(seg_images), masks=np.stack(seg_masks), split=split)
    if crops:
        _append_npz(out_dir / "herniation.npz", images=np.stack(crops), labels=np.array(crop_labels),
                    split=np.array(["val" if n % 5 == 4 else "train" for n in range(len(crops))]))
    entry = {"source_volume": volume.name, "time": stamp, "slices": len(slices), "disc_crops": len(crops),
             "herniated_crops": int(np.sum(crop_labels)), **(review or {})}
    manifest = out_dir / "corrections.json"
    entries = json.loads(manifest.read_text()) if manifest.exists() else []
    manifest.write_text(json.dumps(entries + [entry], indent=1))
    info = out_dir / "dataset.json"
    if not info.exists():
        info.write_text(json.dumps({"source": "corrections", "cases": [], "size": size, "crop_size": crop_size,
                                    "mid_slices": 3, "slice_mm": slice_mm, "intensity": MR_INTENSITY,
                                    "slices": 0, "crops": 0, "herniated_crops": 0}, indent=1))
    return entry
