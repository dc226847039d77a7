"""After the models ran: levels for bodies and findings (seed 001), a detector's findings fused with
the fracture model's, segments named by level, per-vertebra rows and the patient-level output."""
from __future__ import annotations

import time

import numpy as np

from .level_assignment import LevelProfile, assign_body_levels
from .levels import LEVELS
from .progress import add_time
from .results import Finding, VertebraRow
from .run_state import RunState
from .terminology import FRACTURE_SEG_CLASSES, segment_for_body, segment_for_class

CERVICAL = [f"C{i}" for i in range(1, 8)]
# Sizes tell the region, not the level: only a classifier name well outside what a body's size
# allows (a lumbar body called cervical) lets the size guess overrule it.
MAX_GUESS_GAP = 2


def assemble_results(state: RunState) -> None:
    """Levels, then the detector's findings fused with the bodies, then segments and vertebra rows: the
    order matters (fusion matches findings by level)."""
    started = time.perf_counter()
    if state.level_profile is not None:
        _assign_levels(state)
    _c2_not_graded(state)
    _fuse_detections(state)
    _write_segments(state)
    if state.level_profile is not None or state.bodies:
        _vertebra_rows(state)
    state.findings.sort(key=lambda f: -f.confidence)
    state.stacks.clear()  # the slices are not needed once the models ran
    add_time(state.timing_s, "fusion", time.perf_counter() - started)


def _assign_levels(state: RunState) -> None:
    profile: LevelProfile = state.level_profile
    named = [b for b in state.bodies if b.level is not None]  # counted from an anchor (spine prior)
    for body in state.bodies if named else []:
        if body.level is None:  # off the prior's stretch of canal: the classifier's level there
            body.level = profile.best_level(body.roi.center_ras)[0]
            if body.row is not None:
                body.row.level = body.level
            if body.finding is not None:
                body.finding.level = body.level
    if state.bodies and not named:
        heights = [float(b.roi.extent_ras()[2]) for b in state.bodies]
        names, check = assign_body_levels(profile, [b.roi.center_ras for b in state.bodies], heights_mm=heights)
        for body, name in zip(state.bodies, names):
            body.level = name
            if body.finding is not None:
                body.finding.level = name
            if body.row is not None:  # the rank the morphometry saw ("#n from top") stays as position
                body.row.position, body.row.level = body.row.level, name
        state.levels_check = check
        atlas = [b for b in state.bodies if b.level == "C1"]
        if atlas:  # C1 has no body: what the fracture model took for one is part of the atlas
            state.bodies = [b for b in state.bodies if b.level != "C1"]
            state.findings = [f for f in state.findings if all(f is not b.finding for b in atlas)]
            state.vertebrae = [r for r in state.vertebrae if all(r is not b.row for b in atlas)]
            state.warnings.append(f"levels: {len(atlas)} object(s) at C1 ignored (the atlas has no body)")
            check["bodies"], check["atlas_pieces"] = len(state.bodies), len(atlas)  # what was counted
        by_size = _sizes_over_classifier(state)
        disagree = [f"{a or '?'}->{b}" for a, b in zip(check["classifier_alone"], names) if a != b]
        if check["agreement"] < 0.5 and not by_size:
            state.warnings.append(f"levels: the classifier and the body count disagree on {len(disagree)} of "
                                  f"{len(names)} vertebrae ({', '.join(disagree)}); levels follow the count")
    for finding in state.findings:  # findings that are no body of the fracture model
        if finding.level is None:
            finding.level = profile.best_level(finding.roi.center_ras)[0]


def _c2_not_graded(state: RunState) -> None:
    """C2's body runs up into the dens, so its heights are no Genant measure (the method grades
    the bodies below it): a deformity measured there alone is not a finding."""
    for body in state.bodies:
        status = "" if body.row is None else str(body.row.get("status"))
        if body.level != "C2" or not (status == "measured" or status.startswith("not graded")):
            continue  # (C2 with its dens reads as "two bodies high" next to C3: the dens says why)
        body.row.update(status="not graded: the C2 body runs up into the dens", genant_grade=None, type=None)
        if body.finding is not None and body.finding.source == ["morphometry"]:
            state.findings = [f for f in state.findings if f is not body.finding]
            body.finding, body.label, body.fracture_probability = None, "vertebral body", 0.0


