"""Vertebral bodies on lumbar MR: the segmenter's body class on the analysed sagittal slices, one
body per connected piece, named from the sacrum up (the lowest lumbar body is L5), measured with
seed 003's six points like CT bodies, and a Genant grade >= 2 reported as a fracture. On a
fluid-sensitive series (STIR / TIRM / fat-saturated T2) a fractured body brighter than its
neighbours shows bone-marrow oedema: "likely recent"."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .slice_tracks import roi_from_mask_slices
from .levels import LEVELS, disc_name
from .results import Finding, Roi, VertebraRow
from .run_state import Body, RunState
from .slicing import stack_labels_to_box
from .spine_morphometry import measure_labelmap

ANCHOR = "counted up from the sacrum: the lowest body above the lowest disc (L5-S1) is L5"
# Words of a series description that mean fat suppression or inversion recovery (whole words:
# "FS" is fat-saturated, but "FSE" is a fast spin echo); phrases are matched as they stand.
FLUID_WORDS = {"STIR", "TIRM", "FATSAT", "FS", "SPAIR", "SPIR", "WATER"}
FLUID_PHRASES = ("FAT SAT", "DIXON W")
MIN_LUMBAR_HEIGHT_MM = 17.0  # a lumbar body is 24-30 mm high; a cervical one about 14
OEDEMA_RATIO = 1.25
# A piece this much higher than the median body, with a detected disc or a waist inside it, is two
# bodies the segmenter ran together (seen on volunteer exams: L4 and L5 as one 60 mm piece).
MERGED_HEIGHT = 1.5
WAIST = 0.6  # a run-together piece without a detected disc is cut where it is this much narrower
SPLIT_STATUS = "unmeasurable: run together with a neighbour across a disc (its endplates not segmented)"


def body_instances(volume, stack, class_maps: dict[int, np.ndarray], body_class: int) -> np.ndarray:
    """Instance map on the volume's grid: 1 = the highest body, counting down; tiny pieces dropped."""
    box, sub = stack_labels_to_box(stack, {s: (m == body_class).astype(np.uint16) for s, m in class_maps.items()},
                                   volume)
    mask = np.zeros(volume.voxels.shape, bool)
    if sub is None:
        return mask.astype(np.int32)
    mask[box] = sub > 0
    parts, n = ndimage.label(mask)
    if n == 0:
        return parts.astype(np.int32)
    sizes = ndimage.sum(mask, parts, range(1, n + 1))
    keep = [i + 1 for i in range(n) if sizes[i] >= 0.25 * sizes.max()]
    return head_first(volume, parts, keep)


def head_first(volume, labels: np.ndarray, values) -> np.ndarray:
    """The pieces `values` of labels relabelled 1..n from the highest centroid down."""
    values = list(values)
    height = heights_s(volume, labels, values)
    out = np.zeros(labels.shape, np.int32)
    for rank, i in enumerate(np.argsort(height)[::-1]):
        out[labels == values[i]] = rank + 1
    return out


def split_run_together(volume, instances: np.ndarray, disc_centres: list) -> tuple[np.ndarray, set[int]]:
    """Cut a piece that is two bodies run together: along a detected disc's plane inside it (normal:
    the spine's direction there, from the neighbouring discs), or, where no disc was detected (a thin,
    dark, degenerate disc; T11-T12 above the discs the detector learned), at its waist. Each part is
    looked at again, so three bodies in one piece become three. Returns the instances relabelled head
    first and the labels of cut bodies (a cut is no endplate: they are not measured)."""
    n = int(instances.max())
    if n < 2:
        return instances, set()
    discs = sorted((np.asarray(c, float) for c in disc_centres), key=lambda c: -c[2])
    typical = float(np.median([roi_from_mask_slices(volume, o).extent_ras()[2]
                               for o in ndimage.find_objects(instances) if o is not None]))
    out, next_label, split = instances.copy(), n + 1, set()
    queue = list(range(1, n + 1))
    while queue:
        label = queue.pop()
        ijk = np.argwhere(out == label)  # (k, j, i)
        ras = volume.ijk_to_ras_points(ijk[:, ::-1])
        if not len(ras) or np.ptp(ras[:, 2]) < MERGED_HEIGHT * typical:
            continue
        plane = _disc_plane(ras, discs, typical) or _waist(ras, typical)
        if plane is None:
            continue
        below = (ras - plane[0]) @ plane[1] < 0
        if below.all() or not below.any():
            continue
        out[tuple(ijk[below].T)] = next_label
        split |= {int(v) for v in np.unique(instances[tuple(ijk.T)])}
        queue += [label, next_label]
        next_label += 1
    if not split:
        return instances, set()
    out = head_first(volume, out, range(1, next_label))
    return out, {int(v) for label in split for v in np.unique(out[instances == label]) if v}


def _disc_plane(ras: np.ndarray, discs: list[np.ndarray], typical: float):
    """(point, normal) of the first detected disc well inside the piece, or None."""
    lo, hi = ras[:, 2].min() + 0.3 * typical, ras[:, 2].max() - 0.3 * typical
    for d, centre in enumerate(discs):
        if lo < centre[2] < hi:
            return centre, _spine_axis(discs, d)
    return None


