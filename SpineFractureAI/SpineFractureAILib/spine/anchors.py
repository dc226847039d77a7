"""Names for the bodies found along the canal, counted from an anchor that is in the scan.

The sacrum (the block below the last disc whose alae spread sideways) is the anchor used: the body
above it is L5 and the count goes up. Without it the names are a best guess from the bodies'
spacing against typical adult sizes, and every name says "uncertain (±1)" (and more, really:
without an anchor no one can name a short stretch for sure). A sixth lumbar or a lumbarised S1
shifts every name by one: the count cannot see it, and the rows say which anchor was used so a
reader can check it against the ribs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..levels import LEVELS, level_index
from .bodies import SpineBodies

BODY_LEVELS = LEVELS[1:-1]  # C2..L5
# Typical adult body height + disc height (mm) at C2, C7, T1, T12, L1, L5 (interpolated between):
# Gilad & Nissan 1986, Panjabi et al. 1991/1992, Zhou et al. 2000.
_SPACING_KNOTS = [(1, 19.0), (6, 19.5), (7, 20.5), (18, 31.0), (19, 34.0), (21, 38.0), (23, 38.0)]
FIT_TOLERANCE = 0.006  # per measured body: about an 8 % spacing error
REGION_MIDDLES = ("C4", "T7", "L3")


def typical_spacing(name: str) -> float:
    xs, ys = zip(*_SPACING_KNOTS)
    return float(np.interp(level_index(name), xs, ys))


@dataclass
class Naming:
    names: list[str | None]  # per body, head first; "C1" marks a piece of the atlas above C2
    anchor: str  # "sacrum" | "none"
    uncertain: bool
    plausible: list[tuple[str, str]] | None = None  # without an anchor: per body, the levels its spacing allows

    def row_fields(self) -> dict:
        return {"level_anchor": self.anchor,
                "level_certainty": "uncertain (±1)" if self.uncertain else "counted from the anchor"}


def name_bodies(found: SpineBodies) -> Naming:
    n = len(found.bodies)
    if not n:
        return Naming([], "none", True)
    if found.sacrum is not None:
        last = level_index("L5")
        names = [LEVELS[last - (n - 1 - k)] if last - (n - 1 - k) >= 0 else None for k in range(n)]
        return Naming(names, "sacrum", False)
    names, plausible = guess_from_spacing(found)
    return Naming(names, "none", True, plausible)


def guess_from_spacing(found: SpineBodies) -> tuple[list[str], list[tuple[str, str]]]:
    """Spacing tells the region (cervical, thoracic, lumbar), not the level within it: adult
    lumbar spacings vary by ±15 % between people while L2-L4 differ by a few percent. So among the
    placements that fit the measured disc-to-disc spacings about as well as the best one, the run
    is centred on the middle of its region (C4, T7, L3): a prior, flagged uncertain. Also returns,
    per body, the first and last level those placements allow."""
    n = len(found.bodies)
    discs = set(found.discs_u)
    measured = [(k, b.bottom_u - b.top_u) for k, b in enumerate(found.bodies)
                if b.top_u in discs and b.bottom_u in discs]  # a disc above and below: a whole spacing
    costs = []
    for first in range(len(BODY_LEVELS) - n + 1):
        costs.append(sum(np.log(s / typical_spacing(BODY_LEVELS[first + k])) ** 2 for k, s in measured))
    costs = np.array(costs)
    near = np.flatnonzero(costs <= costs.min() + FIT_TOLERANCE * max(1, len(measured)))

    def off_centre(first: int) -> float:
        middle = level_index(BODY_LEVELS[first]) + (n - 1) / 2
        region = min(REGION_MIDDLES, key=lambda name: abs(level_index(name) - middle))
        return abs(middle - level_index(region))

    best = min(near, key=lambda first: (off_centre(first), costs[first]))
    plausible = [(BODY_LEVELS[near.min() + k], BODY_LEVELS[near.max() + k]) for k in range(n)]
    return BODY_LEVELS[best:best + n], plausible
