"""Morphometry of every vertebra in a labelmap: naming, body isolation, neighbours, grading."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .levels import TOTALSEG_NAME, VERSE_NAME
from .morphometry import BodySampler, ImageSampler, Measurement, grade_chain, measure_body

CUT_AREA_MM2 = 80.0  # of a body on the grid's faces: cut by the field of view (a lumbar section is ~1200)
NOT_A_BODY = {"C1": "C1 (atlas) has no vertebral body", "S1": "the sacrum is not a vertebral body"}


def name_labels(labelmap: np.ndarray, ijk_to_ras: np.ndarray, scheme: str) -> dict[int, str]:
    """label value -> level name for the vertebrae in a labelmap."""
    values = [int(v) for v in np.unique(labelmap) if v != 0]
    if scheme == "verse":
        return {v: ("S1" if v == 26 else VERSE_NAME[v]) for v in values if v in VERSE_NAME or v == 26}
    if scheme == "totalsegmentator":
        return {v: TOTALSEG_NAME[v] for v in values if v in TOTALSEG_NAME}
    if scheme == "sequential":  # one vertebra per value, named by position from the top
        centroids = ndimage.center_of_mass(np.ones_like(labelmap), labelmap, values)
        s = [(np.array(c[::-1]) @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3])[2] for c in centroids]
        order = np.argsort(s)[::-1]
        return {values[i]: f"#{n + 1} from top" for n, i in enumerate(order)}
    raise ValueError(f"unknown label scheme {scheme!r} (verse, totalsegmentator or sequential)")


def isolate_body(mask: np.ndarray, spacing: np.ndarray, radius_mm: float = 4.0) -> np.ndarray:
    """Drop thin posterior elements: an opening removes pedicles and processes, the largest
    remaining blob is the body, grown back inside the original mask."""
    r = np.maximum(np.rint(radius_mm / spacing[::-1]).astype(int), 1)
    # Erosion and dilation by the ellipsoid {(dz/rz)^2 + (dy/ry)^2 + (dx/rx)^2 <= 1} as distance
    # transforms in that metric: the same sets as with the structuring element, in linear time.
    sampling = 1.0 / r
    padded = np.pad(mask, 1)  # outside the box is background, as binary_erosion's border
    eroded = ndimage.distance_transform_edt(padded, sampling=sampling) > 1 + 1e-9
    opened = (ndimage.distance_transform_edt(~eroded, sampling=sampling) <= 1 + 1e-9)[1:-1, 1:-1, 1:-1]
    parts, n = ndimage.label(opened)
    if n == 0:
        return mask
    sizes = ndimage.sum(opened, parts, range(1, n + 1))
    body = np.pad(parts == (int(np.argmax(sizes)) + 1), 1)
    return (ndimage.distance_transform_edt(~body, sampling=sampling) <= 1 + 1e-9)[1:-1, 1:-1, 1:-1] & mask


def _cut_area_mm2(labelmap: np.ndarray, value: int, box: tuple, spacing_kji: np.ndarray, axes) -> float:
    """How much of a body lies flat on the grid's faces: a body cut by the scan shows its whole
    cross-section there, one whose cortex just grazes a tight crop a thin line."""
    area = 0.0
    for a in axes:
        others = float(np.prod(np.delete(spacing_kji, a)))
        for index in {0, labelmap.shape[a] - 1} & {box[a].start, box[a].stop - 1}:
            area += float((labelmap.take(index, axis=a) == value).sum()) * others
    return area


def measure_labelmap(labelmap: np.ndarray, ijk_to_ras: np.ndarray, names: dict[int, str],
                     whole_vertebrae: bool = False, ct_image: np.ndarray | None = None,
                     cut_axes: tuple[int, ...] = (0, 1, 2),
                     skip: dict[int, str] | None = None) -> list[Measurement]:
    """Measure each named vertebra; whole_vertebrae=True when labels include the posterior elements;
    ct_image (same grid, HU) refines the endplates to below a voxel; cut_axes: the array axes along
    which touching the grid's edge makes a body unmeasurable (a sagittal MR slab leaves out the
    left-right one: heights are sagittal measures); skip: labels not to measure, with the status their
    rows get (nor are they a neighbour's reference)."""
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    objects = ndimage.find_objects(labelmap)
    entries = []
    for value, level in names.items():
        if level in NOT_A_BODY:
            entries.append((value, level, None, f"excluded: {NOT_A_BODY[level]}", objects[value - 1]))
            continue
        box = objects[value - 1]
        if box is None:
            continue
        if skip and value in skip:
            entries.append((value, level, None, skip[value], box))
            continue
        if _cut_area_mm2(labelmap, value, box, spacing[::-1], cut_axes) > CUT_AREA_MM2:
            entries.append((value, level, None, "unmeasurable: cut by the field of view", box))
            continue
        grown = tuple(slice(max(b.start - 3, 0), b.stop + 3) for b in box)
        mask = labelmap[grown] == value  # each body on its own small box of the grid
        mask = isolate_body(mask, spacing) if whole_vertebrae else mask
        origin = (grown[2].start, grown[1].start, grown[0].start)
        entries.append((value, level, BodySampler(mask, ijk_to_ras, origin), None, box))
    # top-down order by centroid height, so neighbours are anatomical neighbours
    def height(entry):
        if entry[2] is None:
            box = entry[4]
            k = np.array(ndimage.center_of_mass(labelmap[box] == entry[0])) + [b.start for b in box]
            return (k[::-1] @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3])[2]
        return float(np.median(entry[2].points[:, 2]))
    entries.sort(key=height, reverse=True)
    centroids = [np.median(e[2].points, 0) if e[2] is not None else None for e in entries]
    results: list[Measurement] = []
    for n, (value, level, sampler, status, _) in enumerate(entries):
        if sampler is None:
            results.append(Measurement(level, value, status))
            continue
        above = next((centroids[i] for i in range(n - 1, -1, -1) if centroids[i] is not None and i == n - 1), None)
        below = next((centroids[i] for i in range(n + 1, len(entries)) if centroids[i] is not None and i == n + 1), None)
        if above is not None and below is not None:
            hint, sigma = above - below, 1.5  # the chord between neighbours: the local spine tangent
        elif above is not None:
            hint, sigma = above - centroids[n], 6.0
        elif below is not None:
            hint, sigma = centroids[n] - below, 6.0
        else:
            hint, sigma = np.array([0.0, 0.0, 1.0]), 30.0
        try:
            image = ImageSampler(ct_image, ijk_to_ras, sampler) if ct_image is not None else None
            results.append(measure_body(sampler, hint, level, value, sigma, image))
        except (ValueError, IndexError, FloatingPointError, np.linalg.LinAlgError) as err:
            # A mask too small or odd to measure must not stop the analysis of the rest.
            results.append(Measurement(level, value, f"unmeasurable: {err}"))
    grade_chain(results)
    return results
