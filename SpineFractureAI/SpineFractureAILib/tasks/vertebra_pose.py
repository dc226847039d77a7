"""Seed 003 with a pose model: six keypoints per body on sagittal slices, fused across slices into
one row per body (heights, Genant grade and type from the points)."""
from __future__ import annotations

import time

from ..keypoint_fusion import keypoint_rows
from ..predictors.yolo import YoloPredictor, yolo_predictor
from ..progress import Progress, add_time
from ..results import Results
from ..slice_detection import detect, tracks as link_tracks


def make_predictor(bundle, device: str = "auto") -> YoloPredictor:
    return yolo_predictor(bundle, device)


def run(volume, bundle, predictor, results: Results, progress: Progress, cancelled) -> None:
    """Seed 003's path: six keypoints per body from a pose model, fused across sagittal slices."""
    stack, detections = detect(volume, bundle, predictor, results, progress, cancelled)
    started = time.perf_counter()
    t = bundle.thresholds
    tracks = link_tracks(detections, t)
    results.vertebrae += keypoint_rows(stack, tracks, float(t.get("keypoint_visibility", 0.25)), bundle.name)
    add_time(results.timing_s, "fusion", time.perf_counter() - started)
