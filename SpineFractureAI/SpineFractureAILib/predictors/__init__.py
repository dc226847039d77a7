"""Predictors: SliceStack in, per-slice outputs out. One module per model family; each task module
(tasks/) builds the one its bundle asks for."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..bundles import Bundle


@runtime_checkable
class Predictor(Protocol):
    """What every task's make_predictor(bundle, device) returns, whatever the model family (one YOLO,
    a level network, the lumbar and radiograph model sets): loaded once per bundle and kept by the
    model host, then handed to the task's run(). A test may hand a task any object that has these."""
    bundle: Bundle
    device: object  # the torch.device its models sit on
    batch: int  # images per model call: the task checks cancel and reports progress between calls

    @property
    def forward_seconds(self) -> float:
        """Seconds spent in the models' forward so far (the pipeline / forward ratio's denominator)."""


@dataclass
class SliceDetections:
    """One slice's instances: boxes in pixel units (x1, y1, x2, y2), class ids, scores, masks."""
    slice_index: int
    boxes: np.ndarray  # [N, 4] float
    classes: np.ndarray  # [N] int
    scores: np.ndarray  # [N] float
    masks: np.ndarray  # [N, S, S] bool
    keypoints: np.ndarray | None = None  # [N, K, 3] (x, y, visibility) for pose models
