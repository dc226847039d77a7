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
from .results import Finding, VertebraRow
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
# A piece this much higher than the median body, with a detected disc inside it, is two bodies the
# segmenter ran together across that disc (seen on volunteer exams: L4 and L5 as one 60 mm piece).
MERGED_HEIGHT = 1.5
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


def split_at_discs(volume, instances: np.ndarray, disc_centres: list) -> tuple[np.ndarray, set[int]]:
    """Cut a piece that is two bodies run together across a detected disc along that disc's plane
    (normal: the spine's direction there, from the neighbouring discs), so that the count and the
    names stay right. Returns the instances relabelled head first and the labels of cut bodies
    (a cut is no endplate: they are not measured)."""
    n = int(instances.max())
    if n < 2 or not len(disc_centres):
        return instances, set()
    discs = sorted((np.asarray(c, float) for c in disc_centres), key=lambda c: -c[2])
    objects = ndimage.find_objects(instances)
    extents = [roi_from_mask_slices(volume, o).extent_ras()[2] for o in objects]
    typical = float(np.median(extents))
    out, next_label, split = instances.copy(), n + 1, []
    for label, (obj, extent) in enumerate(zip(objects, extents), start=1):
        if extent < MERGED_HEIGHT * typical:
            continue
        ijk = np.argwhere(instances[obj] == label) + [s.start for s in obj]  # (k, j, i)
        ras = volume.ijk_to_ras_points(ijk[:, ::-1])
        lo, hi = ras[:, 2].min() + 0.3 * typical, ras[:, 2].max() - 0.3 * typical
        for d, centre in enumerate(discs):
            if not lo < centre[2] < hi:
                continue
            below = (ras - centre) @ _spine_axis(discs, d) < 0
            if below.any() and (~below).any():
                out[tuple(ijk[below].T)] = next_label
                split.append(label)
                next_label += 1
            break  # one cut per piece: a third body would need a second disc inside the lower part
    if not split:
        return instances, set()
    out = head_first(volume, out, range(1, next_label))
    return out, {int(v) for label in split for v in np.unique(out[instances == label]) if v}


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


def add_mr_bodies(volume, stack, class_maps, body_class: int, state: RunState, source: str,
                  disc_centres: list, min_grade: int = 2, graded_levels: list[str] | None = None) -> list[Body]:
    """Bodies, their rows and fracture findings into state; returns the bodies head first.
    disc_centres: the RAS centre of each disc found (the lowest is L5-S1); graded_levels: the levels
    whose outlines the segmenter was trained on (the manifest's; None: all), the others not graded."""
    instances, cut = split_at_discs(volume, body_instances(volume, stack, class_maps, body_class), disc_centres)
    n = drop_sacrum(volume, instances, [float(c[2]) for c in disc_centres])
    names = names_from_sacrum(n)
    if not names:
        return []
    objects = ndimage.find_objects(instances)
    rois = [roi_from_mask_slices(volume, o) for o in objects]
    heights = [float(r.extent_ras()[2]) for r in rois]
    if np.median(heights) < MIN_LUMBAR_HEIGHT_MM:
        state.warnings.append(f"{source}: the bodies found are {np.median(heights):.0f} mm high, not lumbar: "
                              "cervical or thoracic MR is not supported by the lumbar model")
        return []
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
    return bodies
