"""Seed 000: a YOLOv8-seg model segments and types vertebral bodies on sagittal slices; its tracks
become bodies with seed 003's morphometry on their masks (a clear Genant deformity is reported even
where the model saw none). Objects beside the spine's midline or off the spinal canal are dropped."""
from __future__ import annotations

import itertools
import time

import numpy as np

from ..slice_tracks import track_rois, tracks_to_box
from ..predictors.yolo import YoloPredictor, yolo_predictor
from ..progress import Progress, add_time
from ..results import Finding, VertebraRow
from ..run_state import Body, RunState
from ..sliced_model import run_sliced_model, tracks as link_tracks
from ..spine.prior import off_chain
from ..spine_morphometry import measure_labelmap, name_labels


def make_predictor(bundle, device: str = "auto") -> YoloPredictor:
    return yolo_predictor(bundle, device)


def _off_midline(rois, tolerance: float = 0.6) -> set[int]:
    """Tracks whose centre lies beside the line of bodies (left-right or front-back, by more than
    `tolerance` x the typical body extent): not vertebral bodies (e.g. the atlas' lateral masses and
    arches). The line is a quadratic in height through the most objects, refitted over them."""
    if len(rois) < 4:
        return set()
    centres = np.array([r.center_ras for r in rois])
    extents = np.array([r.extent_ras() for r in rois])  # R, A, S
    extent = np.median(extents, 0)
    scale = tolerance * np.maximum(extent[:2], 1e-3)

    def residuals(members):
        deg = min(2, len(members) - 1)
        fits = [np.polyval(np.polyfit(centres[members, 2], centres[members, a], deg), centres[:, 2]) for a in (0, 1)]
        return np.max(np.abs(centres[:, :2] - np.stack(fits, 1)) / scale, 1)

    # The line through the most objects: every three objects at different heights define one (a
    # greedy drop-the-worst refit let a cluster of atlas pieces pull the line off the bodies).
    triples = list(itertools.combinations(range(len(rois)), 3))
    if len(triples) > 3000:
        pick = np.random.default_rng(0).choice(len(triples), 3000, replace=False)
        triples = [triples[i] for i in pick]
    best_score, keep = None, None
    for triple in triples:
        if len({round(centres[n, 2], 1) for n in triple}) < 3:
            continue
        r = residuals(list(triple))
        score = (int((r <= 1.0).sum()), -float(r[r <= 1.0].sum()))  # most objects, then the tightest
        if best_score is None or score > best_score:
            best_score, keep = score, np.flatnonzero(r <= 1.0)
    if keep is None:  # no three objects at different heights
        return set()
    r = residuals(keep)  # least squares over all the line's objects (at least its own three)
    beside = {n for n in range(len(rois)) if r[n] > 1.0}
    # Above the highest body-like object (left-right and front-back extent like the others', whatever
    # the image edge cut off in height) lie only pieces of the atlas: its arches, ring, lateral masses.
    ratio = extents[:, :2] / np.maximum(extent[:2], 1e-3)
    body_like = [n for n in range(len(rois)) if n not in beside and np.all((ratio[n] >= 0.55) & (ratio[n] <= 1.35))]
    top = max((centres[n, 2] for n in body_like), default=np.inf)
    return beside | {n for n in range(len(rois)) if n not in body_like and centres[n, 2] > top}


def _fracture_probability(track, classes: list[str]) -> float:
    """The body's mean score of its most likely fracture class (0 when the model saw none)."""
    means = track.mean_scores(len(classes))
    means[classes.index("vertebral body")] = 0.0
    return float(means.max())


def _clarity(morph: dict) -> float:
    """Confidence of a measured deformity: 0.5 + height loss (25 % -> 0.75, 40 % -> 0.9)."""
    return min(0.99, 0.5 + morph["height_loss"])


