"""Predictors: SliceStack in, per-slice outputs out. One module per model family."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SliceDetections:
    """One slice's instances: boxes in pixel units (x1, y1, x2, y2), class ids, scores, masks."""
    slice_index: int
    boxes: np.ndarray  # [N, 4] float
    classes: np.ndarray  # [N] int
    scores: np.ndarray  # [N] float
    masks: np.ndarray  # [N, S, S] bool
    keypoints: np.ndarray | None = None  # [N, K, 3] (x, y, visibility) for pose models


def make_predictor(bundle, device: str = "auto"):
    """The predictor a bundle's manifest asks for."""
    family = bundle.manifest.get("framework", "ultralytics")
    if bundle.task in ("fracture-seg", "vertebra-pose", "fracture-detect") and family == "ultralytics":
        from .yolo import YoloPredictor

        return YoloPredictor(bundle, device)
    if bundle.task == "lumbar-mr":
        from ..lumbar import LumbarPredictor

        return LumbarPredictor(bundle, device)
    if bundle.task == "vertebra-levels" and family == "torch":
        from .level_net import LevelPredictor

        return LevelPredictor(bundle, device)
    raise ValueError(f"bundle {bundle.name}: no predictor for task {bundle.task!r} ({family})")