def _waist(ras: np.ndarray, typical: float):
    """(point, normal) of the narrowest cross-section along the piece's long axis, at least 0.3 of a
    typical body from either end and narrower than WAIST of its typical cross-section; or None."""
    centre = ras.mean(0)
    axis = np.linalg.svd(ras - centre, full_matrices=False)[2][0]
    t = (ras - centre) @ axis
    counts, edges = np.histogram(t, np.arange(t.min(), t.max() + 1.0, 1.0))  # 1 mm bins
    area = ndimage.uniform_filter1d(counts.astype(float), 3)
    mids = (edges[:-1] + edges[1:]) / 2
    inner = np.nonzero((mids > t.min() + 0.3 * typical) & (mids < t.max() - 0.3 * typical))[0]
    if not len(inner):
        return None
    i = inner[np.argmin(area[inner])]
    if area[i] > WAIST * np.median(area[area > 0]):
        return None
    lo = hi = i  # the middle of the narrowest stretch (a bridge as long as the disc is high)
    while lo - 1 in inner and area[lo - 1] <= 1.1 * area[i]:
        lo -= 1
    while hi + 1 in inner and area[hi + 1] <= 1.1 * area[i]:
        hi += 1
    return centre + (mids[lo] + mids[hi]) / 2 * axis, axis


def heights_s(volume, labels: np.ndarray, values) -> list[float]:
    """The S coordinate (RAS, mm) of each labelled piece's centroid."""
    centres = ndimage.center_of_mass(labels > 0, labels, list(values))
    return [float(volume.ijk_to_ras_points(np.array(c[::-1])[None])[0][2]) for c in centres]


def names_from_sacrum(n: int) -> list[str]:
    """Head-first level names of n stacked lumbar-region bodies whose lowest is L5."""
    last = LEVELS.index("L5")
    return [LEVELS[last - n + 1 + i] for i in range(n)] if 0 < n <= last + 1 else []


def disc_names_from_bodies(disc_heights: list[float], body_heights: list[float],
                           scores: list[float]) -> list[str | None]:
    """Each disc named by the bodies below it (none below: L5-S1). Two detections between the same
    two bodies are one disc: the surer keeps the name, the other gets None (not reported)."""
    last = LEVELS.index("L5")
    names: list[str | None] = []
    for s in disc_heights:
        below = sum(1 for b in body_heights if b < s)
        names.append(disc_name(LEVELS[last - below]) if below <= last else None)
    for name in {n for n in names if n is not None and names.count(n) > 1}:
        twins = [i for i, n in enumerate(names) if n == name]
        best = max(twins, key=lambda i: scores[i])
        for i in twins:
            if i != best:
                names[i] = None
    return names


def fluid_sensitive(volume) -> bool | None:
    """True / False from the series' description or a user's flag; None when nothing says."""
    meta = volume.metadata
    if "mr_sequence" in meta:
        return meta["mr_sequence"].lower() in ("stir", "tirm", "t2fs", "pdfs")
    text = " ".join(str(meta.get(k, "")) for k in ("SeriesDescription", "SequenceName", "ScanOptions")).upper()
    if not text.strip():
        return None
    words = set(text.replace("-", " ").replace("_", " ").split())
    return bool(words & FLUID_WORDS) or any(phrase in text for phrase in FLUID_PHRASES)


def _oedema(volume, instances: np.ndarray, label: int, neighbours: list[int]) -> dict:
    inside = volume.voxels[instances == label]
    around = [float(np.median(volume.voxels[instances == n])) for n in neighbours]
    if not len(inside) or not around:
        return {"oedema": "not assessed (no measurable neighbour)"}
    ratio = float(np.median(inside)) / max(np.mean(around), 1e-6)
    return {"oedema_ratio": round(ratio, 3),
            "oedema": "likely recent (bone-marrow oedema)" if ratio >= OEDEMA_RATIO else "no oedema"}


def drop_sacrum(volume, instances: np.ndarray, disc_heights: list[float]) -> int:
    """A body below the lowest disc (L5-S1) is the top of the sacrum, not a lumbar body: removed.
    Returns how many bodies remain (relabelled 1..n head first)."""
    n = int(instances.max())
    if not disc_heights or n == 0:
        return n
    heights = heights_s(volume, instances, range(1, n + 1))
    keep = [i + 1 for i, h in enumerate(heights) if h > min(disc_heights)]
    lut = np.zeros(n + 1, instances.dtype)
    lut[keep] = np.arange(1, len(keep) + 1)
    instances[...] = lut[instances]
    return len(keep)


def not_graded(names: list[str], cut: set[int], graded_levels: list[str] | None) -> dict[int, str]:
    """Labels (1 = names[0]) not to measure, and why: bodies cut apart at a disc, and levels the
    segmenter never learned to outline (its training masks taught them as background)."""
    skip = {label: SPLIT_STATUS for label in cut if label <= len(names)}
    if graded_levels:
        why = (f"unmeasurable: the MR segmenter was trained to outline {graded_levels[0]}-{graded_levels[-1]} "
               "only (its outline of this level is unreliable: read it by eye)")
        skip.update({label: why for label, level in enumerate(names, start=1)
                     if level not in graded_levels and label not in skip})
    return skip


