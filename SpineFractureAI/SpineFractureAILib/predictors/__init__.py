"""Predictors: SliceStack in, per-slice outputs out. One module per model family; each task module
(tasks/) builds the one its bundle asks for."""
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
