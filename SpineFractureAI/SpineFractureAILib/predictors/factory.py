"""The predictor a bundle's manifest asks for (tasks written the new way build their own: tasks.TASKS)."""
from __future__ import annotations

from ..lumbar import LumbarPredictor
from .level_net import LevelPredictor
from .yolo import YoloPredictor


def make_predictor(bundle, device: str = "auto"):
    family = bundle.manifest.get("framework", "ultralytics")
    if bundle.task in ("fracture-seg", "vertebra-pose", "fracture-detect") and family == "ultralytics":
        return YoloPredictor(bundle, device)
    if bundle.task == "lumbar-mr":
        return LumbarPredictor(bundle, device)
    if bundle.task == "vertebra-levels" and family == "torch":
        return LevelPredictor(bundle, device)
    raise ValueError(f"bundle {bundle.name}: no predictor for task {bundle.task!r} ({family})")