def _sizes_over_classifier(state: RunState) -> bool:
    """Without an anchor, the spine prior guessed each body's level from its size (row
    "level_guess", and "level_guess_range": the levels its spacing allows). Where the classifier's
    names lie more than MAX_GUESS_GAP levels outside those ranges (a lumbar body called cervical),
    the guesses stand: both are uncertain, only one is plausible."""
    guessed = [b for b in state.bodies if b.row is not None and b.row.get("level_guess_range") and b.level in LEVELS]
    if not guessed:
        return False

    def outside(body) -> int:
        lo, hi = (LEVELS.index(x) for x in body.row["level_guess_range"])
        at = LEVELS.index(body.level)
        return max(lo - at, at - hi, 0)

    off = float(np.median([outside(b) for b in guessed]))
    if off <= MAX_GUESS_GAP:
        return False
    for body in guessed:
        body.level = body.row.level = body.row["level_guess"]
        if body.finding is not None:
            body.finding.level = body.level
    state.warnings.append(f"levels: the level classifier's names lie {off:.0f} levels beyond what the bodies' "
                          "sizes allow; levels follow the sizes (no anchor in the scan: uncertain)")
    return True


def _body_at(state: RunState, finding: Finding):
    """The body whose ROI holds the finding's centre (3 mm slack), else the nearest within 15 mm."""
    centre = np.asarray(finding.roi.center_ras)
    inside = [b for b in state.bodies if b.roi.contains(centre, 3.0)]
    pool = inside or [b for b in state.bodies if np.linalg.norm(np.subtract(b.roi.center_ras, centre)) <= 15.0]
    return min(pool, key=lambda b: np.linalg.norm(np.subtract(b.roi.center_ras, centre)), default=None)


def _fuse_detections(state: RunState) -> None:
    """A detector finding on a body the fracture model also reports becomes one finding: the type
    from the fracture model, the higher confidence, both sources. Otherwise it stands alone."""
    unconfirmed = 0
    for det in state.detections:
        body = _body_at(state, det)
        if body is not None:
            det.level = body.level
        elif state.level_profile is not None:
            det.level = state.level_profile.best_level(det.roi.center_ras)[0]
        trained = det.extra.pop("levels_trained", None)  # the manifest's "levels": where it reports
        if trained and det.level and det.level not in trained:
            state.warnings.append(f"{det.source[0]}: a finding at {det.level} is outside the levels it "
                                  f"reports ({trained[0]}-{trained[-1]}): dropped")
            continue
        fuses = body is not None and body.finding is not None
        if trained and not det.level and not fuses:
            # Without levels nothing says it is in the region the detector knows: it may only
            # confirm the fracture model, not stand alone.
            unconfirmed += 1
            continue
        if fuses:
            body.finding.extra["confidences"] = {body.finding.source[0]: round(body.finding.confidence, 4),
                                                 det.source[0]: round(det.confidence, 4)}
            body.finding.confidence = max(body.finding.confidence, det.confidence)
            body.finding.source = body.finding.source + [s for s in det.source if s not in body.finding.source]
            body.fracture_probability = max(body.fracture_probability, det.confidence)
            continue
        if body is not None:  # the fracture model saw an intact body here: keep the detector's word
            det.roi = body.roi  # the body's own voxels bound it better than boxes do
            body.finding, body.label = det, "fracture"
            body.fracture_probability = max(body.fracture_probability, det.confidence)
        state.findings.append(det)
    if unconfirmed:
        state.warnings.append(f"{unconfirmed} detector finding(s) without a level and without a fracture-model "
                              "finding on the same body were not reported (run the levels analysis to use them)")


def _write_segments(state: RunState) -> None:
    """Segments on the input grid: one per vertebra named by level when levels are known, else one
    per class (the fracture model's classes)."""
    if state.body_instances is None:  # no fracture model ran
        return
    box, instances = state.body_instances
    lut = np.zeros(int(instances.max()) + 1 if instances is not None and instances.size else 1, np.uint16)
    if state.bodies and all(b.level for b in state.bodies):
        for body in sorted(state.bodies, key=lambda b: LEVELS.index(b.level)):
            seg = segment_for_body(body.level, body.label, len(state.segments) + 1)
            state.segments.append(seg)
            _link(body, seg.value, lut)
    else:
        value_of = {}
        for name in state.body_classes or FRACTURE_SEG_CLASSES:
            seg = segment_for_class(name, len(state.segments) + 1)
            state.segments.append(seg)
            value_of[name] = seg.value
        for body in state.bodies:
            _link(body, value_of.get(body.label, value_of["vertebral body"]), lut)
    if instances is not None:
        inside = instances > 0
        state.labelmap[box][inside] = lut[instances[inside]]


def _link(body, value: int, lut: np.ndarray) -> None:
    if body.instance < len(lut):
        lut[body.instance] = value
    if body.finding is not None:
        body.finding.segment_value = value