def run(volume, bundle, predictor, state: RunState, progress: Progress, cancelled) -> None:
    stack, detections = run_sliced_model(volume, bundle, predictor, state, progress, cancelled)
    timing = state.timing_s
    started = time.perf_counter()
    t = bundle.thresholds
    tracks = link_tracks(detections, t)
    box, instances = tracks_to_box(stack, tracks, volume)  # only the part of the grid they reach
    rois = track_rois(volume, stack, tracks, box, instances)
    classes = bundle.classes
    min_conf = float(t.get("fracture_confidence", 0.25))
    min_grade = int(t.get("morphometry_min_grade", 2))
    off = {n for n, bad in enumerate(off_chain([r.center_ras for r in rois], state.canal)) if bad}
    # The midline is fitted through the objects the canal allows: on a real CT the pelvis, the arms
    # and the table outnumber the bodies, and a line through "most objects" would run through them.
    on = [n for n in range(len(rois)) if n not in off]
    lateral = {on[n] for n in _off_midline([rois[n] for n in on])}
    if off - lateral:
        state.warnings.append(f"spine prior: {len(off - lateral)} object(s) off the spinal canal chain ignored "
                              "(not vertebral bodies: e.g. spinous processes, pelvis, arms, table)")
        state.spine_prior["objects_dropped"] += len(off - lateral)
    lateral |= off
    if lateral:
        # e.g. the atlas' lateral masses, which look like small bodies on a parasagittal slice
        state.warnings.append(f"{bundle.name}: {len(lateral)} object(s) beside the spine's midline ignored "
                              "(not vertebral bodies)")
        instances[np.isin(instances, [n + 1 for n in lateral])] = 0
    rows = _measure_tracks(state, box, instances, volume)
    for n, (track, roi) in enumerate(zip(tracks, rois)):
        if n in lateral:
            continue
        cls_index, confidence = track.vote(len(classes))
        row = rows.get(n + 1)
        morph = {k: row[k] for k in ("status", "heights_mm", "height_loss", "genant_grade", "type",
                                     "keypoints_ras")} if row else None
        if row is not None:
            row["roi"] = roi.__dict__
        label, source = classes[cls_index], [bundle.name]
        if label == "vertebral body" or confidence < min_conf:  # not a confident model fracture
            label = "vertebral body"
            if morph and (morph["genant_grade"] or 0) >= min_grade:
                # Its own mask measures a clear Genant deformity: report it, typed by morphometry.
                label, source, confidence = morph["type"], ["morphometry"], _clarity(morph)
        elif morph and (morph["genant_grade"] or 0) >= min_grade and morph["type"] != label \
                and confidence < float(t.get("model_type_confidence", 0.5)):
            # An unsure model type against a clear measured deformity: the measurement decides.
            source = [bundle.name, "morphometry"]
            label, confidence = morph["type"], max(confidence, _clarity(morph))
        body = Body(n + 1, label, roi, _fracture_probability(track, classes), row)
        if label != "vertebral body":
            body.finding = Finding("fracture", label, confidence, roi, source=source, slices=track.slices())
            body.fracture_probability = max(body.fracture_probability, confidence)
            if morph:
                body.finding.extra["morphometry"] = morph
            state.findings.append(body.finding)
        state.bodies.append(body)
    state.body_instances, state.body_classes = (box, instances), classes
    add_time(timing, "fusion", time.perf_counter() - started)


def _measure_tracks(state: RunState, box, instances, volume) -> dict[int, dict]:
    """Seed 003's morphometry on every body the model segmented: {instance id: row}."""
    if instances is None or not instances.any():
        return {}
    offset = np.eye(4)
    offset[:3, 3] = [box[2].start, box[1].start, box[0].start]
    ijk_to_ras = volume.ijk_to_ras @ offset  # the box's own grid
    names = name_labels(instances, ijk_to_ras, "sequential")
    ct = volume.voxels[box] if volume.modality == "ct" else None
    rows = {}
    for m in measure_labelmap(instances, ijk_to_ras, names, ct_image=ct):
        rows[m.label] = VertebraRow.from_json({"method": "mask", **m.to_json()})
        state.vertebrae.append(rows[m.label])
    return rows
