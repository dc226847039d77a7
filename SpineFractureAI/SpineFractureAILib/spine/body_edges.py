"""A body mask's edges where they are less than half bone: the endplate rows (trim_to_endplates)
and the back columns (trim_back), on the straightened grid [u, d, l] of spine/bodies.py."""
from __future__ import annotations

import numpy as np

MIN_ENDPLATE_CONTRAST = 200.0  # HU between an endplate's peak and the disc: below it, no sure edge


def trim_back(mask: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """[u, d, l] mask without its back columns (toward the canal) that are less than half bone,
    judged per left-right position on each column's mean HU over its own rows (as trim_to_endplates
    judges rows; beyond the mask, over the body's rows there): the marrow's blur (MARROW_HU) reaches
    a millimetre or two behind a small cervical body's cortex, and morphometry's posterior keypoint
    then stood on those short halo columns (a false crush). Whole columns, not voxels: a voxel left
    at a corner stood apart in the mid-sagittal profile. Not the front: trimming a wedge's short
    front columns raised its anterior height (a grade-2 wedge read grade 1)."""
    inside = mask.astype(np.float32)
    rows = mask.any(1).astype(np.float32)  # [u, l]: the body's rows at each left-right position
    own = mask.sum(0)
    mean = np.where(own > 0, np.einsum("udl,udl->dl", inside, hu) / np.maximum(own, 1),
                    np.einsum("ul,udl->dl", rows, hu) / np.maximum(rows.sum(0), 1)[None])
    columns = mask.any(0)  # [d, l]; d runs from the canal forward
    trimmed = columns & ~trim_to_endplates(columns[:, :, None], mean[:, :, None])[:, :, 0]
    d = np.arange(len(columns))[:, None]
    middle = (np.argmax(columns, 0) + len(columns) - 1 - np.argmax(columns[::-1], 0)) / 2
    return mask & ~(trimmed & (d < middle[None]))[None]


def trim_to_endplates(mask: np.ndarray, hu: np.ndarray, reach: int = 4) -> np.ndarray:
    """[u, d, l] mask without the rows at each column's top and bottom that are less than half bone:
    darker than half-way between the endplate's peak (within `reach` rows of the edge) and the disc
    beyond it. BONE_HU takes in a row that is 80 % disc beside a 600 HU cortex, so a biconcave
    dimple came out a row or two shallower at each endplate (and a voxel deeper on thick slices)."""
    out = mask.copy()
    steps = np.arange(reach)[:, None, None]
    for view, values in ((out, hu), (out[::-1], hu[::-1])):  # top edges, then bottom edges
        has = view.any(0)
        first = np.argmax(view, 0)
        rows = np.clip(first[None] + steps, 0, len(values) - 1)
        inside = np.take_along_axis(view, rows, 0)
        near = np.where(inside, np.take_along_axis(values, rows, 0), -np.inf)
        peak = near.max(0)
        beyond = first[None] - steps[:3] - 1
        outside = np.where(beyond >= 0, np.take_along_axis(values, np.maximum(beyond, 0), 0), np.inf).min(0)
        ok = has & np.isfinite(outside) & (peak - outside >= MIN_ENDPLATE_CONTRAST)
        level = np.where(ok, (peak + np.where(ok, outside, 0.0)) / 2, np.inf)
        leading = np.argmax(near >= level[None], 0)  # rows before the first that is half bone
        u = np.arange(len(values))[:, None, None]
        view &= ~(ok[None] & (u >= first[None]) & (u < (first + leading)[None]))
    return out