def _vertebra_rows(state: RunState) -> None:
    """Each body's row gains its fracture probability; levels seen only by the classifier get a row;
    the patient output follows RSNA 2022 (one probability per C1-C7 and overall)."""
    per_level: dict[str, float] = {}
    for body in state.bodies:
        p = round(float(body.fracture_probability), 4)
        if body.row is not None:
            body.row["fracture_probability"] = p
        if body.level:
            per_level[body.level] = max(per_level.get(body.level, 0.0), p)
    for f in state.findings:
        if f.level in LEVELS:  # vertebrae only: a disc's level is two names
            per_level[f.level] = max(per_level.get(f.level, 0.0), round(float(f.confidence), 4))
    # Levels the fracture models looked at and found nothing on are 0, not unknown.
    looked = any(b.get("task") in ("fracture-seg", "fracture-detect") for b in state.bundles)
    profile = state.level_profile
    if profile is not None:
        seen = {r.get("level") for r in state.vertebrae}
        for name, (first, last, on_spine) in _levels_beyond_bodies(state, profile).items():
            if name in seen:
                continue
            centre = on_spine((first + last) / 2)
            state.vertebrae.append(VertebraRow("level classifier", name, data={
                "status": "located by the level classifier", "center_ras": np.round(centre, 2).tolist(),
                "extent_ras": [np.round(on_spine(first - 0.5), 2).tolist(),
                               np.round(on_spine(last + 0.5), 2).tolist()],
                "fracture_probability": per_level.get(name, 0.0 if looked else None)}))
            per_level.setdefault(name, 0.0 if looked else None)
        state.vertebrae.sort(key=lambda r: LEVELS.index(r["level"]) if r.get("level") in LEVELS else 99)
    if not per_level:
        return
    known = [p for p in per_level.values() if p is not None]
    state.patient = {"format": "RSNA 2022 cervical spine fracture (levels not in the scan: null)",
                     **{c: per_level.get(c) for c in CERVICAL},
                     "per_level": {k: per_level[k] for k in sorted(per_level, key=LEVELS.index)},
                     "patient_overall": max(known) if known else None}


def _levels_beyond_bodies(state: RunState, profile: LevelProfile) -> dict[str, tuple]:
    """The classifier's level runs that may get a row of their own: name -> (first slice, last slice,
    slice -> RAS). Without counted bodies: all of them, on the stack's middle. With bodies: only levels
    continuing the counted sequence upwards or downwards, without a gap, whose run is centred beyond
    the bodies (the atlas above C2; a vertebra cut by the edge of the scan) and at most 1.5 body
    spacings (those at that end of the chain) from the row before it: a run further off is the
    classifier naming what lies beyond the spine, e.g. the field above a neck. Such a row lies on the
    line of the bodies, not on the stack's middle (behind the spine, or under the table). A run inside
    the counted stretch is the per-slice classifier hesitating between neighbours, which the count
    has already settled."""
    runs = profile.extents()
    counted = sorted((b for b in state.bodies if b.level in LEVELS), key=lambda b: LEVELS.index(b.level))
    if not counted:
        return {name: (first, last, profile.ras_of_slice) for name, (first, last) in runs.items()}
    spans = [(profile.slice_of(b.roi.center_ras), float(b.roi.extent_ras()[2]) / 2 / profile.slice_step_mm)
             for b in counted]
    top = min(c - h for c, h in spans)
    bottom = max(c + h for c, h in spans)
    kept = {}
    for direction, chain in ((-1, counted), (1, counted[::-1])):
        end = chain[0]
        rank, last_centre = LEVELS.index(end.level) + direction, profile.slice_of(end.roi.center_ras)
        # the spacing at that end of the chain: a neck's 17 mm, a lumbar spine's 35
        inner = next((b for b in chain if b.level != end.level), None)
        spacing = 30.0 if inner is None else \
            abs(profile.slice_of(inner.roi.center_ras) - last_centre) * profile.slice_step_mm
        while 0 <= rank < len(LEVELS) and LEVELS[rank] in runs:
            first, last = runs[LEVELS[rank]]
            centre = (first + last) / 2
            if (direction < 0 and centre >= top) or (direction > 0 and centre <= bottom) \
                    or abs(centre - last_centre) * profile.slice_step_mm > 1.5 * spacing:
                break
            kept[LEVELS[rank]] = (first, last, _along_stack(profile, end))
            rank, last_centre = rank + direction, centre
    return kept


def _along_stack(profile: LevelProfile, body):
    """slice -> RAS: the body's centre moved along the stack's axis to that slice."""
    origin = np.asarray(body.roi.center_ras, float)
    s0 = profile.slice_of(origin)
    return lambda s: origin + profile.stack_to_ras[:3, 2] * (s - s0)