def _spine_axis(discs: list[np.ndarray], d: int) -> np.ndarray:
    """Unit vector towards the head at disc d of the head-first discs, from its neighbouring discs."""
    if len(discs) < 2:
        return np.array([0.0, 0.0, 1.0])
    above, below = discs[max(d - 1, 0)], discs[min(d + 1, len(discs) - 1)]
    axis = above - below
    return axis / max(float(np.linalg.norm(axis)), 1e-6)


def across_region(stack, roi: Roi, region_slices: tuple[int, int]) -> Roi:
    """The body's ROI reaching, across the patient, over the sagittal slices that show the lumbar
    region (a body is as wide as the region; only the central slices are segmented)."""
    centre = stack.from_ras(np.asarray(roi.center_ras)[None])[0]
    ends = stack.to_ras(np.array([region_slices[0] - 0.5, region_slices[1] + 0.5]),
                        np.full(2, centre[0]), np.full(2, centre[1]))
    axes = np.asarray(roi.axes_ras)
    half = np.asarray(roi.size_mm) / 2
    local = (ends - np.asarray(roi.center_ras)) @ axes.T  # the ends in the ROI's own axes
    lo, hi = np.minimum(-half, local.min(0)), np.maximum(half, local.max(0))
    centre_ras = np.asarray(roi.center_ras) + ((lo + hi) / 2) @ axes
    return Roi(np.round(centre_ras, 4).tolist(), np.round(hi - lo, 4).tolist(), roi.axes_ras)


def add_mr_bodies(volume, stack, class_maps, body_class: int, state: RunState, source: str,
                  disc_centres: list, min_grade: int = 2, graded_levels: list[str] | None = None,
                  region_slices: tuple[int, int] | None = None) -> tuple[list[Body], np.ndarray]:
    """Bodies, their rows and fracture findings into state; returns the bodies head first and
    their instance map on the volume grid (label = Body.instance, 1 = the highest).
    disc_centres: the RAS centre of each disc found (the lowest is L5-S1); graded_levels: the levels
    whose outlines the segmenter was trained on (the manifest's; None: all), the others not graded;
    region_slices: the first and last sagittal slice showing the lumbar region (the ROIs' width)."""
    instances, cut = split_run_together(volume, body_instances(volume, stack, class_maps, body_class), disc_centres)
    n = drop_sacrum(volume, instances, [float(c[2]) for c in disc_centres])
    names = names_from_sacrum(n)
    if not names:
        return [], instances
    objects = ndimage.find_objects(instances)
    rois = [roi_from_mask_slices(volume, o) for o in objects]
    heights = [float(r.extent_ras()[2]) for r in rois]
    if region_slices is not None:
        rois = [across_region(stack, r, region_slices) for r in rois]
    if np.median(heights) < MIN_LUMBAR_HEIGHT_MM:
        state.warnings.append(f"{source}: the bodies found are {np.median(heights):.0f} mm high, not lumbar: "
                              "cervical or thoracic MR is not supported by the lumbar model")
        return [], instances
    # Heights are sagittal measures: a slab that ends left or right of the bodies is still measurable.
    lr_axis = 2 - int(np.argmax(np.abs(volume.ijk_to_ras[0, :3]) / volume.spacing))
    rows = measure_labelmap(instances, volume.ijk_to_ras, dict(zip(range(1, n + 1), names)),
                            cut_axes=tuple(a for a in range(3) if a != lr_axis),
                            skip=not_graded(names, cut, graded_levels))
    by_label = {m.label: m for m in rows}
    fluid = fluid_sensitive(volume)
    bodies = []
    for label, (level, roi) in enumerate(zip(names, rois), start=1):
        m = by_label[label]
        row = VertebraRow.from_json({"method": "mask (MR segmentation)", "level_anchor": ANCHOR, **m.to_json(),
                                     "roi": roi.__dict__})
        body = Body(label, "vertebral body", roi, 0.0, row, level=level)
        if m.status == "measured" and (m.genant_grade or 0) >= min_grade:
            confidence = min(0.99, 0.5 + m.height_loss)
            body.label = m.type
            body.fracture_probability = confidence
            finding = Finding("fracture", m.type, confidence, roi, level=level, source=["morphometry"])
            finding.extra["morphometry"] = {k: row[k] for k in ("status", "heights_mm", "height_loss",
                                                               "genant_grade", "type", "keypoints_ras")}
            if fluid:
                finding.extra.update(_oedema(volume, instances, label, [x for x in (label - 1, label + 1)
                                                                       if 1 <= x <= n]))
            else:
                finding.extra["oedema"] = ("not assessed: not a fluid-sensitive series" if fluid is False
                                           else "not assessed: sequence unknown (pass --mr-sequence)")
            body.finding = finding
            state.findings.append(finding)
        state.vertebrae.append(row)
        bodies.append(body)
    state.bodies += bodies
    return bodies, instances
