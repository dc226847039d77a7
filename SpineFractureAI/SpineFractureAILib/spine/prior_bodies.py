"""The bodies found along the canal become bodies of the analysis: segmented on the input grid,
measured (seed 003's six points on their masks), named from the anchor, reported as fractures
where their own mask shows a clear Genant deformity. A body the fracture model already segmented
keeps the model's mask and class; it only takes its level from here."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..slice_tracks import roi_from_mask_slices
from ..morphometry import genant_grade
from ..results import Finding, VertebraRow
from ..run_state import Body, RunState
from ..spine_morphometry import measure_labelmap
from .anchors import Naming
from .bodies import SpineBodies
from .straighten import STEP_MM

SOURCE = "spine prior"
POSSIBLE_CONFIDENCE = 0.6  # a deformity the voxels allow but do not show for sure
PAD = 3  # voxels around the bodies: a body touching the box's edge would read as cut


def straight_labels(found: SpineBodies) -> np.ndarray:
    """[u, d, l] body number (1-based, head first) on the straightened grid."""
    labels = np.zeros(found.bodies[0].mask.shape, np.int16) if found.bodies else np.zeros((1, 1, 1), np.int16)
    for n, body in enumerate(found.bodies):
        labels[body.mask & (labels == 0)] = n + 1
    return labels


def to_grid(volume, found: SpineBodies, labels: np.ndarray, chunk: int = 4) -> tuple[tuple, np.ndarray] | None:
    """(box as (k, j, i) slices, body numbers on that box of the input grid): each voxel takes the
    label of the straightened sample nearest to it. Only each body's own box is mapped back (a
    curved spine's whole box is mostly not body)."""
    frame = found.frame
    uu, dd, ll = np.nonzero(labels)
    if not len(uu):
        return None
    ijk = volume.ras_to_ijk_points(frame.to_ras(uu, frame.d_mm[dd], frame.l_mm[ll]))
    shape = np.array(volume.shape_ijk)
    lo = np.maximum(np.floor(ijk.min(0)).astype(int) - PAD, 0)
    hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + PAD + 1, shape)
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    out = np.zeros(tuple(h - l for h, l in zip(hi[::-1], lo[::-1])), np.int16)
    values = labels[uu, dd, ll]
    for number in np.unique(values):
        mine = ijk[values == number]
        b_lo = np.maximum(np.floor(mine.min(0)).astype(int) - 1, lo)
        b_hi = np.minimum(np.ceil(mine.max(0)).astype(int) + 2, hi)
        jj, ii = np.meshgrid(np.arange(b_lo[1], b_hi[1]), np.arange(b_lo[0], b_hi[0]), indexing="ij")
        for k0 in range(b_lo[2], b_hi[2], chunk):
            ks = np.arange(k0, min(k0 + chunk, b_hi[2]))
            pts = np.stack(np.broadcast_arrays(ii[None], jj[None], ks[:, None, None]), -1).reshape(-1, 3)
            vals = _straight_label_at(volume, frame, labels, pts).reshape(len(ks), *jj.shape)
            target = out[k0 - lo[2]:k0 - lo[2] + len(ks), b_lo[1] - lo[1]:b_hi[1] - lo[1], b_lo[0] - lo[0]:b_hi[0] - lo[0]]
            target[(vals == number) & (target == 0)] = number
    return box, out


