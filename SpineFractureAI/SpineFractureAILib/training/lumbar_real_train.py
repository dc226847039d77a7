"""`train lumbar-mr --real ROOT`: seed 004's models on the real exams of ROOT (lumbar-mr/), plus MR
phantoms for what no real exam labels (the spinal canal, herniations): the partial-label segmenter,
the herniation classifier on real disc crops and their deformed copies, then the two YOLOv8
detectors. The run folder has the layout `bundle lumbar-mr` reads."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..lumbar_crops import SEG_CLASSES
from .fracture_seg import train_yolo
from .herniation_real import export_real_disc_crops
from .lumbar_data import export_lumbar_dataset
from .lumbar_real import BG, BODY, export_real_lumbar
from .lumbar_train import YOLO_RECIPE, train_ensemble
from .partial_labels import train_partial_segmenter, validation_dice

SEGMENTER = {"architecture": "Unet", "encoder": "tu-resnet10t"}
CLASSIFIER = {"architecture": "resnet10t"}
REAL_YOLO = dict(YOLO_RECIPE, epochs=30, imgsz=256, batch=16, lr0=0.01)
HERNIATION = dict(epochs=20, batch=16, class_weights="data")


def prepare_data(root, data_dir: Path, phantoms: int, log=print) -> None:
    if not (data_dir / "dataset.json").exists():
        export_real_lumbar(root, data_dir, log=log)
    if phantoms and not (data_dir / "phantoms" / "dataset.json").exists():
        export_lumbar_dataset(data_dir / "phantoms", phantoms, max(2, phantoms // 5), log=log)
    if not (data_dir / "herniation.npz").exists():
        export_real_disc_crops(root, data_dir, phantom_npz=data_dir / "phantoms" / "herniation.npz", log=log)


def with_phantoms(data_dir: Path, stage: str) -> Path:
    """A data.yaml over the real images and the phantom images of one detector stage, so the
    detectors still find the phantom discs (and the phantom herniation checks keep passing)."""
    real, phantom = (data_dir / stage).resolve(), (data_dir / "phantoms" / stage).resolve()
    if not phantom.is_dir():
        return real / "data.yaml"
    lines = [f"path: {real}", f"train: [{real}/images/train, {phantom}/images/train]",
             f"val: [{real}/images/val, {phantom}/images/val]", "names:", "  0: " + (
                 "lumbar spine" if stage == "region" else "intervertebral disc")]
    path = data_dir / f"{stage}_with_phantoms.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def segmentation_data(data_dir: Path) -> dict:
    real = np.load(data_dir / "segmentation.npz")
    parts = {"images": [real["images"]], "allowed": [real["allowed"]], "split": [real["split"]]}
    if (data_dir / "phantoms" / "segmentation.npz").exists():  # fully labelled: one bit per pixel
        ph = np.load(data_dir / "phantoms" / "segmentation.npz")
        parts["images"].append(ph["images"])
        allowed = (1 << ph["masks"].astype(np.uint8)).astype(np.uint8)
        # The real body masks stop at L5; the phantoms' sacrum may be either, so it teaches nothing.
        allowed[ph["sacrum"]] = BG | BODY
        parts["allowed"].append(allowed)
        parts["split"].append(ph["split"])
    return {k: np.concatenate(v) for k, v in parts.items()}


def write_segmentation_summary(run_dir: Path, data: dict, model, state: dict) -> dict:
    """The packager's ensemble.json for the one partial-label member (weight 1)."""
    val = data["split"] == "val"
    dice = validation_dice(model, data["images"][val], data["allowed"][val], len(SEG_CLASSES))
    per_class = {SEG_CLASSES[c]: {"dice": round(d, 4)} for c, d in dice.items()}
    summary = {"kind": "segmentation", "recipe": {"loss": "set log-likelihood + known-pixel Dice",
                                                  "focal_lambda": 0.0},
               "weights": [1.0], "val_score": state["best"],
               "val_metrics": {"dice": round(float(np.mean(list(dice.values()))), 4), "per_class": per_class,
                               "note": "Dice over the pixels where each class is labelled (validation exams)"},
               "members": [{**SEGMENTER, "epochs_run": state["epoch"], "val_score": state["best"]}]}
    (run_dir / "ensemble.json").write_text(json.dumps(summary, indent=1))
    return summary


def train_real_lumbar(root, data_dir, out_dir, phantoms: int = 24, seg_epochs: int = 20,
                      yolo_epochs: int = 30, device: str = "cpu", log=print) -> dict:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    prepare_data(root, data_dir, phantoms, log)
    data = segmentation_data(data_dir)
    run = train_partial_segmenter(data, SEGMENTER, out_dir / "segmentation" / "member0", len(SEG_CLASSES),
                                  epochs=seg_epochs, log=log)
    summary = {"segmentation": write_segmentation_summary(out_dir / "segmentation", data, run["model"], run["state"])}
    summary["herniation"] = train_ensemble("herniation", data_dir, out_dir / "herniation", [CLASSIFIER], **HERNIATION)
    for stage in ("region", "discs"):
        train_yolo(with_phantoms(data_dir, stage), out_dir / stage, "yolov8n.yaml", REAL_YOLO, device,
                   resume=(out_dir / stage / "weights" / "last.pt").exists(), epochs=yolo_epochs)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
