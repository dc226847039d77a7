"""The spine on a lateral film as a chain of bodies: what lies off the chain is not a vertebral body
(bowel gas, an iliac crest, a rib crossing), and the chain's spacing shows where a body is missing, so
levels are counted across the gap instead of shifting every name below it."""
from __future__ import annotations

import numpy as np

from ..levels import LEVELS

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
    """Levels between consecutive bodies: 1, or more where the gap is a body's worth wider than usual."""
    rows = (boxes[:, 1] + boxes[:, 3]) / 2
    gaps = np.diff(rows)
    if len(gaps) < 2:
        return [1] * len(gaps)
    usual = np.median(gaps)
    return [max(1, int(round(g / usual))) for g in gaps]


def name_levels(rib_bearing: list[bool], steps: list[int] | None = None) -> tuple[list[str | None], str]:
    """Levels top to bottom from the lowest rib-bearing body (T12), when the ribs say so plainly:
    rib-bearing bodies above, none below, at least one of each. Otherwise no level (uncertain).
    steps: levels between consecutive bodies (level_steps); a missing body is counted across."""
    n = len(rib_bearing)
    steps = list(steps) if steps is not None else [1] * max(n - 1, 0)
    if not n or not any(rib_bearing) or all(rib_bearing):
        return [None] * n, "uncertain: no transition from rib-bearing to lumbar bodies in view"
    last = max(i for i, r in enumerate(rib_bearing) if r)
    if not all(rib_bearing[:last + 1]) or any(rib_bearing[last + 1:]):
        return [None] * n, "uncertain: rib-bearing and lumbar bodies alternate"
    position = np.concatenate([[0], np.cumsum(steps)]).astype(int)
    index = LEVELS.index("T12") + position - position[last]
    names = [LEVELS[i] if 0 <= i < LEVELS.index("S1") else None for i in index]
    how = "anchored on the lowest rib-bearing body (T12)"
    if any(s > 1 for s in steps):
        how += f"; counted across {sum(s - 1 for s in steps)} missing body(ies) (wide gaps)"
    return names, how
