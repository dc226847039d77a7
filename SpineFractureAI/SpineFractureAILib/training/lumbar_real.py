"""Seed 004's training data from the real sagittal lumbar MR exams in ../shared/realdata/lumbar-mr.

Each exam has masks of one kind only (vertebral bodies, or the five lumbar discs), so every pixel
of a segmentation target carries the set of classes it may be (a bit per class): a body-mask exam
says "body" inside a body and "anything but body" elsewhere. The loss is the marginal likelihood of
that set, so an exam never teaches that an unlabelled disc is background.

Disc boxes for the stage-2 detector come from the disc masks, or from the gap between consecutive
bodies (the L5-S1 box from the L4-L5 gap moved below L5, as the sacrum is not labelled).
The split is by exam and fixed (`exam_split`); the test exams are never exported."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..levels import LEVELS
from ..lumbar_crops import SEG_CLASSES, gap_box, grow_box, image_to_crop, mask_box, square_crop
from ..slicing import Intensity, make_stack, sample_labels
from ..volume import read_volume
from .lumbar_data import MR_INTENSITY, write_yolo_image, yolo_box_line
from .yolo_export import write_data_yaml

# Which level the top labelled body is, per set (vb1's ranges vary and may include S1: test only).
TOP_BODY = {"vb2": "T11", "vb3": "L1"}
BG, DISC, BODY, CANAL = (1 << SEG_CLASSES.index(c) for c in SEG_CLASSES)
ANY = BG | DISC | BODY | CANAL
# Held out: both fastcleverseg copies (ivd 11, vb2 05), every vb1 patient exam (7 hospitals,
# fractures: never seen), and a fixed share of the others. Validation picks epochs and weights.
TEST = {"ivd_11", "ivd_46", "vb2_05", "vb2_06", "vb2_12", "vb2_19"} | {f"vb3_{n:02d}" for n in range(1, 60, 5)}
VAL = {"ivd_25", "vb2_09", "vb2_17"} | {f"vb3_{n:02d}" for n in range(3, 60, 10)}


def exam_split(exam: str) -> str:
    if exam.startswith("vb1") or exam in TEST:
        return "test"
    return "val" if exam in VAL else "train"


def list_exams(root: str | Path) -> list[str]:
    return sorted(re.sub(r"_img\.nii\.gz$", "", p.name) for p in Path(root).glob("*_img.nii.gz"))


def read_exam(root: str | Path, exam: str):
    root = Path(root)
    return read_volume(root / f"{exam}_img.nii.gz", "mr"), read_volume(root / f"{exam}_lab.nii.gz", "mr")


def structures_head_first(labels: np.ndarray) -> list[int]:
    """Label values sorted superior -> inferior by their mean row (never by value)."""
    values = [int(v) for v in np.unique(labels) if v]
    return sorted(values, key=lambda v: float(np.nonzero(labels == v)[-2].mean()))


def exam_levels(exam: str, n: int) -> list[str] | None:
    """The level of each labelled structure head first: bodies (vb2, vb3) or discs (ivd)."""
    kind = exam.split("_")[0]
    if kind == "ivd":
        return ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"][-n:]
    if kind in TOP_BODY:
        top = LEVELS.index(TOP_BODY[kind])
        return LEVELS[top: top + n]
    return None


def slice_targets(lab: np.ndarray, order: list[int], levels: list[str] | None, kind: str):
    """One sagittal slice's targets: allowed-class bits, the lumbar region box and the disc boxes."""
    allowed = np.full(lab.shape, ANY & ~(DISC if kind == "ivd" else BODY), np.uint8)
    if kind != "ivd" and (lab > 0).any():
        # The masks stop at their highest labelled body (L1 or T11): the bodies above are real bodies,
        # unlabelled, not background (taught as background they came out partial: false wedges).
        allowed[:np.nonzero((lab > 0).any(1))[0].min()] = ANY
    allowed[lab > 0] = DISC if kind == "ivd" else BODY
    masks = [lab == v for v in order]
    present = [m.any() for m in masks]
    if kind == "ivd":
        discs = [mask_box(m) for m, p in zip(masks, present) if p]
        if len(discs) < 5:
            return allowed, None, discs
        step = np.mean(np.diff([(d[1] + d[3]) / 2 for d in discs]))
        region = np.array([min(d[0] for d in discs), discs[0][3] - step,  # L1's top: one disc step above
                           max(d[2] for d in discs), discs[-1][3]])
        return allowed, region, discs
    discs = [gap_box(masks[i], masks[i + 1]) for i in range(len(masks) - 1) if present[i] and present[i + 1]]
    discs = [d for d in discs if d is not None]
    lumbar = [m for m, lv, p in zip(masks, levels, present) if p and lv.startswith("L")]
    if len(lumbar) < 5 or not discs:
        return allowed, None, discs
    l5 = mask_box(lumbar[-1])
    last = discs[-1]  # L4-L5: its height and tilt, moved below L5
    height = last[3] - last[1]
    l5s1 = np.array([l5[0], l5[3] - height * 0.3, l5[2], l5[3] + height * 0.9])
    discs.append(l5s1)
    region = mask_box(np.logical_or.reduce(lumbar))
    region[3] = l5s1[3]
    return allowed, region, discs


