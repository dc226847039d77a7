"""Box and mask mAP50 / mAP50-95 per class of a fracture-seg bundle on held-out phantoms.

usage: uv run python bench/fracture_seg_map.py [--bundle DIR] [--phantoms 12] [--seed-base 90000]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import demo_bundle, emit, yolo_val

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.slicing import Intensity
from SpineFractureAILib.training.phantom_data import BENCH_SEED_BASE, random_case
from SpineFractureAILib.training.yolo_export import FRACTURE_SEG_CLASSES, write_data_yaml, write_yolo_slices

SEED_000_TABLE1 = {"box_mAP50-95": {"all": 0.859, "biconcave": 0.839, "wedge": 0.869, "crush": 0.869},
                   "mask_mAP50-95": {"all": 0.779, "biconcave": 0.732, "wedge": 0.792, "crush": 0.814},
                   "box_mAP50": {"all": 0.966, "biconcave": 0.96, "wedge": 0.943, "crush": 0.995}}


def export_heldout(out: Path, n: int, seed_base: int, size: int, intensity: dict, slice_mm: float) -> Path:
    import numpy as np

    for seed in range(seed_base, seed_base + n):
        case, _ = random_case(seed, "ct")
        class_of = {v["label"]: (FRACTURE_SEG_CLASSES.index(v["fracture"]) if v["fracture"] else 0)
                    for v in case.truth["vertebrae"] if v["has_body"]}
        for split in ("train", "val"):  # ultralytics wants both; we only evaluate val
            write_yolo_slices(out, split, f"b{seed}", case.image, case.labels, class_of, size,
                              Intensity.from_manifest(intensity), slice_mm, rng=np.random.default_rng(seed))
    return write_data_yaml(out, FRACTURE_SEG_CLASSES)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", default=str(demo_bundle()))
    p.add_argument("--phantoms", type=int, default=12)
    p.add_argument("--seed-base", type=int, default=BENCH_SEED_BASE)
    args = p.parse_args()
    bundle = load_bundle(args.bundle)
    (weights,) = bundle.weight_files()
    m = bundle.manifest
    with tempfile.TemporaryDirectory() as tmp:
        data = export_heldout(Path(tmp), args.phantoms, args.seed_base, int(m["input_size"]),
                              m["preprocessing"], float(m.get("slice_mm", 2.0)))
        metrics = yolo_val(weights, data, m["input_size"])
    per_class = {}
    for idx, name in enumerate(FRACTURE_SEG_CLASSES):
        if idx not in list(metrics.box.ap_class_index):
            per_class[name] = None
            continue
        i = list(metrics.box.ap_class_index).index(idx)
        per_class[name] = {"box_mAP50": round(float(metrics.box.ap50[i]), 4),
                           "box_mAP50-95": round(float(metrics.box.ap[i]), 4),
                           "mask_mAP50": round(float(metrics.seg.ap50[i]), 4),
                           "mask_mAP50-95": round(float(metrics.seg.ap[i]), 4)}
    fractures = [per_class[c] for c in ("wedge", "biconcave", "crush") if per_class[c]]
    mean = {k: round(sum(c[k] for c in fractures) / len(fractures), 4) for k in fractures[0]} if fractures else None
    emit({"bundle": bundle.summary(), "heldout_phantoms": args.phantoms, "seed_base": args.seed_base,
          "per_class": per_class, "fracture_classes_mean": mean,
          "all_classes": {"box_mAP50": round(float(metrics.box.map50), 4), "box_mAP50-95": round(float(metrics.box.map), 4),
                          "mask_mAP50": round(float(metrics.seg.map50), 4), "mask_mAP50-95": round(float(metrics.seg.map), 4)},
          "seed_000_table1": SEED_000_TABLE1})


if __name__ == "__main__":
    main()
