"""Seed 001 on held-out phantoms: the level classifier's Macro-F1 / EMR / coverage error (and with
its metadata branch fed constants: the ablation), levels named per vertebra after the body count,
and the cervical fracture detector's mAP50 / mAP50-95 — beside the paper's Tables 1 and 3.

usage: uv run python bench/levels_bench.py [--phantoms 10] [--detector-phantoms 12] [--seed-base 90000]
                                          [--detector-randomised] [--detector-only]
(--detector-randomised: the detector on domain-randomised phantoms, half from the atlas, a fracture at
any level a positive: what fracture-detect-demo 0.2.0 was trained on)
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import demo_bundle, emit, yolo_val

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.level_assignment import LevelProfile, assign_body_levels, axial_metadata
from SpineFractureAILib.level_metrics import coverage_error, exact_match_ratio, macro_f1
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.training.fracture_detect import randomised_detect_args
from SpineFractureAILib.predictors.level_net import LevelPredictor
from SpineFractureAILib.slicing import Intensity, make_stack
from SpineFractureAILib.training.level_data import axial_level_targets
from SpineFractureAILib.training.phantom_data import BENCH_SEED_BASE, random_case

SEED_001_TABLE1 = {"proposed network (GCViT tiny + metadata)": {"macro_f1": 0.96, "exact_match_ratio": 0.95,
                                                                "coverage_error": 1.26}}
SEED_001_TABLE3 = {"YOLOv8s": {"mAP50": 0.96, "mAP50-95": 0.747}, "YOLOv8m": {"mAP50": 0.959, "mAP50-95": 0.766}}


def _metrics(targets, scores) -> dict:
    return {"macro_f1": round(macro_f1(targets, scores >= 0.5), 4),
            "exact_match_ratio": round(exact_match_ratio(targets, scores >= 0.5), 4),
            "coverage_error": round(coverage_error(targets, scores), 4)}


def _phantom_groups(n: int, seed_base: int) -> dict:
    """Held-out scans: random stretches of the whole spine, and the two done-when settings (a
    cervical scan from the atlas down, a thoracolumbar one round T12/L1) with varied geometry."""
    orientations = ["axial", "oblique", "sagittal", "coronal"]
    return {
        "random_stretches": [random_case(seed, "ct", "all", from_c1=True)[0] for seed in range(seed_base, seed_base + n)],
        "cervical_C1_C7": [make_phantom("C1-C7", "ct", ["C5:wedge:3"], [], seed=seed_base + 500 + i,
                                        orientation=orientations[i % 4]) for i in range(max(n // 2, 1))],
        "thoracolumbar_T10_L3": [make_phantom("T10-L3", "ct", ["L1:wedge:3"], [], seed=seed_base + 600 + i,
                                              orientation=orientations[i % 4]) for i in range(max(n // 2, 1))],
    }


def level_classifier(bundle_dir: str, n: int, seed_base: int) -> dict:
    bundle = load_bundle(bundle_dir)
    predictor = LevelPredictor(bundle, "cpu")
    m, levels = bundle.manifest, bundle.classes
    all_t, all_s, all_const = [], [], []
    named = {}
    for group, cases in _phantom_groups(n, seed_base).items():
        right = total = scans_right = 0
        for case in cases:
            stack = make_stack(case.image, "axial", int(m["input_size"]), Intensity.from_manifest(m["preprocessing"]),
                               slice_mm=m.get("slice_mm"), pixel_mm=m.get("pixel_mm"))
            meta = axial_metadata(stack)
            scores = predictor.predict(stack.images, meta)
            truth = [v for v in case.truth["vertebrae"] if v["has_body"]]
            names, _ = assign_body_levels(LevelProfile(levels, scores, stack.stack_to_ras, stack.size),
                                          [v["center_ras"] for v in truth])
            hits = sum(a == v["level"] for a, v in zip(names, truth))
            right, total, scans_right = right + hits, total + len(truth), scans_right + (hits == len(truth))
            if group != "random_stretches":
                continue  # the per-slice metrics: on the random stretches only
            targets = axial_level_targets(case.labels, stack, levels)
            # the ablation: every slice gets the same metadata (the mean of this stack's)
            constant = predictor.predict(stack.images, np.repeat(meta.mean(0, keepdims=True), len(meta), 0))
            keep = targets.sum(1) > 0  # coverage error needs a label; slices beyond the spine carry none
            all_t.append(targets[keep]), all_s.append(scores[keep]), all_const.append(constant[keep])
        named[group] = {"bodies_right": f"{right}/{total}", "scans_all_right": f"{scans_right}/{len(cases)}"}
    t, s, c = np.concatenate(all_t), np.concatenate(all_s), np.concatenate(all_const)
    return {"bundle": bundle.summary(), "heldout_phantoms": n, "slices": int(len(t)),
            "per_slice": _metrics(t, s), "ablation_metadata_constant": _metrics(t, c),
            "bodies_named_after_count": named, "seed_001_table1": SEED_001_TABLE1}


def detector(bundle_dir: str, n: int, seed_base: int, randomised: bool = False) -> dict:
    from SpineFractureAILib.training.yolo_export import write_data_yaml, write_yolo_slices

    bundle = load_bundle(bundle_dir)
    (weights,) = bundle.weight_files()
    m = bundle.manifest
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seed_base, seed_base + n):
            case = make_phantom(**randomised_detect_args(seed)) if randomised else \
                random_case(seed, "ct", "cervical", from_c1=True)[0]
            class_of = {v["label"]: (0 if v["fracture"] else -1) for v in case.truth["vertebrae"] if v["has_body"]}
            for split in ("train", "val"):
                write_yolo_slices(Path(tmp), split, f"b{seed}", case.image, case.labels, class_of,
                                  int(m["input_size"]), Intensity.from_manifest(m["preprocessing"]),
                                  float(m.get("slice_mm", 2.0)), rng=np.random.default_rng(seed), drop_class=-1)
        data = write_data_yaml(Path(tmp), bundle.classes)
        metrics = yolo_val(weights, data, m["input_size"])
    return {"bundle": bundle.summary(), ("heldout_randomised_phantoms" if randomised else "heldout_cervical_phantoms"): n,
            "mAP50": round(float(metrics.box.map50), 4), "mAP50-95": round(float(metrics.box.map), 4),
            "precision": round(float(metrics.box.mp), 4), "recall": round(float(metrics.box.mr), 4),
            "seed_001_table3": SEED_001_TABLE3}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--levels-bundle", default=str(demo_bundle("vertebra-levels-demo")))
    p.add_argument("--detector-bundle", default=str(demo_bundle("fracture-detect-demo")))
    p.add_argument("--phantoms", type=int, default=10)
    p.add_argument("--detector-phantoms", type=int, default=12)
    p.add_argument("--seed-base", type=int, default=BENCH_SEED_BASE)
    p.add_argument("--detector-randomised", action="store_true")
    p.add_argument("--detector-only", action="store_true")
    args = p.parse_args()
    out = {} if args.detector_only else {
        "level_classifier": level_classifier(args.levels_bundle, args.phantoms, args.seed_base)}
    out["fracture_detector"] = detector(args.detector_bundle, args.detector_phantoms, args.seed_base,
                                        args.detector_randomised)
    emit(out)


if __name__ == "__main__":
    main()
