"""Seed 003's model-based path: YOLOv8-pose, one box + six endplate keypoints per vertebral body,
on the same sagittal slices as the fracture model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..slicing import Intensity, make_stack, sample_labels
from .fracture_seg import DEMO_INTENSITY, train_yolo
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE, random_case
from .yolo_export import write_data_yaml

POSE_CLASSES = ["vertebral body"]
FLIP_IDX = [2, 1, 0, 5, 4, 3]  # a left-right flip swaps anterior and posterior points
# Seed 003 trains its own keypoint network; we keep ultralytics' pose defaults beside seed 000's optimiser.
POSE_RECIPE = dict(epochs=300, batch=16, lr0=0.01, lrf=0.01, optimizer="AdamW", weight_decay=5e-5,
                   fliplr=0.5, scale=0.1, degrees=10.0, imgsz=640)


def pose_lines(vertebrae: list[dict], stack, label_stack, s: int, near_mm: float = 6.0) -> list[str]:
    """YOLO-pose rows for slice s from truth-style rows ({has_body, label, keypoints_ras}): every body
    gets a box; its six points are labelled visible only on slices within near_mm of its
    mid-sagittal plane, where the points live."""
    size = stack.size
    rows = []
    for v in vertebrae:
        if not v["has_body"]:
            continue
        ys, xs = np.nonzero(label_stack[s] == v["label"])
        if ys.size < 12:
            continue
        kp = stack.from_ras(np.array(v["keypoints_ras"]))  # (col, row, slice)
        visible = abs(kp[:, 2].mean() - s) * stack.slice_mm <= near_mm
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        parts = [0, (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size]
        for c, r, _ in kp:
            parts += [c / size, r / size, 2] if visible else [0.0, 0.0, 0]
        rows.append(" ".join(f"{p:.5f}" if isinstance(p, float) else str(p) for p in parts))
    return rows


def export_pose_dataset(out_dir: str | Path, n_train: int, n_val: int, size: int = 256,
                        slice_mm: float = 2.0, log=print) -> Path:
    import cv2

    out_dir = Path(out_dir)
    intensity = Intensity.from_manifest(DEMO_INTENSITY)
    counts, cases = {"train": 0, "val": 0}, []
    for split, base, n in (("train", TRAIN_SEED_BASE, n_train), ("val", VAL_SEED_BASE, n_val)):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        for seed in range(base, base + n):
            case, args = random_case(seed, "ct")
            cases.append({"split": split, "seed": seed, "levels": args["levels"], "fractures": args["fractures"]})
            stack = make_stack(case.image, "sagittal", size, intensity, slice_mm=slice_mm)
            labels = sample_labels(case.labels, stack)
            for s in range(len(stack)):
                rows = pose_lines(case.truth["vertebrae"], stack, labels, s)
                if not rows:
                    continue
                stem = f"ph{seed}_s{s:03d}"
                cv2.imwrite(str(out_dir / "images" / split / f"{stem}.png"), stack.images[s])
                (out_dir / "labels" / split / f"{stem}.txt").write_text("\n".join(rows) + "\n")
                counts[split] += 1
            log(f"pose {split} seed {seed}")
    path = write_data_yaml(out_dir, POSE_CLASSES, {"source": "SpineFractureAI phantoms", "images": counts,
                                                   "cases": cases, "size": size, "slice_mm": slice_mm})
    with open(path, "a") as f:
        f.write(f"kpt_shape: [6, 3]\nflip_idx: {FLIP_IDX}\n")
    return path


def train_vertebra_pose(data_yaml, out_dir, model: str = "yolov8n-pose.yaml", device: str = "cpu",
                        resume: bool = False, **overrides) -> Path:
    return train_yolo(data_yaml, out_dir, model, POSE_RECIPE, device, resume, **overrides)
