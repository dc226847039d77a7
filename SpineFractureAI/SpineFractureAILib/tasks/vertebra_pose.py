"""Seed 003 with a pose model: six keypoints per body on sagittal slices, fused across slices into
one row per body (heights, Genant grade and type from the points)."""
from __future__ import annotations

import time

from ..keypoint_rows import keypoint_rows
from ..predictors.yolo import YoloPredictor, yolo_predictor
from ..progress import Progress, add_time
from ..run_state import RunState
from ..sliced_model import run_sliced_model, tracks as link_tracks


def make_predictor(bundle, device: str = "auto") -> YoloPredictor:
    return yolo_predictor(bundle, device)


def run(volume, bundle, predictor, state: RunState, progress: Progress, cancelled) -> None:
    """Seed 003's path: six keypoints per body from a pose model, fused across sagittal slices."""
    stack, detections = run_sliced_model(volume, bundle, predictor, state, progress, cancelled)
    started = time.perf_counter()
    t = bundle.thresholds
    tracks = link_tracks(detections, t)
    state.vertebrae += keypoint_rows(stack, tracks, float(t.get("keypoint_visibility", 0.25)), bundle.name)
    add_time(state.timing_s, "fusion", time.perf_counter() - started)
