"""Seed 004 on a lumbar MR: the mid-sagittal slices, the lumbar region (stage 1), the discs inside
its grown crop (stage 2), each disc named and classified by the herniation WAE, and disc / vertebral
body / spinal canal segmented by the segmentation WAE on the analysed slices only."""
from __future__ import annotations

import time

import numpy as np
from scipy import ndimage

from .bundles import Bundle, choose_device
from .slice_tracks import Track, link_detections, track_rois
from .levels import LEVELS, disc_name
from .lumbar_bodies import add_mr_bodies, disc_names_from_bodies
from .lumbar_gaps import PLACED, gap_tracks, missing_discs
from .lumbar_crops import central_slices, crop_to_image, grow_box, square_crop
from .predictors import SliceDetections
from .predictors.ensembles import Ensemble
from .predictors.yolo import YoloPredictor
from .progress import Cancelled, add_time
from .results import Finding, Segment
from .run_state import RunState
from .slicing import Intensity, make_stack, stack_labels_to_box
from .terminology import INTERVERTEBRAL_DISC, SPINAL_CANAL, VERTEBRA

# Anatomy codes: SNOMED CT, from the list pydicom ships (terminology.py).
SEGMENTS = {
    "intervertebral disc": ("Intervertebral disc", (0.35, 0.75, 0.95), INTERVERTEBRAL_DISC),
    "vertebral body": ("Vertebral body", (0.95, 0.85, 0.57), VERTEBRA),
    "spinal canal": ("Spinal canal", (0.55, 0.90, 0.55), SPINAL_CANAL),
}
ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")
CANAL_REACH_MM = 20.0
HERNIATION_CAVEAT = ("trained on synthetic herniations only (deformed real disc crops and phantoms): "
                     "no real herniation was seen in training")


class LumbarPredictor:
    """All four models of a "lumbar-mr" bundle, every file sha256-checked before loading."""

    def __init__(self, bundle: Bundle, device: str = "auto"):
        bundle.weight_files()  # verifies every file of every stage
        self.bundle, self.device = bundle, choose_device(device)
        stages = bundle.manifest["stages"]
        entry = {w["file"]: w for w in bundle.manifest["weights"]}
        self.detectors = {}
        for name in ("region", "discs"):
            st = stages[name]
            sub = Bundle(bundle.path, {"name": f"{bundle.name}/{name}", "task": "detect", "classes": st["classes"],
                                       "input_size": st["input_size"], "thresholds": st.get("thresholds", {}),
                                       "weights": [entry[st["file"]]], "modalities": ["mr"]})
            self.detectors[name] = YoloPredictor(sub, device)
        half = self.device.type == "cuda"
        self.herniation = Ensemble(stages["herniation"], bundle.weight_path, self.device, half)
        self.segmentation = Ensemble(stages["segmentation"], bundle.weight_path, self.device, half)
        self.batch = 16

    @property
    def forward_seconds(self) -> float:
        return (sum(d.forward_seconds for d in self.detectors.values()) + self.herniation.forward_seconds
                + self.segmentation.forward_seconds)


def _best_box(det: SliceDetections):
    if len(det.scores) == 0:
        return None, 0.0
    i = int(np.argmax(det.scores))
    return det.boxes[i], float(det.scores[i])


