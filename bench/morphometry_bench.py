"""Morphometry on phantom truth masks: Genant grade accuracy, linearly weighted kappa, type
accuracy and height / keypoint errors, over fractures of every type at every grade.

usage: uv run python bench/morphometry_bench.py [--per-cell 4] [--seed-base 91000]
"""
from __future__ import annotations

import argparse

import numpy as np
from common import emit

from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.spine_morphometry import measure_labelmap


def weighted_kappa(a, b, n_classes=4) -> float:
    """Cohen's kappa with linear weights (|i - j| / (n - 1) disagreement)."""
    a, b = np.asarray(a), np.asarray(b)
    observed = np.zeros((n_classes, n_classes))
    for i, j in zip(a, b):
        observed[i, j] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(1), observed.sum(0))
    w = np.abs(np.subtract.outer(np.arange(n_classes), np.arange(n_classes))) / (n_classes - 1)
    return float(1 - (w * observed).sum() / (w * expected).sum())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--per-cell", type=int, default=4, help="phantoms per (type, grade)")
    p.add_argument("--seed-base", type=int, default=91_000)
    p.add_argument("--mask-only", action="store_true", help="do not refine endplates on the CT image")
    args = p.parse_args()
    truth_grades, got_grades, type_ok, h_err, kp_err, unmeasured = [], [], [], [], [], 0
    orientations = ["axial", "oblique", "sagittal", "coronal"]
    seed = args.seed_base
    for kind in ("wedge", "biconcave", "crush"):
        for grade in (1, 2, 3):
            for n in range(args.per_cell):
                seed += 1
                levels = ["T6-T10", "T10-L2", "L1-L5"][n % 3]
                middle = {"T6-T10": "T8", "T10-L2": "T12", "L1-L5": "L3"}[levels]
                case = make_phantom(levels, "ct", [f"{middle}:{kind}:{grade}"], [], seed=seed,
                                    orientation=orientations[n % 4])
                names = {v["label"]: v["level"] for v in case.truth["vertebrae"]}
                labels = np.where(np.isin(case.labels.voxels, list(names)), case.labels.voxels, 0).astype(np.uint16)
                image = None if args.mask_only else case.image.voxels
                measured = {m.level: m for m in measure_labelmap(labels, case.image.ijk_to_ras, names,
                                                                 ct_image=image)}
                for v in case.truth["vertebrae"]:
                    m = measured[v["level"]]
                    if m.status != "measured":
                        unmeasured += 1
                        continue
                    truth_grades.append(v["genant_grade"])
                    got_grades.append(m.genant_grade)
                    if v["fracture"]:
                        type_ok.append(m.type == v["fracture"])
                    h_err += [abs(m.heights_mm[k] - v["heights_mm"][k]) for k in ("anterior", "middle", "posterior")]
                    kp_err += np.linalg.norm(np.array(m.keypoints_ras) - np.array(v["keypoints_ras"]), axis=1).tolist()
    truth_grades, got_grades = np.array(truth_grades), np.array(got_grades)
    emit({"phantoms": seed - args.seed_base, "vertebrae_measured": int(len(truth_grades)), "unmeasurable": unmeasured,
          "grade_accuracy": round(float((truth_grades == got_grades).mean()), 4),
          "grade_linear_weighted_kappa": round(weighted_kappa(truth_grades, got_grades), 4),
          "fractured_type_accuracy": round(float(np.mean(type_ok)), 4),
          "false_fractures_on_intact": int(((truth_grades == 0) & (got_grades > 0)).sum()),
          "missed_fractures": int(((truth_grades > 0) & (got_grades == 0)).sum()),
          "height_error_mm": {"mean": round(float(np.mean(h_err)), 3), "p95": round(float(np.percentile(h_err, 95)), 3),
                              "max": round(float(np.max(h_err)), 3)},
          "keypoint_error_mm": {"mean": round(float(np.mean(kp_err)), 3), "p95": round(float(np.percentile(kp_err, 95)), 3),
                                "max": round(float(np.max(kp_err)), 3)},
          "endplates": "mask only" if args.mask_only else "mask refined on the CT image (partial volume)",
          "voxels": "1 mm isotropic; orientations axial/oblique/sagittal/coronal"})


if __name__ == "__main__":
    main()
