"""Seed 001's second stage: a YOLOv8 detector with one class, "fracture", on sagittal slices.

The paper trains YOLOv8s/m for 100 epochs on boxes around fractures, with about a thousand images
of intact vertebrae added as negatives. Phantom data: cervical cases (from C1), a box around every
fractured body on each slice that shows it, and slices with intact bodies kept as negatives.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..slicing import Intensity
from .fracture_seg import DEMO_INTENSITY, train_yolo
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE, random_case
from .yolo_export import write_data_yaml, write_yolo_slices

FRACTURE_DETECT_CLASSES = ["fracture"]
# Seed 001's detector: YOLOv8s (m compared), 100 epochs, otherwise Ultralytics defaults.
DETECT_RECIPE = dict(epochs=100, batch=16, imgsz=640, fliplr=0.5)


def export_detect_dataset(out_dir: str | Path, n_train: int, n_val: int, size: int = 256,
                          slice_mm: float = 2.0, regions: str = "cervical", log=print) -> Path:
    """Phantom CT -> YOLO data with one class; polygons around fractured bodies (ultralytics
    turns them into boxes for a detect model), every slice with a body kept (intact = negative)."""
    out_dir = Path(out_dir)
    intensity = Intensity.from_manifest(DEMO_INTENSITY)
    counts = {"train": 0, "val": 0, "fractured_cases": 0}
    cases = []
    for split, base, n in (("train", TRAIN_SEED_BASE, n_train), ("val", VAL_SEED_BASE, n_val)):
        for seed in range(base, base + n):
            case, args = random_case(seed, "ct", regions, from_c1=True)
            fractured = {v["label"]: 0 for v in case.truth["vertebrae"] if v["has_body"] and v["fracture"]}
            counts["fractured_cases"] += bool(fractured)
            # Negatives: slices whose only bodies are intact; write_yolo_slices keeps a fraction of
            # slices without instances, so mark intact bodies as a class it then drops.
            intact = {v["label"]: -1 for v in case.truth["vertebrae"] if v["has_body"] and not v["fracture"]}
            rng = np.random.default_rng(seed)
            counts[split] += write_yolo_slices(out_dir, split, f"ph{seed}", case.image, case.labels,
                                               {**intact, **fractured}, size, intensity, slice_mm, rng=rng,
                                               drop_class=-1)
            cases.append({"split": split, **{k: v for k, v in args.items() if k != "spacing"},
                          "spacing": list(args["spacing"])})
            log(f"{split} seed {seed}: {counts[split]} images so far")
    return write_data_yaml(out_dir, FRACTURE_DETECT_CLASSES,
                           {"source": f"SpineFractureAI {regions} phantoms", "images": counts, "cases": cases,
                            "size": size, "slice_mm": slice_mm, "intensity": DEMO_INTENSITY})


def train_fracture_detect(data_yaml: str | Path, out_dir: str | Path, model: str = "yolov8s.yaml",
                          device: str = "cpu", resume: bool = False, workers: int = 2, **overrides) -> Path:
    """Seed 001's detector recipe (overridable). A .pt start (e.g. the fracture-seg demo run)
    transfers the layers that match, which a CPU-sized demo needs."""
    return train_yolo(data_yaml, out_dir, model, DETECT_RECIPE, device, resume, workers, **overrides)
