"""Seed 004 on held-out lumbar MR phantoms: the two detectors' mAP, the herniation WAE's Table 2 metrics,
the segmentation WAE's Tables 4-5 metrics, the whole pipeline per disc (found, named, ROI holds the
true centre, herniated right), and the disc Dice on the real fastcleverseg MR over the analysed slices.

usage: uv run python bench/lumbar_bench.py [--phantoms 8] [--seed-base 90000]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, demo_bundle, emit, yolo_val

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.lumbar import LumbarPredictor, analysed_mask
from SpineFractureAILib.lumbar_crops import SEG_CLASSES
from SpineFractureAILib.lumbar_metrics import classification_metrics, segmentation_metrics
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.training.lumbar_data import export_lumbar_dataset, lumbar_case_args
from SpineFractureAILib.training.phantom_data import BENCH_SEED_BASE
from SpineFractureAILib.volume import read_volume

SEED_004 = {"detection_mAP50": {"lumbar region": 0.995, "discs": 0.994},
            "table2_WAE": {"accuracy": 0.9937, "auc": 0.9894, "specificity": 1.0, "precision": 1.0,
                           "recall": 0.9787, "f1": 0.9893},
            "table5_WAE": {"mIoU": 0.9186, "dice": 0.9574, "iou_spinal_canal": 0.8937, "iou_vertebrae": 0.9218,
                           "iou_disc": 0.9024}}


def detector_map(weights: Path, data_yaml: Path, size: int) -> dict:
    m = yolo_val(weights, data_yaml, size)
    return {"mAP50": round(float(m.box.map50), 4), "mAP50-95": round(float(m.box.map), 4)}


def parts(bundle, n: int, seed_base: int) -> dict:
    predictor = LumbarPredictor(bundle, "cpu")
    m = bundle.manifest
    with tempfile.TemporaryDirectory() as tmp:
        data = export_lumbar_dataset(Path(tmp), 0, n, int(m["input_size"]), int(m["stages"]["herniation"]["input_size"]),
                                     int(m["mid_slices"]), float(m["slice_mm"]), log=lambda *_: None,
                                     seed_bases=(seed_base, seed_base))
        for stage in ("region", "discs"):  # ultralytics wants a train split; evaluation uses val
            (data / stage / "images" / "train").symlink_to(data / stage / "images" / "val")
            (data / stage / "labels" / "train").symlink_to(data / stage / "labels" / "val")
        out = {f"{stage}_detector": detector_map(bundle.path / m["stages"][stage]["file"], data / stage / "data.yaml",
                                                 int(m["input_size"])) for stage in ("region", "discs")}
        crops = np.load(data / "herniation.npz")
        p = predictor.herniation.predict(crops["images"])[:, 1]
        out["herniation_WAE"] = {k: (round(v, 4) if isinstance(v, float) else v)
                                 for k, v in classification_metrics(crops["labels"], p).items()}
        seg = np.load(data / "segmentation.npz")
        pred = predictor.segmentation.predict(seg["images"]).argmax(1)
        metrics = segmentation_metrics(seg["masks"], pred, SEG_CLASSES)
        out["segmentation_WAE"] = {"mIoU": round(metrics["mIoU"], 4), "dice": round(metrics["dice"], 4),
                                   "per_class_iou": {k: round(v["iou"], 4) for k, v in metrics["per_class"].items()}}
    return out


def pipeline(bundle, n: int, seed_base: int) -> dict:
    analyzer = Analyzer([bundle], "cpu")
    found = named = contained = herniation_right = total = extra = 0
    for seed in range(seed_base, seed_base + n):
        case = make_phantom(**lumbar_case_args(seed))
        results = analyzer.analyze(case.image)
        by_level = {f.level: f for f in results.findings if f.kind == "disc"}
        truth = [d for d in case.truth["discs"] if d["level"] != "T12-L1" and d["level"].startswith("L")]
        for disc in truth:
            total += 1
            f = by_level.get(disc["level"])
            near = [g for g in by_level.values() if g.roi.contains(disc["center_ras"], 2.0)]
            found += bool(near)
            if f is not None:
                named += f.roi.contains(disc["center_ras"], 2.0)
                contained += f.roi.contains(disc["center_ras"])
                herniation_right += f.extra["herniated"] == disc["herniated"]
        extra += sum(1 for lv in by_level if lv not in {d["level"] for d in case.truth["discs"]})
    return {"heldout_phantoms": n, "lumbar_discs": total, "found": found, "named_right": named,
            "roi_contains_true_centre": contained, "herniated_right": herniation_right,
            "discs_reported_that_do_not_exist": extra}


def real_mr(bundle) -> dict:
    folder = REPO.parent / "shared" / "realdata" / "fastcleverseg"
    image, labels = read_volume(folder / "fcs_ivd_img.nii.gz"), read_volume(folder / "fcs_ivd_lab.nii.gz")
    image.modality = "mr"
    results = Analyzer([bundle], "cpu").analyze(image)
    disc_value = next(s.value for s in results.segments if s.name == "Intervertebral disc")
    inside = analysed_mask(image, results.lumbar)
    pred, truth = (results.labelmap == disc_value) & inside, (labels.voxels > 0) & inside
    dice = 2 * np.sum(pred & truth) / max(pred.sum() + truth.sum(), 1)
    return {"analysed_slices": results.lumbar["analysed_slices"], "disc_dice_over_analysed_slices": round(float(dice), 4),
            "discs_reported": [f"{f.level} {f.label} {f.confidence:.2f}" for f in results.findings if f.kind == "disc"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", default=str(demo_bundle("lumbar-mr-demo")))
    p.add_argument("--phantoms", type=int, default=8)
    p.add_argument("--seed-base", type=int, default=BENCH_SEED_BASE)
    args = p.parse_args()
    bundle = load_bundle(args.bundle)
    emit({"bundle": bundle.summary(), "parts": parts(bundle, args.phantoms, args.seed_base),
          "pipeline": pipeline(bundle, args.phantoms, args.seed_base + 500), "real_mr": real_mr(bundle),
          "seed_004": SEED_004})


if __name__ == "__main__":
    main()
