"""Seed 001's one-class fracture detector: boxes linked across sagittal slices into 3D findings,
fused later (assembly.finish) with the fracture model's bodies."""
from __future__ import annotations

from ..fusion import track_rois
from ..predictors.yolo import YoloPredictor, yolo_predictor
from ..results import Finding, Results
from ..slice_detection import detect, tracks
from ..spine.prior import off_chain


def make_predictor(bundle, device: str = "auto") -> YoloPredictor:
    return yolo_predictor(bundle, device)


def run(volume, bundle, predictor, results: Results, progress, cancelled) -> None:
    """Seed 001's one-class detector: 3D findings from linked boxes, fused later with the bodies."""
    stack, detections = detect(volume, bundle, predictor, results, progress, cancelled)
    found = tracks(detections, bundle.thresholds)
    min_conf = float(bundle.thresholds.get("fracture_confidence", 0.25))
    rois = track_rois(volume, stack, found, None, None)
    off = off_chain([r.center_ras for r in rois], results.canal)
    if any(off):
        results.warnings.append(f"spine prior: {sum(map(bool, off))} {bundle.name} finding(s) off the spinal "
                                "canal chain ignored")
        results.spine_prior["objects_dropped"] += sum(map(bool, off))
    for track, roi, bad in zip(found, rois, off):
        _, confidence = track.vote(1)
        if confidence >= min_conf and not bad:
            finding = Finding("fracture", "fracture", confidence, roi, source=[bundle.name], slices=track.slices())
            finding.extra["levels_trained"] = bundle.manifest.get("levels")
            results.detections.append(finding)
