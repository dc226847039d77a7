"""Shared helpers for the benchmark scripts (they print JSON; they are not timed tests)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SpineFractureAI"))


def emit(result: dict) -> None:
    print(json.dumps(result, indent=1))


def demo_bundle(name: str = "fracture-seg-demo") -> Path:
    return REPO / "Resources" / "Models" / name


def yolo_val(weights, data_yaml, size: int):
    """ultralytics' validation of a bundle's YOLO file on a held-out split (the mAP the papers report)."""
    from SpineFractureAILib.predictors.offline_ultralytics import ultralytics_offline

    import tempfile

    from SpineFractureAILib.training.fracture_seg import checkpoint_from_bundle

    ultralytics_offline()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:  # ultralytics validates checkpoints, not safetensors
        checkpoint = checkpoint_from_bundle(weights, Path(tmp) / "model.pt", int(size))
        return YOLO(str(checkpoint)).val(data=str(data_yaml), imgsz=int(size), batch=16, plots=False,
                                         device="cpu", verbose=False, split="val", conf=0.001, iou=0.6,
                                         project=tmp, name="val")
