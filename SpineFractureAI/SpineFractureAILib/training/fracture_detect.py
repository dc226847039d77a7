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
from ..levels import LEVELS
from ..phantom import make_phantom
from ..phantom.anatomy import FRACTURE_TYPES
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE, random_case, randomised_case_args
from .yolo_export import write_data_yaml, write_yolo_slices

FRACTURE_DETECT_CLASSES = ["fracture"]
# Seed 001's detector: YOLOv8s (m compared), 100 epochs, otherwise Ultralytics defaults.
DETECT_RECIPE = dict(epochs=100, batch=16, imgsz=640, fliplr=0.5)


def randomised_detect_args(seed: int) -> dict:
    """Domain-randomised CT (phantom_data.randomised_case_args) where half the cases run from the
    atlas down (a neck, or the whole spine) with up to two cervical fractures, so the detector sees
    the neck inside a trunk, arms and table, at 0.6-5 mm slices and any stored orientation."""
    args = randomised_case_args(seed)
    rng = np.random.default_rng([seed, 17])
    if rng.random() < 0.5:
        end = int(rng.integers(LEVELS.index("C7"), len(LEVELS)))
        args["levels"] = LEVELS[:end + 1]
        cervical = rng.choice(LEVELS[1:7], size=int(rng.integers(0, 3)), replace=False)
        args["fractures"] = [f"{lv}:{FRACTURE_TYPES[int(rng.integers(0, 3))]}:{int(rng.choice([1, 2, 3]))}"
                             for lv in cervical] + [f for f in args["fractures"] if f.split(":")[0] in args["levels"]
                                                    and f.split(":")[0] not in cervical]
    return args


def export_detect_dataset(out_dir: str | Path, n_train: int, n_val: int, size: int = 256,
                          slice_mm: float = 2.0, regions: str = "cervical", log=print,
                          randomised: bool = False, seeds: dict | None = None) -> Path:
    """Phantom CT -> YOLO data with one class; polygons around fractured bodies (ultralytics
    turns them into boxes for a detect model), every slice with a body kept (intact = negative).
    randomised: randomised_detect_args cases, where a fracture at any level is a positive (the
    deformity looks alike; the pipeline reports the detector at the levels in its manifest only).
    seeds: other first seeds per split."""
    out_dir = Path(out_dir)
    intensity = Intensity.from_manifest(DEMO_INTENSITY)
    counts = {"train": 0, "val": 0, "fractured_cases": 0}
    cases = []
    seeds = seeds or {"train": TRAIN_SEED_BASE, "val": VAL_SEED_BASE}
    for split, base, n in (("train", seeds["train"], n_train), ("val", seeds["val"], n_val)):
        for seed in range(base, base + n):
            if randomised:
                args = randomised_detect_args(seed)
                case = make_phantom(**args)
            else:
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
                           {"source": "SpineFractureAI domain-randomised phantoms (half from C1)" if randomised
                            else f"SpineFractureAI {regions} phantoms", "images": counts, "cases": cases,
                            "size": size, "slice_mm": slice_mm, "intensity": DEMO_INTENSITY})


def train_fracture_detect(data_yaml: str | Path, out_dir: str | Path, model: str = "yolov8s.yaml",
                          device: str = "cpu", resume: bool = False, workers: int = 2, **overrides) -> Path:
    """Seed 001's detector recipe (overridable). A .pt start (e.g. the fracture-seg demo run)
    transfers the layers that match, which a CPU-sized demo needs."""
    return train_yolo(data_yaml, out_dir, model, DETECT_RECIPE, device, resume, workers, **overrides)
