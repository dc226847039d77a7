"""The spine on a lateral film as a chain of bodies: what lies off the chain is not a vertebral body
(bowel gas, an iliac crest, a rib crossing), and the chain's spacing shows where a body is missing, so
levels are counted across the gap instead of shifting every name below it."""
from __future__ import annotations

import numpy as np

from ..levels import LEVELS

THORAX_RUN = 8  # levels above T12 (T4..T11) whose ribs must show for the anchor: the films' training range
LOCAL_GAPS = 7  # gaps compared with each other (a thoracolumbar film has about this many: one median)
OFF_CHAIN = 0.6  # x the median body width: farther from the line through its neighbours is off the spine


def on_chain(boxes: np.ndarray) -> np.ndarray:
    """Which boxes [N, 4] (top to bottom) sit on the spine: each is compared with the straight line
    through its neighbours (within three body heights); the worst outlier goes first, then again."""
    keep = np.ones(len(boxes), bool)
    if len(boxes) < 4:
        return keep
    cols, rows = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    width, height = np.median(boxes[:, 2] - boxes[:, 0]), np.median(boxes[:, 3] - boxes[:, 1])
    while keep.sum() >= 4:
        worst, worst_off = -1, OFF_CHAIN * width
        for i in np.flatnonzero(keep):
            near = keep & (np.abs(rows - rows[i]) <= 3 * height)
            near[i] = False
            if near.sum() < 2:
                continue
            slope, offset = np.polyfit(rows[near], cols[near], 1)
            off = abs(cols[i] - (slope * rows[i] + offset))
            if off > worst_off:
                worst, worst_off = i, off
        if worst < 0:
            break
        keep[worst] = False
    return keep


def level_steps(boxes: np.ndarray) -> list[int]:
    """Levels between consecutive bodies: 1, or more where the gap is a body's worth wider than usual
    there (the median of the LOCAL_GAPS nearest gaps: a cervical gap is half a lumbar one)."""
    rows = (boxes[:, 1] + boxes[:, 3]) / 2
    gaps = np.diff(rows)
    if len(gaps) < 2:
        return [1] * len(gaps)
    steps = []
    for i, gap in enumerate(gaps):
        start = int(np.clip(i - LOCAL_GAPS // 2, 0, max(len(gaps) - LOCAL_GAPS, 0)))
        usual = np.median(gaps[start:start + LOCAL_GAPS])
        steps.append(max(1, int(round(gap / usual))))
    return steps


def name_levels(rib_bearing: list[bool], steps: list[int] | None = None) -> tuple[list[str | None], str]:
    """Levels top to bottom from the lowest rib-bearing body (T12), when the ribs say so plainly: no
    rib-bearing body below it, and every body up to THORAX_RUN levels above it rib-bearing. Higher up
    (upper thorax, neck: short ribs, and a neck the models never saw) the class names nothing. Otherwise
    no level (uncertain). A body counted to S1 is the sacrum's top ("S1").
    steps: levels between consecutive bodies (level_steps); a missing body is counted across."""
    n = len(rib_bearing)
    steps = list(steps) if steps is not None else [1] * max(n - 1, 0)
    if not n or not any(rib_bearing) or all(rib_bearing):
        return [None] * n, "uncertain: no transition from rib-bearing to lumbar bodies in view"
    position = np.concatenate([[0], np.cumsum(steps)]).astype(int)
    last = max(i for i, r in enumerate(rib_bearing) if r)
    checked = [i for i in range(last) if position[last] - position[i] <= THORAX_RUN]
    if any(rib_bearing[last + 1:]) or not all(rib_bearing[i] for i in checked):
        return [None] * n, "uncertain: rib-bearing and lumbar bodies alternate"
    index = LEVELS.index("T12") + position - position[last]
    sacrum = LEVELS.index("S1")
    names = [LEVELS[i] if 0 <= i <= sacrum else None for i in index]
    how = "anchored on the lowest rib-bearing body (T12)"
    if len(checked) < last:
        how += f"; the {last - len(checked)} body(ies) above T{12 - THORAX_RUN} counted up from it"
    if any(s > 1 for s in steps):
        how += f"; counted across {sum(s - 1 for s in steps)} missing body(ies) (wide gaps)"
    return names, how
