"""Discs the detector missed, placed in the gap between two consecutive vertebral bodies: there is
always a disc there. The detector learned the lumbar discs inside the lumbar region's crop, so it
misses T11-T12 (above the crop) and thin, dark degenerate discs; the bodies show where they are."""
from __future__ import annotations

import numpy as np

from .levels import disc_name
from .lumbar_crops import gap_box
from .run_state import Body
from .slice_tracks import Track
from .slicing import SliceStack, sample_labels
from .volume import Volume

PLACED = "between the bodies above and below (the disc detector missed it)"
MAX_GAP = 0.6  # a "gap" higher than this share of the bodies' median height hides a missed body


def missing_discs(bodies: list[Body], named: list[str | None]) -> list[Body]:
    """The upper body of each consecutive pair whose disc is not among the detected ones' names."""
    return [upper for upper, lower in zip(bodies, bodies[1:])
            if upper.level and lower.level and disc_name(upper.level) not in named]


def gap_tracks(volume: Volume, stack: SliceStack, instances: np.ndarray, uppers: list[Body],
               analysed: list[int]) -> list[tuple[str, Track]]:
    """(disc name, track of its 2D boxes on the analysed slices) for the disc below each body in
    uppers (head-first instances: the next label is the body below). A pair whose gap is missing on
    every slice, or taller than MAX_GAP of a body, gives nothing."""
    if not uppers:
        return []
    per_slice = sample_labels(Volume(instances, volume.ijk_to_ras, volume.modality), stack, analysed)
    rows = [np.nonzero(per_slice == b.instance)[1] for b in uppers]  # each body's rows on the slices
    heights = [np.ptp(r) + 1 for r in rows if len(r)]
    if not heights:
        return []
    tallest = MAX_GAP * float(np.median(heights))
    out = []
    for upper in uppers:
        members = []
        for s, labels in zip(analysed, per_slice):
            box = gap_box(labels == upper.instance, labels == upper.instance + 1)
            if box is not None and 1 <= box[3] - box[1] <= tallest:
                members.append((s, box, 0, 0.0, None, None))
        if members:
            out.append((disc_name(upper.level), Track(members)))
    return out
