"""analyze(): Volume + bundles -> Results. Slicer-free; the CLI, tests and Slicer call it."""
from __future__ import annotations

import itertools
import time
from typing import Callable

import numpy as np

from .assembly import finish, run_fracture_detect, run_vertebra_levels
from .bundles import Bundle
from .lumbar import run_lumbar_mr
from .fusion import track_rois, tracks_to_box
from .predictors.factory import make_predictor
from .progress import Cancelled, Progress
from .slice_detection import detect, tracks as _tracks
from .spine.anchors import name_bodies
from .spine.bodies import find_bodies
from .spine.canal import find_canal
from .spine.prior_bodies import add_prior_bodies
from .spine.straighten import spine_frame, straighten
from .spine.prior import off_chain, summary as prior_summary
from .tasks import TASKS
from .results import Body, Finding, Results
from .volume import Volume, check_modality, validate_volume

PRIOR_TASKS = ("fracture-seg", "fracture-detect")  # the CT tasks whose objects must sit on the spine


class Analyzer:
    """Holds loaded predictors so repeated analyses (or a GUI session) load weights once."""

    def __init__(self, bundles: list[Bundle], device: str = "auto", thresholds: dict | None = None):
        """thresholds: overrides of the manifests' thresholds (e.g. the panel's fracture confidence)."""
        if not bundles:
            raise ValueError("no model bundle fits this volume's modality")
        if thresholds:  # new Bundle objects: the caller's stay as loaded
            bundles = [Bundle(b.path, {**b.manifest, "thresholds": {**b.thresholds, **thresholds}}) for b in bundles]
        self.bundles = bundles
        self.device = device
        self._predictors: dict = {}

    @property
    def loaded(self) -> list[str]:
        """The bundles whose weights this analyzer has loaded so far."""
        return list(self._predictors)

    def predictor(self, bundle: Bundle):
        if bundle.name not in self._predictors:
            build = TASKS[bundle.task].make_predictor if bundle.task in TASKS else make_predictor
            self._predictors[bundle.name] = build(bundle, self.device)
        return self._predictors[bundle.name]

    def analyze(self, volume: Volume, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> Results:
        progress = progress or (lambda stage, fraction: None)
        cancelled = cancelled or (lambda: False)
        validate_volume(volume)
        modality_warnings = check_modality(volume)
        results = Results(volume.name, np.zeros(volume.voxels.shape, np.uint8), volume.ijk_to_ras.copy(),
                          [], [], modality=volume.modality, warnings=modality_warnings,
                          dicom_series=volume.metadata.get("dicom_series"))
        if results.dicom_series:
            results.warnings.append(f"the DICOM folder holds {1 + len(results.dicom_series['other_series'])} series; "
                                    f"analysed {results.dicom_series['series_uid']} ({results.dicom_series['rule']})")
        timing = results.timing_s
        prior = None
        if volume.modality == "ct" and any(b.task in PRIOR_TASKS and b.fits("ct") for b in self.bundles):
            started = time.perf_counter()
            progress("spine prior: spinal canal", 0.05)
            results.canal = find_canal(volume)
            results.spine_prior = prior_summary(results.canal, 0)
            if results.canal is None:
                results.warnings.append("no spine found: no spinal canal in this CT, so no vertebra is named "
                                        "and no fracture reported (an image without a spine, or too coarse a scan)")
            else:
                progress("spine prior: vertebral bodies", 0.1)
                frame = spine_frame(results.canal)
                found = find_bodies(straighten(volume, frame), frame)
                prior = (found, name_bodies(found))
                results.spine_prior.update(bodies=len(found.bodies), level_anchor=prior[1].anchor,
                                           sacrum_found=found.sacrum is not None)
            timing["spine_prior"] = time.perf_counter() - started
        for bundle in self.bundles:
            if not bundle.fits(volume.modality):
                results.warnings.append(f"bundle {bundle.name} is for {bundle.manifest['modalities']}, "
                                        f"not {volume.modality}: skipped")
                continue
            if cancelled():
                raise Cancelled()
            started = time.perf_counter()
            predictor = self.predictor(bundle)
            timing["model_load"] = timing.get("model_load", 0) + time.perf_counter() - started
            runner = {"fracture-seg": run_fracture_seg, "vertebra-pose": run_vertebra_pose,
                      "vertebra-levels": run_vertebra_levels, "fracture-detect": run_fracture_detect,
                      "lumbar-mr": run_lumbar_mr, **{t: m.run for t, m in TASKS.items()}}[bundle.task]
            runner(volume, bundle, predictor, results, progress, cancelled)
            results.bundles.append(bundle.summary())
        if results.spine_prior and results.canal is None:
            _forget_spine_objects(results)
        if prior is not None:
            started = time.perf_counter()
            min_grade = next((int(b.thresholds.get("morphometry_min_grade", 2)) for b in self.bundles
                              if b.task == "fracture-seg"), 2)
            add_prior_bodies(results, volume, *prior, min_grade=min_grade)
            timing["spine_prior"] += time.perf_counter() - started
        progress("fusion", 0.9)
        finish(results)
        return results


def _forget_spine_objects(results: Results) -> None:
    """Without a spinal canal nothing the CT models found can be a vertebra: no bodies, rows, levels
    or fractures (the segmentation stays empty); the warning says why."""
    results.bodies, results.body_instances, results.detections, results.vertebrae = [], None, [], []
    results.level_profile = None
    results.findings = [f for f in results.findings if f.kind not in ("fracture", "vertebra")]


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


def run_fracture_seg(volume, bundle, predictor, results: Results, progress: Progress, cancelled) -> None:
    stack, detections = detect(volume, bundle, predictor, results, progress, cancelled)
    timing = results.timing_s
    started = time.perf_counter()
    t = bundle.thresholds
    tracks = _tracks(detections, t)
    box, instances = tracks_to_box(stack, tracks, volume)  # only the part of the grid they reach
    rois = track_rois(volume, stack, tracks, box, instances)
    classes = bundle.classes
    min_conf = float(t.get("fracture_confidence", 0.25))
    min_grade = int(t.get("morphometry_min_grade", 2))
    lateral = _off_midline(rois)
    off = {n for n, bad in enumerate(off_chain([r.center_ras for r in rois], results.canal)) if bad}
    if off - lateral:
        results.warnings.append(f"spine prior: {len(off - lateral)} object(s) off the spinal canal chain ignored "
                                "(not vertebral bodies: e.g. spinous processes, pelvis, arms, table)")
        results.spine_prior["objects_dropped"] += len(off - lateral)
    lateral |= off
    if lateral:
        # e.g. the atlas' lateral masses, which look like small bodies on a parasagittal slice
        results.warnings.append(f"{bundle.name}: {len(lateral)} object(s) beside the spine's midline ignored "
                                "(not vertebral bodies)")
        instances[np.isin(instances, [n + 1 for n in lateral])] = 0
    rows = _measure_tracks(results, box, instances, volume)
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
            results.findings.append(body.finding)
        results.bodies.append(body)
    results.body_instances, results.body_classes = (box, instances), classes
    timing["fusion"] = timing.get("fusion", 0) + time.perf_counter() - started


def run_vertebra_pose(volume, bundle, predictor, results: Results, progress: Progress, cancelled) -> None:
    """Seed 003's path: six keypoints per body from a pose model, fused across sagittal slices."""
    from .keypoint_fusion import keypoint_rows

    stack, detections = detect(volume, bundle, predictor, results, progress, cancelled)
    started = time.perf_counter()
    t = bundle.thresholds
    tracks = _tracks(detections, t)
    results.vertebrae += keypoint_rows(stack, tracks, float(t.get("keypoint_visibility", 0.25)), bundle.name)
    results.timing_s["fusion"] = results.timing_s.get("fusion", 0) + time.perf_counter() - started


def _measure_tracks(results: Results, box, instances, volume) -> dict[int, dict]:
    """Seed 003's morphometry on every body the model segmented: {instance id: row}."""
    from .spine_morphometry import measure_labelmap, name_labels

    if instances is None or not instances.any():
        return {}
    offset = np.eye(4)
    offset[:3, 3] = [box[2].start, box[1].start, box[0].start]
    ijk_to_ras = volume.ijk_to_ras @ offset  # the box's own grid
    names = name_labels(instances, ijk_to_ras, "sequential")
    ct = volume.voxels[box] if volume.modality == "ct" else None
    rows = {}
    for m in measure_labelmap(instances, ijk_to_ras, names, ct_image=ct):
        rows[m.label] = {"kind": "vertebra", "method": "mask", **m.to_json()}
        results.vertebrae.append(rows[m.label])
    return rows