def run_lumbar_mr(volume, bundle, predictor: LumbarPredictor, state: RunState, progress, cancelled) -> None:
    m, stages = bundle.manifest, bundle.manifest["stages"]
    size = int(stages["region"]["input_size"])
    progress(f"{bundle.name}: sagittal slices", 0.1)
    started = time.perf_counter()
    stack = make_stack(volume, "sagittal", size, Intensity.from_manifest(m["preprocessing"]),
                       slice_mm=m.get("slice_mm"), cancelled=cancelled)
    add_time(state.timing_s, "slice", time.perf_counter() - started)
    # Mid-sagittal: stage 1 runs on the central half of the sagittal slices.
    n = len(stack)
    candidates = np.arange(n // 4, max(n // 4 + 1, n - n // 4))
    found = predictor.detectors["region"].predict(stack.images[candidates])
    scores = np.array([_best_box(d)[1] for d in found])
    if not len(scores) or scores.max() == 0:
        state.warnings.append(f"no spine found: {bundle.name} found no lumbar region on the central sagittal "
                              "slices (an image without a lumbar spine; cervical or thoracic MR is not supported "
                              "by the lumbar model): discs, bodies and MR fractures were not analysed")
        return
    # The region shows on every slice through the vertebral bodies; their middle is the midline
    # (the surest single slice may sit anywhere across the bodies' width).
    sure = candidates[scores >= 0.8 * scores.max()]
    mid = int(round(float(np.median(sure))))
    analysed = central_slices(mid, int(m.get("mid_slices", 3)), n)
    if cancelled():
        raise Cancelled()
    progress(f"{bundle.name}: discs", 0.4)
    region_of = {int(s): _best_box(d)[0] for s, d in zip(candidates, found)}
    disc_dets = []
    for s in analysed:
        region = region_of.get(s)
        if region is None:
            region = _best_box(predictor.detectors["region"].predict(stack.images[[s]])[0])[0]
        if region is None:
            region = region_of[mid]
        crop, affine = square_crop(stack.images[s], grow_box(region), size)
        det = predictor.detectors["discs"].predict(crop[None])[0]
        boxes = crop_to_image(det.boxes, affine) if len(det.boxes) else det.boxes
        masks = np.zeros((len(boxes), 1, 1), bool)  # boxes only; ROIs come from them
        disc_dets.append(SliceDetections(s, boxes, det.classes, det.scores, masks))
    t = stages["discs"].get("thresholds", {})
    tracks = [tr for tr in link_detections(disc_dets, float(t.get("link_iou", 0.3)))
              if len(tr.members) >= min(int(t.get("min_slices", 2)), len(analysed))]
    # Each disc's ROI spans, across the patient, the slices that show the lumbar region (the discs are
    # as wide as the bodies), and in-plane its boxes on the analysed slices.
    lo, hi = int(sure.min()), int(sure.max())
    rois = track_rois(volume, stack, _across(tracks, lo, hi), None, None)
    if cancelled():
        raise Cancelled()
    progress(f"{bundle.name}: segmentation", 0.6)
    class_maps = _segment(volume, stack, analysed, predictor, state, stages["segmentation"])
    classes = stages["segmentation"]["classes"]
    bodies, instances = [], None
    if "vertebral body" in classes:
        bodies, instances = add_mr_bodies(volume, stack, class_maps, classes.index("vertebral body"), state,
                                          bundle.name, [r.center_ras for r in rois],
                                          int(m.get("thresholds", {}).get("morphometry_min_grade", 2)),
                                          stages["segmentation"].get("graded_levels"), (lo, hi))
    order = np.argsort([-r.center_ras[2] for r in rois])  # head first
    if bodies:  # discs named by the bodies below them, themselves counted up from the sacrum
        names = disc_names_from_bodies([rois[i].center_ras[2] for i in order], [b.roi.center_ras[2] for b in bodies],
                                       [tracks[i].vote(1)[1] for i in order])
        if None in names:
            state.warnings.append(f"{bundle.name}: {names.count(None)} disc detection(s) repeating a disc "
                                  "between the same two bodies were not reported")
    else:
        names = _disc_names(len(tracks))
    discs = [(names[rank], tracks[i], rois[i], None) for rank, i in enumerate(order) if names[rank] is not None]
    if bodies:
        gaps = gap_tracks(volume, stack, instances, missing_discs(bodies, names), analysed)
        gap_rois = track_rois(volume, stack, _across([tr for _, tr in gaps], lo, hi), None, None)
        discs = sorted(discs + [(name, tr, roi, PLACED) for (name, tr), roi in zip(gaps, gap_rois)],
                       key=lambda d: -d[2].center_ras[2])
    progress(f"{bundle.name}: herniation", 0.8)
    crop_size = int(stages["herniation"]["input_size"])
    threshold = float(stages["herniation"].get("thresholds", {}).get("herniated", 0.5))
    for name, track, roi, placed in discs:
        crops = np.stack([square_crop(stack.images[s], grow_box(box), crop_size)[0] for s, box, *_ in track.members])
        p = float(predictor.herniation.predict(crops)[:, 1].mean())
        herniated = p >= threshold
        finding = Finding("disc", "herniated" if herniated else "not herniated", p if herniated else 1 - p, roi,
                          level=name, source=[bundle.name], slices=track.slices())
        finding.extra.update({"herniated": bool(herniated), "probability": round(p, 4)})
        finding.extra.update({"placed": placed} if placed else {"detection_confidence": round(track.vote(1)[1], 4)})
        if stages["herniation"].get("trained_on_synthetic_herniations"):
            finding.extra["herniation_model"] = HERNIATION_CAVEAT
        state.findings.append(finding)
    state.lumbar = {"mid_sagittal_slice": mid, "analysed_slices": analysed,
                    "stack_to_ras": np.round(stack.stack_to_ras, 6).tolist(),
                    "analysed_ras_x": [round(float(stack.to_ras(s, size / 2, size / 2)[0]), 2)
                                         for s in analysed]}


def analysed_mask(volume, lumbar: dict) -> np.ndarray:
    """Voxels of the input grid whose nearest analysed sagittal slice is one of those analysed."""
    to_stack = np.linalg.inv(np.asarray(lumbar["stack_to_ras"])) @ volume.ijk_to_ras
    k, j, i = np.indices(volume.voxels.shape, sparse=True)
    s = np.rint(to_stack[2, 0] * i + to_stack[2, 1] * j + to_stack[2, 2] * k + to_stack[2, 3])
    return np.isin(s, lumbar["analysed_slices"])


def _across(tracks: list[Track], lo: int, hi: int) -> list[Track]:
    """Each disc's track reaching, across the patient, from slice lo to hi (the slices that show the
    lumbar region: the discs are as wide as the bodies), in-plane at its middle member's box."""
    return [Track(tr.members + [(lo,) + tuple(tr.members[len(tr.members) // 2][1:]),
                                (hi,) + tuple(tr.members[len(tr.members) // 2][1:])]) for tr in tracks]


def _disc_names(n: int) -> list[str]:
    """Head-to-feet names for n discs of the lumbar region, counted up from L5-S1."""
    uppers = LEVELS[LEVELS.index("L5") - n + 1: LEVELS.index("L5") + 1] if n else []
    return [disc_name(u) for u in uppers]


def _segment(volume, stack, analysed, predictor, state: RunState, stage: dict) -> dict[int, np.ndarray]:
    """The segmentation WAE on the analysed slices, written into the labelmap; returns each analysed
    slice's class map (indices into the stage's classes)."""
    probs = predictor.segmentation.predict(stack.images[analysed])
    class_maps = {int(s): p.argmax(0) for s, p in zip(analysed, probs)}
    classes = stage["classes"]
    if {"spinal canal", "vertebral body"} <= set(classes):
        # The canal lies right behind the bodies: "canal" further away (fat under the skin: the canal
        # class was learned from phantoms only) is dropped.
        canal, body = classes.index("spinal canal"), classes.index("vertebral body")
        reach = max(1, int(round(CANAL_REACH_MM / stack.pixel_mm)))
        for cm in class_maps.values():
            near = ndimage.binary_dilation(cm == body, np.ones((2 * reach + 1, 2 * reach + 1), bool))
            cm[(cm == canal) & ~near] = 0
    value_of = {}
    for c, name in enumerate(classes):
        if c == 0:
            continue
        title, colour, code = SEGMENTS.get(name, (name.capitalize(), (0.6, 0.6, 0.6), None))
        seg = Segment(len(state.segments) + 1, title, colour,
                      {"category": ANATOMICAL_STRUCTURE, "type": code} if code else None)
        state.segments.append(seg)
        value_of[c] = seg.value
    lut = np.zeros(len(classes), np.uint16)
    for c, v in value_of.items():
        lut[c] = v
    images = {s: lut[c] for s, c in class_maps.items()}
    box, sub = stack_labels_to_box(stack, images, volume)
    if sub is not None:
        inside = sub > 0
        state.labelmap[box][inside] = sub[inside]
    return class_maps