def training_exams(root, size: int):
    """(exam, split, stack, labels sampled on it) for every training and validation exam, through
    the slicing inference uses; the test exams are never read."""
    intensity = Intensity.from_manifest(MR_INTENSITY)
    for exam in list_exams(root):
        split = exam_split(exam)
        if split == "test":
            continue
        image, labels = read_exam(root, exam)
        stack = make_stack(image, "sagittal", size, intensity)
        yield exam, split, stack, sample_labels(labels, stack)


def export_real_lumbar(root: str | Path, out_dir: str | Path, size: int = 256, min_area_fraction: float = 0.4,
                       log=print, seed: int = 0) -> Path:
    """Train and validation exams -> region / disc YOLO data and segmentation.npz (allowed bits)."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    images, allowed, split_of, cases = [], [], [], []
    for exam, split, stack, lab in training_exams(root, size):
        kind = exam.split("_")[0]
        area = (lab > 0).sum((1, 2))
        chosen = np.nonzero(area >= min_area_fraction * area.max())[0]
        order = structures_head_first(lab[chosen])
        levels = exam_levels(exam, len(order))
        n_region = n_discs = 0
        for s in chosen:
            bits, region, discs = slice_targets(lab[s], order, levels, kind)
            images.append(stack.images[s]), allowed.append(bits), split_of.append(split)
            if region is None:
                continue
            stem = f"{exam}_s{s:03d}"
            write_yolo_image(out_dir / "region", split, stem, stack.images[s], [yolo_box_line(region, size)])
            jitter = region + rng.normal(0, 0.02, 4) * (region[2] - region[0])
            crop, affine = square_crop(stack.images[s], grow_box(jitter), size)
            lines = []
            for box in discs:
                b = image_to_crop(box, affine)
                if b[2] > 0 and b[3] > 0 and b[0] < size and b[1] < size:
                    lines.append(yolo_box_line(b, size))
            write_yolo_image(out_dir / "discs", split, stem, crop, lines)
            n_region, n_discs = n_region + 1, n_discs + len(lines)
        cases.append({"exam": exam, "split": split, "slices": [int(s) for s in chosen], "levels": levels,
                      "region_images": n_region, "disc_boxes": n_discs})
        log(f"{split} {exam}: {len(chosen)} slices, {n_region} region images, {n_discs} disc boxes")
    for name, cls in (("region", "lumbar spine"), ("discs", "intervertebral disc")):
        write_data_yaml(out_dir / name, [cls])
    np.savez_compressed(out_dir / "segmentation.npz", images=np.stack(images), allowed=np.stack(allowed),
                        split=np.array(split_of))
    (out_dir / "dataset.json").write_text(json.dumps({
        "source": "real sagittal lumbar MR (../shared/realdata/lumbar-mr), test exams held out",
        "test_exams": sorted(e for e in list_exams(root) if exam_split(e) == "test"),
        "cases": cases, "size": size, "slice_mm": None, "intensity": MR_INTENSITY,
        "mid_slices": 3, "slices": len(images)}, indent=1))
    return out_dir
