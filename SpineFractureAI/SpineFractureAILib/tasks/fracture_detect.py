"""Seed 001's one-class fracture detector: boxes linked across sagittal slices into 3D findings,
fused later (assembly.assemble_results) with the fracture model's bodies."""
from __future__ import annotations

from ..slice_tracks import track_rois
from ..predictors.yolo import YoloPredictor, yolo_predictor
from ..results import Finding
from ..run_state import RunState
from ..sliced_model import run_sliced_model, tracks
from ..spine.prior import off_chain


def make_predictor(bundle, device: str = "auto") -> YoloPredictor:
    return yolo_predictor(bundle, device)


def run(volume, bundle, predictor, state: RunState, progress, cancelled) -> None:
    """Seed 001's one-class detector: 3D findings from linked boxes, fused later with the bodies."""
    stack, detections = run_sliced_model(volume, bundle, predictor, state, progress, cancelled)
    found = tracks(detections, bundle.thresholds)
    min_conf = float(bundle.thresholds.get("fracture_confidence", 0.25))
    rois = track_rois(volume, stack, found, None, None)
    off = off_chain([r.center_ras for r in rois], state.canal)
    if any(off):
        state.warnings.append(f"spine prior: {sum(map(bool, off))} {bundle.name} finding(s) off the spinal "
                              "canal chain ignored")
        state.spine_prior["objects_dropped"] += sum(map(bool, off))
    for track, roi, bad in zip(found, rois, off):
        _, confidence = track.vote(1)
        if confidence >= min_conf and not bad:
            finding = Finding("fracture", "fracture", confidence, roi, source=[bundle.name], slices=track.slices())
            finding.extra["levels_trained"] = bundle.manifest.get("levels")
            state.detections.append(finding)
