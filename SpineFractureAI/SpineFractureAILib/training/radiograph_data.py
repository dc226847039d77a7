"""Synthetic lateral radiographs for `train radiograph-fracture`: YOLO-pose data (bodies, rib-bearing
bodies, AP-view bodies; six endplate points) and fresh/old crops of the fractured bodies."""
from __future__ import annotations

import json
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from ..levels import LEVELS
from ..phantom.anatomy import FRACTURE_TYPES
from ..radiograph.model_input import crop_body, to_uint8
from ..radiograph.phantom import CLASS_NAMES, make_radiograph
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE
from .yolo_export import write_data_yaml

FLIP_IDX = [2, 1, 0, 5, 4, 3]  # a left-right flip swaps anterior and posterior points
AGE_CLASSES = ["old", "fresh"]  # the classifier's output 1 is "fresh"


def random_radiograph_args(seed: int) -> dict:
    """Thoracolumbar lateral views of 5-10 levels (T4 .. S1), 0-2 fractures of random type, grade
    and age, pixel spacing 0.8-1.25 mm; one in ten is an AP view."""
    rng = np.random.default_rng([seed, 11])
    length = int(rng.integers(5, 11))
    start = int(rng.integers(LEVELS.index("T4"), LEVELS.index("S1") - length + 2))
    names = LEVELS[start:start + length]
    bodies = [n for n in names if n != "S1"]
    fractures = []
    for level in rng.choice(bodies, size=int(rng.choice([0, 1, 1, 2])), replace=False):
        kind = FRACTURE_TYPES[int(rng.integers(0, 3))]
        grade = int(rng.choice([1, 2, 3], p=[0.2, 0.4, 0.4]))
        fractures.append(f"{level}:{kind}:{grade}:{'fresh' if rng.random() < 0.5 else 'old'}")
    # three in ten films blurred as one rendered from thick CT slices is (the detector must find bodies on
    # them; their fractures' age signs are washed out, so they give no age crops)
    blur = float(rng.uniform(1.0, 2.5)) if rng.random() < 0.3 else float(rng.uniform(0.2, 1.0))
    return {"levels": names, "fractures": fractures, "seed": seed, "blur_mm": round(blur, 3),
            "view": "ap" if rng.random() < 0.1 else "lateral", "spacing": float(rng.uniform(0.8, 1.25))}


def render_case(seed: int):
    args = random_radiograph_args(seed)
    case = make_radiograph(args["levels"], args["fractures"], seed, args["view"], args["spacing"],
                           blur_mm=args["blur_mm"])
    return args, to_uint8(case.image), case


def pose_rows(objects: list[dict], shape) -> list[str]:
    rows, cols = shape
    out = []
    for o in objects:
        c1, r1, c2, r2 = o["box"]
        parts = [o["class"], (c1 + c2) / 2 / cols, (r1 + r2) / 2 / rows, (c2 - c1) / cols, (r2 - r1) / rows]
        for c, r in (o["keypoints"] or [[0.0, 0.0]] * 6):
            parts += [c / cols, r / rows, 2] if o["keypoints"] else [0.0, 0.0, 0]
        out.append(" ".join(f"{p:.5f}" if isinstance(p, float) else str(p) for p in parts))
    return out


def _jitter(box, rng):
    c1, r1, c2, r2 = box
    w, h = c2 - c1, r2 - r1
    d = rng.normal(0, 0.06, 4) * np.array([w, h, w, h])
    return [c1 + d[0], r1 + d[1], c2 + d[2], r2 + d[3]]


def _export_one(job):
    out_dir, split, seed = job
    args, image8, case = render_case(seed)
    stem = f"xr{seed}"
    cv2.imwrite(str(out_dir / "images" / split / f"{stem}.png"), image8)
    (out_dir / "labels" / split / f"{stem}.txt").write_text("\n".join(pose_rows(case.objects, image8.shape)) + "\n")
    rng = np.random.default_rng([seed, 5])
    crops, ages, meta = [], [], []
    if args["view"] == "lateral" and args["blur_mm"] <= 1.0:
        by_level = {o["level"]: o for o in case.objects}
        for v in case.truth["vertebrae"]:
            if v["age"] and v["level"] in by_level:
                for n in range(3):  # the detector's boxes are never exact: jittered copies
                    box = by_level[v["level"]]["box"] if n == 0 else _jitter(by_level[v["level"]]["box"], rng)
                    crops.append(crop_body(image8, box))
                    ages.append(AGE_CLASSES.index(v["age"]))
                    meta.append({"seed": seed, "level": v["level"], "copy": n, "signs": v["age_signs"],
                                 "fracture": v["fracture"], "grade": v["genant_grade"]})
    return split, args, crops, ages, meta


def export_radiograph_dataset(out_dir, n_train: int, n_val: int, processes: int = 2, log=print) -> Path:
    out_dir = Path(out_dir)
    jobs = []
    for split, base, n in (("train", TRAIN_SEED_BASE, n_train), ("val", VAL_SEED_BASE, n_val)):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        jobs += [(out_dir, split, seed) for seed in range(base, base + n)]
    crops = {"train": ([], [], []), "val": ([], [], [])}
    cases = []
    with Pool(processes) as pool:
        for n, (split, args, c, a, m) in enumerate(pool.imap(_export_one, jobs, chunksize=4)):
            crops[split][0].extend(c)
            crops[split][1].extend(a)
            crops[split][2].extend(m)
            cases.append({"split": split, **args})
            if n % 50 == 0:
                log(f"radiographs: {n + 1}/{len(jobs)}")
    for split, (c, a, m) in crops.items():
        np.savez_compressed(out_dir / f"age_{split}.npz", crops=np.array(c, np.uint8).reshape(-1, 96, 96),
                            age=np.array(a, np.int64))
        (out_dir / f"age_{split}.json").write_text(json.dumps(m))
    path = write_data_yaml(out_dir, CLASS_NAMES, {"source": "SpineFractureAI radiograph phantoms (synthetic)",
                                                  "cases": cases})
    with open(path, "a") as f:
        f.write(f"kpt_shape: [6, 3]\nflip_idx: {FLIP_IDX}\n")
    return path
