"""Seed 004's training data from MR phantoms: the mid-sagittal slices, the lumbar region box (stage 1),
disc boxes inside the grown region crop (stage 2), disc crops with herniated / not (classifier) and
4-class masks (segmentation). Every image comes from the slicing and cropping inference uses."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..levels import VERSE_ID
from ..lumbar_crops import (HERNIATION_CLASSES, LUMBAR_DISCS, central_slices, grow_box, image_to_crop, mask_box,
                            seg_target, square_crop)
from ..phantom import make_phantom
from ..slicing import Intensity, make_stack, sample_labels
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE
from .yolo_export import write_data_yaml

MR_INTENSITY = {"type": "percentile", "low": 1.0, "high": 99.5}
REGION_LABELS = [VERSE_ID[f"L{i}"] for i in range(1, 6)] + [100 + VERSE_ID[f"L{i}"] for i in range(1, 6)]


def lumbar_case_args(seed: int) -> dict:
    """A lumbar MR request: from T10-T12 down to S1, herniations drawn per disc, mostly sagittal."""
    rng = np.random.default_rng(seed + 11)
    start = str(rng.choice(["T10", "T11", "T12"]))
    discs = [d for d in LUMBAR_DISCS if d != "T12-L1"]
    herniations = [d for d in discs if rng.random() < 0.3]
    orientation = str(rng.choice(["sagittal", "axial", "oblique"], p=[0.6, 0.2, 0.2]))
    inplane = float(rng.uniform(0.6, 1.1))
    spacing = (inplane, inplane, float(rng.uniform(1.0, 4.0)))
    if orientation == "sagittal":  # sagittal MR: thick slices across the patient
        spacing = (spacing[2], inplane, inplane)
    return {"levels": f"{start}-S1", "modality": "mr", "herniations": herniations, "seed": seed,
            "orientation": orientation, "spacing": spacing}


def mid_slice_of(stack, disc_centres) -> int:
    """The sagittal slice through the discs' mean centre (the truth's midline)."""
    return int(round(float(stack.from_ras([np.mean(disc_centres, 0)])[0][2])))


def yolo_box_line(box, size) -> str:
    x1, y1, x2, y2 = np.clip(box, 0, size)
    return f"0 {(x1 + x2) / 2 / size:.5f} {(y1 + y2) / 2 / size:.5f} {(x2 - x1) / size:.5f} {(y2 - y1) / size:.5f}"


def write_yolo_image(folder: Path, split: str, stem: str, image: np.ndarray, lines: list[str]) -> None:
    (folder / "images" / split).mkdir(parents=True, exist_ok=True)
    (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / split / f"{stem}.png"), image)
    (folder / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def export_lumbar_dataset(out_dir: str | Path, n_train: int, n_val: int, size: int = 256, crop_size: int = 64,
                          mid_slices: int = 3, slice_mm: float = 2.0, log=print,
                          seed_bases: tuple[int, int] = (TRAIN_SEED_BASE, VAL_SEED_BASE)) -> Path:
    out_dir = Path(out_dir)
    intensity = Intensity.from_manifest(MR_INTENSITY)
    crops, crop_labels, crop_split, seg_images, seg_masks, seg_split, cases = [], [], [], [], [], [], []
    seg_sacrum = []  # real exams leave the sacrum unlabelled: a model mixing both must not learn it
    for split, base, n in (("train", seed_bases[0], n_train), ("val", seed_bases[1], n_val)):
        for seed in range(base, base + n):
            args = lumbar_case_args(seed)
            case = make_phantom(**args)
            rng = np.random.default_rng(seed)
            stack = make_stack(case.image, "sagittal", size, intensity, slice_mm=slice_mm)
            discs = {d["label"]: d for d in case.truth["discs"]}
            mid = mid_slice_of(stack, [d["center_ras"] for d in case.truth["discs"]])
            chosen = central_slices(mid, mid_slices, len(stack))
            labels = sample_labels(case.labels, stack, slices=chosen)
            for s, lab in zip(chosen, labels):
                image, stem = stack.images[s], f"ph{seed}_s{s:03d}"
                region = mask_box(np.isin(lab, REGION_LABELS))
                if region is None:
                    continue
                write_yolo_image(out_dir / "region", split, stem, image, [yolo_box_line(region, size)])
                # stage 2 sees the grown region; jitter it as a detector's box would be
                jitter = region + rng.normal(0, 0.02, 4) * (region[2] - region[0])
                crop, affine = square_crop(image, grow_box(jitter), size)
                lines = []
                for value, disc in discs.items():
                    box = mask_box(lab == value)
                    if box is None:
                        continue
                    in_crop = image_to_crop(box, affine)
                    if in_crop[2] > 0 and in_crop[3] > 0 and in_crop[0] < size and in_crop[1] < size:
                        lines.append(yolo_box_line(in_crop, size))
                    disc_crop, _ = square_crop(image, grow_box(box + rng.normal(0, 1.0, 4)), crop_size)
                    crops.append(disc_crop)
                    crop_labels.append(int(disc["herniated"]))
                    crop_split.append(split)
                write_yolo_image(out_dir / "discs", split, stem, crop, lines)
                seg_images.append(image)
                seg_masks.append(seg_target(lab))
                seg_sacrum.append(lab == VERSE_ID["S1"])
                seg_split.append(split)
            cases.append({"split": split, **{k: v for k, v in args.items() if k != "spacing"},
                          "spacing": list(args["spacing"])})
            log(f"{split} seed {seed}: {len(seg_images)} slices, {len(crops)} disc crops so far")
    for name, cls in (("region", "lumbar spine"), ("discs", "intervertebral disc")):
        write_data_yaml(out_dir / name, [cls])
    np.savez_compressed(out_dir / "herniation.npz", images=np.stack(crops), labels=np.array(crop_labels),
                        split=np.array(crop_split), classes=np.array(HERNIATION_CLASSES))
    np.savez_compressed(out_dir / "segmentation.npz", images=np.stack(seg_images), masks=np.stack(seg_masks),
                        sacrum=np.stack(seg_sacrum),
                        split=np.array(seg_split))
    (out_dir / "dataset.json").write_text(json.dumps({
        "source": "SpineFractureAI lumbar MR phantoms", "cases": cases, "size": size, "crop_size": crop_size,
        "mid_slices": mid_slices, "slice_mm": slice_mm, "intensity": MR_INTENSITY,
        "herniated_crops": int(np.sum(crop_labels)), "crops": len(crops), "slices": len(seg_images)}, indent=1))
    return out_dir

