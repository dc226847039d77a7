"""`train lumbar-mr --real`: seed 004's models on the real exams (plus MR phantoms for the spinal
canal, which no real exam labels): the partial-label segmenter, then the two YOLOv8 detectors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..lumbar_crops import SEG_CLASSES
from .lumbar_data import export_lumbar_dataset
from .lumbar_real import export_real_lumbar
from .lumbar_train import YOLO_RECIPE
from .fracture_seg import train_yolo
from .partial_labels import train_partial_segmenter

SEGMENTER = {"architecture": "Unet", "encoder": "tu-resnet10t"}
REAL_YOLO = dict(YOLO_RECIPE, epochs=30, imgsz=256, batch=16, lr0=0.01)


def prepare_data(root, data_dir: Path, phantoms: int, log=print) -> None:
    if not (data_dir / "dataset.json").exists():
        export_real_lumbar(root, data_dir, log=log)
    if phantoms and not (data_dir / "phantoms" / "dataset.json").exists():
        export_lumbar_dataset(data_dir / "phantoms", phantoms, max(2, phantoms // 5), log=log)


def segmentation_data(data_dir: Path) -> dict:
    real = np.load(data_dir / "segmentation.npz")
    parts = {"images": [real["images"]], "allowed": [real["allowed"]], "split": [real["split"]]}
    if (data_dir / "phantoms" / "segmentation.npz").exists():  # fully labelled: one bit per pixel
        ph = np.load(data_dir / "phantoms" / "segmentation.npz")
        parts["images"].append(ph["images"])
        parts["allowed"].append((1 << ph["masks"].astype(np.uint8)).astype(np.uint8))
        parts["split"].append(ph["split"])
    return {k: np.concatenate(v) for k, v in parts.items()}


def train_real_lumbar(root, data_dir, out_dir, phantoms: int = 16, seg_epochs: int = 25,
                      yolo_epochs: int = 30, device: str = "cpu", log=print) -> dict:
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    prepare_data(root, data_dir, phantoms, log)
    run = train_partial_segmenter(segmentation_data(data_dir), SEGMENTER, out_dir / "segmentation",
                                  len(SEG_CLASSES), epochs=seg_epochs, log=log)
    summary = {"segmentation": {**SEGMENTER, "best_val_score": run["state"]["best"],
                                "epochs_run": run["state"]["epoch"]}}
    for stage in ("region", "discs"):
        train_yolo(data_dir / stage / "data.yaml", out_dir / stage, "yolov8n.yaml", REAL_YOLO, device,
                   resume=(out_dir / stage / "weights" / "last.pt").exists(), epochs=yolo_epochs)
        summary[stage] = {"epochs": yolo_epochs}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