def _straight_label_at(volume, frame, labels: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The straightened label nearest to each voxel (i, j, k) of the input grid."""
    ras = volume.ijk_to_ras_points(pts.astype(float))
    u, d, l = frame.to_straight(ras).T
    # Where the spine curves, rows fan out and far in front two may claim a voxel: keep only
    # voxels the straightened sample maps back onto.
    back = np.linalg.norm(frame.to_ras(u, d, l) - ras, axis=1) <= STEP_MM
    iu = np.rint(u).astype(int)
    idd = np.rint((d - frame.d_mm[0]) / STEP_MM).astype(int)
    il = np.rint((l - frame.l_mm[0]) / STEP_MM).astype(int)
    ok = back & (iu >= 0) & (iu < labels.shape[0]) & (idd >= 0) & (idd < labels.shape[1]) & (il >= 0) & (il < labels.shape[2])
    vals = np.zeros(len(pts), np.int16)
    vals[ok] = labels[iu[ok], idd[ok], il[ok]]
    return vals


def body_number_at(found: SpineBodies, ras) -> int | None:
    """The found body (0-based) whose stretch of the canal holds this point's height; -1 below the
    last disc where the prior found the sacrum; None elsewhere."""
    u = found.frame.to_straight(np.asarray(ras, float))[0, 0]
    for n, body in enumerate(found.bodies):
        if body.top_u <= u <= body.bottom_u:
            return n
    return -1 if found.sacrum is not None and u >= found.sacrum.top_u else None


def add_prior_bodies(state: RunState, volume, found: SpineBodies, naming: Naming, min_grade: int = 2) -> None:
    """The bodies found along the canal become the analysis' bodies, with rows, levels and
    findings. A fracture-model body on the same stretch of canal gives way: its class and
    confidence pass to the prior's body, where the body's own measurement must not contradict it."""
    mapped = to_grid(volume, found, straight_labels(found))
    if mapped is None:
        return
    model = _take_model_bodies(state, found)
    box, numbers = mapped
    objects = ndimage.find_objects(numbers, max_label=len(found.bodies))
    names = {n + 1: naming.names[n] or "C1" for n in range(len(found.bodies)) if objects[n] is not None}
    offset = np.eye(4)
    offset[:3, 3] = [box[2].start, box[1].start, box[0].start]
    ct = volume.voxels[box] if volume.modality == "ct" else None
    # The prior's masks stop at the canal's front wall: no posterior elements to open away (an
    # opening erodes a crushed body four thick slices high to a core too shallow to measure).
    rows = {m.label: VertebraRow.from_json({"method": "mask", "source": SOURCE, **m.to_json(), **naming.row_fields(m.label - 1)})
            for m in measure_labelmap(numbers, volume.ijk_to_ras @ offset, names, whole_vertebrae=False, ct_image=ct)}
    first_id = _merge_instances(state, box, numbers)
    for number, why in tilted_endplates(rows, names).items():
        rows[number]["measurement_doubt"] = why
        state.warnings.append(f"{names[number]}: {why}; not reported as a fracture (check the image)")
    contradicted = 0
    for number, row in sorted(rows.items()):
        level = names[number]
        if level == "C1":
            continue
        shifted = tuple(slice(o.start + b.start, o.stop + b.start) for o, b in zip(objects[number - 1], box))
        roi = roi_from_mask_slices(volume, shifted)
        row["roi"] = roi.__dict__
        if found.bodies[number - 1].cut:  # the scan's edge: the first reason, whatever else was found
            row["status"], row["genant_grade"] = "unmeasurable: cut by the field of view", None
        if naming.anchor == "none" and state.level_profile is not None:
            # no anchor, a level classifier ran: it names the body, the size guess checks it (assembly)
            row["level_guess"], level = level, None
            row["level_guess_range"] = list(naming.plausible[number - 1])
        body = Body(first_id + number, "vertebral body", roi, 0.0, row, level=level)
        contradicted += _fracture_finding(state, body, model.get(number - 1), min_grade)
        state.vertebrae.append(row)
        state.bodies.append(body)
    if contradicted:
        state.warnings.append(f"{contradicted} fracture-model call(s) not reported: the body's own measurement "
                              "shows no height loss (Genant grade 0); kept in the rows as model_fracture")


def _take_model_bodies(state: RunState, found: SpineBodies) -> dict[int, Body]:
    """Remove the fracture model's bodies that lie on the prior's bodies (their rows, findings and
    voxels); returns, per prior body, the most confident model body on it."""
    on: dict[int, Body] = {}
    sacral = 0
    for body in list(state.bodies):
        n = body_number_at(found, body.roi.center_ras)
        if n is None:
            continue
        sacral += n == -1
        state.bodies.remove(body)
        state.vertebrae = [r for r in state.vertebrae if r is not body.row]
        state.findings = [f for f in state.findings if f is not body.finding]
        if state.body_instances is not None and state.body_instances[1] is not None:
            state.body_instances[1][state.body_instances[1] == body.instance] = 0
        if n >= 0 and (n not in on or body.fracture_probability > on[n].fracture_probability):
            on[n] = body
    if sacral:
        state.warnings.append(f"spine prior: {sacral} fracture-model object(s) on the sacrum ignored "
                              "(the sacrum is not a vertebral body)")
    return on


def tilted_endplates(rows: dict, names: dict) -> dict[int, str]:
    """Wedges that a neighbour's reverse wedge explains: where one body measures Ha/Hp <= 0.8 and the
    next Ha/Hp >= 1.15 while the two together keep their heights (sum of Ha / sum of Hp >= 0.9), the
    endplate between them was measured tilted; a real wedge fracture leaves its neighbour's shape alone,
    and no body from T1 to L4 is a reverse wedge. L5 (a reverse wedge by nature) explains nothing.
    Returns {row number: why} for the wedge-shaped rows."""
    doubts = {}
    numbers = sorted(rows)
    for upper, lower in zip(numbers, numbers[1:]):
        if lower != upper + 1:
            continue
        pair = [rows[upper], rows[lower]]
        if any(r.get("status") != "measured" or not r.get("heights_mm") for r in pair):
            continue
        ha = [r["heights_mm"]["anterior"] for r in pair]
        hp = [r["heights_mm"]["posterior"] for r in pair]
        ratio = [a / max(p, 1e-6) for a, p in zip(ha, hp)]
        if sum(ha) / max(sum(hp), 1e-6) < 0.9:
            continue
        for wedge, reverse in ((0, 1), (1, 0)):
            if ratio[wedge] <= 0.8 and ratio[reverse] >= 1.15 and names[(upper, lower)[reverse]] != "L5":
                doubts[(upper, lower)[wedge]] = (
                    f"wedge-shaped (Ha/Hp {ratio[wedge]:.2f}) beside {names[(upper, lower)[reverse]]}'s reverse "
                    f"wedge (Ha/Hp {ratio[reverse]:.2f}): the endplate between them measured tilted")
    return doubts


def genant_type(row: dict) -> str:
    """The deformity a row's height ratios show most (what morphometry types a graded body by)."""
    ratios = row.get("ratios") or {}
    losses = {"wedge": 1 - ratios.get("Ha/Hp", 1.0), "biconcave": 1 - ratios.get("Hm/Hp", 1.0),
              "crush": 1 - ratios.get("Hp/neighbours", 1.0)}
    return max(losses, key=losses.get)


def _level_fields(row) -> dict:
    """The row's level anchor and certainty, for its finding."""
    return {k: row[k] for k in ("level_anchor", "level_certainty")}


def _fracture_finding(state: RunState, body: Body, model: Body | None, min_grade: int) -> int:
    """A finding where the body's measurement shows a Genant grade >= min_grade (typed by the model
    when it called a fracture too), or where the model called one on a body that cannot be measured.
    Returns 1 when a model call was overruled by a measured grade 0."""
    row = body.row
    measured = row["status"] == "measured"
    grade = row.get("genant_grade") or 0
    # a model call, not the model body's own morphometry (measured again here on the prior's mask)
    called = model is not None and model.finding is not None and model.finding.source != ["morphometry"]
    row["fracture_probability"] = round(float(model.fracture_probability), 4) if model is not None else None
    if called and measured and grade == 0:
        row["model_fracture"] = {"label": model.finding.label, "confidence": round(model.finding.confidence, 4),
                                 "source": model.finding.source}
        return 1
    # Coarse voxels report the least grade their uncertainty allows (issue 13); a point estimate of
    # min_grade or more is still shown, as a possible fracture with its grade range.
    possible = measured and grade < min_grade <= genant_grade(row.get("height_loss") or 0.0) \
        and bool(row.get("genant_grade_range"))
    doubted = bool(row.get("measurement_doubt")) and not called  # warned in add_prior_bodies
    if measured and not doubted and (grade >= min_grade or possible):
        morph = {k: row[k] for k in ("status", "heights_mm", "height_loss", "genant_grade", "genant_grade_range",
                                     "type", "keypoints_ras")}
        label = model.finding.label if called and model.finding.label in ("wedge", "biconcave", "crush") else row["type"]
        source = list(model.finding.source) if called else ["morphometry"]  # measured on the prior's mask
        confidence = max(min(0.99, 0.5 + row["height_loss"]), model.finding.confidence if called else 0.0)
        extra = {"morphometry": morph, **_level_fields(row)}
        if possible:
            extra["certainty"] = (f"possible: the voxels allow Genant grade {row['genant_grade_range'][0]}-"
                                  f"{row['genant_grade_range'][1]}")
            label = label or genant_type(row)
            confidence = min(confidence, POSSIBLE_CONFIDENCE)
        body.finding = Finding("fracture", label, confidence, body.roi, level=body.level, source=source, extra=extra)
    elif called and not measured:  # the model's word alone: nothing measured contradicts it
        body.finding = model.finding
        body.finding.roi, body.finding.level = body.roi, body.level
        body.finding.extra.update(_level_fields(row))
    if body.finding is not None:
        body.label = body.finding.label
        body.fracture_probability = max(body.fracture_probability, body.finding.confidence)
        state.findings.append(body.finding)
    return 0


def _merge_instances(state: RunState, box: tuple, numbers: np.ndarray) -> int:
    """Put the prior's bodies into state.body_instances (growing its box); returns the id offset."""
    if state.body_instances is None or state.body_instances[1] is None:
        state.body_instances = (box, numbers.astype(np.int32))
        state.body_classes = state.body_classes or ["vertebral body"]
        return 0
    old_box, old = state.body_instances
    start = [min(a.start, b.start) for a, b in zip(old_box, box)]
    stop = [max(a.stop, b.stop) for a, b in zip(old_box, box)]
    merged = np.zeros([b - a for a, b in zip(start, stop)], np.int32)
    merged[tuple(slice(a.start - s, a.stop - s) for a, s in zip(old_box, start))] = old
    first_id = int(old.max()) if old.size else 0
    view = merged[tuple(slice(a.start - s, a.stop - s) for a, s in zip(box, start))]
    fresh = (numbers > 0) & (view == 0)
    view[fresh] = numbers[fresh] + first_id
    state.body_instances = (tuple(slice(a, b) for a, b in zip(start, stop)), merged)
    return first_id
