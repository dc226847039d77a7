"""Discs along the straightened spine, found without a model (spine/bodies.py cuts the bodies between them).

Discs are found where the bone just in front of the canal dips between two endplate peaks a few
millimetres apart (this holds for dense and for osteoporotic bone, whose marrow may be darker than
the disc) and the body's front wall breaks; a chain of discs with smoothly changing spacing is kept
(a dip inside a body is spaced irregularly). Each disc's plane may tilt against the canal's rows."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .straighten import SpineFrame

CORE_D_MM = (8.0, 30.0)  # in front of the canal centre: the back half of any body
CORE_L_MM = 6.0
ENDPLATE_REACH_MM = 6  # an endplate lies within this distance of its disc's middle
MIN_DIP_HU = 30.0
SPACING_MM = (8, 55)  # disc to disc: a cervical body and disc to a sacrum-sized lumbar one
# Closer than this only a crushed body (vertebra plana) lies between two discs, each a thin band
# between endplates at most NARROW_DISC_MM apart. Two dips this close whose endplates lie further
# apart are the middles of one small body and of its neighbour (cancellous bone between two
# endplates dips like a disc when coarse voxels across the spine blur the cortex).
SHORT_SPACING_MM = 12
NARROW_DISC_MM = 8
IRREGULARITY = 1.5  # cost of log(spacing ratio)^2 between neighbouring bodies
WEAK_DISC = 0.25  # a dip under this fraction of the typical dip costs more than it brings
MAX_WALL_GAP = 0.7  # (front wall at a disc - soft tissue) / (the wall above and below - soft tissue)
SOFT_HU = 40.0
BONE_HU = 150.0  # cortex and dense marrow; the ring is filled, so dark marrow still counts
DISC_D_MM = 19.0  # where a disc's plane is anchored: the middle of CORE_D_MM
MAX_DISC_TILT = 0.6  # rows per mm: ~31 degrees against the canal's rows
DISC_REACH_ROWS = 10  # a disc's plane lies within this many rows of its dip (tilt over a lumbar body's depth)
TUBE_RUN_MM = 90  # unbroken along the canal for longer than two bodies and a disc: a vessel


def endplate_profile(straight: np.ndarray, frame: SpineFrame) -> tuple[np.ndarray, np.ndarray]:
    """(profile, valid): per row, the 80th percentile of HU in the back half of the body (endplates
    and cortex lift it); rows reaching outside the scan are invalid."""
    d_in = (frame.d_mm >= CORE_D_MM[0]) & (frame.d_mm <= CORE_D_MM[1])
    core = straight[:, d_in][:, :, np.abs(frame.l_mm) <= CORE_L_MM].reshape(len(straight), -1)
    valid = (core > -1000).all(1)
    p = np.percentile(core, 80, axis=1)
    fill = float(np.median(p[valid])) if valid.any() else 0.0
    return ndimage.gaussian_filter1d(np.where(valid, p, fill), 1.0), valid


def disc_dips(profile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row: how far it lies below the lower of the brightest rows within ENDPLATE_REACH_MM
    above and below (an endplate on each side); -inf where the window leaves the scan."""
    w, n = ENDPLATE_REACH_MM, len(profile)
    dip = np.full(n, -np.inf)
    for u in range(w, n - w):
        if valid[u - w:u + w + 1].all():
            dip[u] = min(profile[u - w:u].max(), profile[u + 1:u + w + 1].max()) - profile[u]
    return dip


def front_wall_gap(straight: np.ndarray, frame: SpineFrame) -> np.ndarray:
    """Per row: the body's front cortex there against the same cortex 6-14 mm above and below. The
    front wall runs unbroken down a body and stops at each disc (ratio well under 1); a dip in the
    middle of a body (thick slices blur the endplates into bands) keeps its wall (ratio ~1)."""
    mid = straight[:, :, np.abs(frame.l_mm) <= 3].mean(2)
    # bone that runs on unbroken for longer than any body and its discs is no body's front wall: a
    # contrast-filled aorta or vena cava lying on the bodies (else it hides every disc's break)
    mid = np.where(long_runs(mid > BONE_HU, TUBE_RUN_MM), SOFT_HU, mid)
    front = np.full(len(mid), np.nan)
    for u, row in enumerate(mid):
        hits = np.flatnonzero((row > BONE_HU) & (frame.d_mm > 0) & (frame.d_mm < 70))
        if len(hits):
            front[u] = frame.d_mm[hits[-1]]
    if np.isnan(front).all():
        return np.ones(len(mid))
    front = ndimage.median_filter(np.where(np.isnan(front), np.nanmedian(front), front), 31, mode="nearest")
    wall = np.array([mid[u][(frame.d_mm >= front[u] - 8) & (frame.d_mm <= front[u] + 3)].max()
                     for u in range(len(mid))])
    gap = np.ones(len(mid))
    for u in range(len(mid)):
        near = wall[max(0, u - 2):u + 3].min()
        around = np.r_[wall[max(0, u - 14):max(0, u - 5)], wall[u + 6:u + 15]]
        if len(around):
            gap[u] = (near - SOFT_HU) / max(np.median(around) - SOFT_HU, 1.0)
    return gap


def long_runs(bright: np.ndarray, length: int) -> np.ndarray:
    """[u, d] pixels in a run of `length` rows or more of bright pixels along u (axis 0)."""
    labels, count = ndimage.label(bright, structure=np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]]))
    if not count:
        return np.zeros_like(bright)
    runs = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    return np.r_[False, runs >= length][labels]


def endplate_spread(profile: np.ndarray) -> np.ndarray:
    """Per row: mm between the brightest rows within ENDPLATE_REACH_MM above and below it (the two
    endplates around a disc; around a body's middle, that body's own endplates)."""
    w, n = ENDPLATE_REACH_MM, len(profile)
    spread = np.full(n, np.inf)
    for u in range(w, n - w):
        spread[u] = (u + 1 + np.argmax(profile[u + 1:u + w + 1])) - (u - w + np.argmax(profile[u - w:u]))
    return spread


def _darkest(profile: np.ndarray, gap: np.ndarray, u: int, reach: int = 3) -> int:
    """The darkest row near u where the front wall breaks (a disc's middle)."""
    rows = np.arange(max(u - reach, 0), min(u + reach + 1, len(profile)))
    rows = rows[gap[rows] <= MAX_WALL_GAP]
    return int(rows[np.argmin(profile[rows])])


def choose_discs(dip: np.ndarray, gap: np.ndarray, spread: np.ndarray, profile: np.ndarray | None = None) -> list[int]:
    """The chain of dips where the front wall breaks, whose spacing changes smoothly (dynamic
    programming over pairs of discs); spread: endplate_spread, which lets two discs lie closer than
    SHORT_SPACING_MM; profile: endplate_profile, to place a dip that peaks past the break."""
    # A faint neck disc's dip can peak a row or two past the wall's break (disc_dips' window below
    # reaches the next endplate): its peak among the break's rows counts, placed at its darkest row.
    # Where the wall breaks clearly a shallower dip will do (a thin disc on ~2.6 mm slices; on 2.9 mm
    # slices a thoracic disc between two endplates blurred into one band dipped 13 HU where the wall
    # broke to 0.2, and two bodies were taken for one: seed 980006's T5-T6).
    breaks = np.where(gap <= MAX_WALL_GAP, dip, -np.inf)
    least = MIN_DIP_HU * np.clip(gap / MAX_WALL_GAP, 0.25, 1.0)
    cands = [u for u in range(1, len(dip) - 1) if breaks[u] >= least[u] and breaks[u] >= breaks[u - 1]
             and breaks[u] >= breaks[u + 1]]
    if profile is not None:
        cands = sorted({u if dip[u] >= max(dip[u - 1], dip[u + 1]) else _darkest(profile, gap, u) for u in cands})
    if not cands:
        return []
    strong = sorted(dip[cands])[-max(1, len(cands) // 2):]
    typical = float(np.median(strong))
    # a faint dip where the front wall clearly breaks is still a disc (thin thoracic discs)
    gain = [min(dip[u] / typical, 1.5) + (MAX_WALL_GAP - gap[u]) - WEAK_DISC for u in cands]
    best: dict = {}  # (previous, last) -> (score, key before)
    for j in range(len(cands)):
        best[(None, j)] = (gain[j], None)
        for i in range(j):
            spacing = cands[j] - cands[i]
            if not SPACING_MM[0] <= spacing <= SPACING_MM[1]:
                continue
            if spacing < SHORT_SPACING_MM and max(spread[cands[i]], spread[cands[j]]) > NARROW_DISC_MM:
                continue
            options = [(best[(None, i)][0] + gain[j], (None, i))]
            for h in range(i):
                if (h, i) in best:
                    ratio = np.log(spacing / (cands[i] - cands[h]))
                    options.append((best[(h, i)][0] + gain[j] - IRREGULARITY * ratio ** 2, (h, i)))
            best[(i, j)] = max(options, key=lambda o: o[0])
    key = max(best, key=lambda k: best[k][0])
    chosen = []
    while key is not None:
        chosen.append(cands[key[1]])
        key = best[key][1]
    return chosen[::-1]


def disc_line(straight: np.ndarray, frame: SpineFrame, u0: int, reach: int = DISC_REACH_ROWS) -> tuple[float, float]:
    """(row at d = DISC_D_MM, rows per mm in front): the disc's plane on the midline. In lordosis
    the discs are wedges and tilt against the canal's rows (L5-S1 by up to ~30 degrees), so a body
    cut at a row would lose its front. reach: how far (rows) from u0 each column's darkest row may
    lie; no further than half-way to the next disc, or a small body's marrow between its endplates
    is darker than its faint disc and tilts the line (the top of C3 cut off behind, a false crush)."""
    mid = ndimage.gaussian_filter1d(straight[:, :, np.abs(frame.l_mm) <= CORE_L_MM].mean(2), 1.0, axis=0)
    points = []
    for col in np.flatnonzero((frame.d_mm >= CORE_D_MM[0]) & (frame.d_mm <= 60)):
        lo, hi = u0 - reach, u0 + reach + 1
        if lo < 0 or hi > len(mid) or (mid[lo:hi, col] < -500).any():
            continue
        seg = mid[lo:hi, col]
        k = int(np.argmin(seg))
        if 2 <= k <= len(seg) - 3 and min(seg[:k].max(), seg[k + 1:].max()) - seg[k] > 40.0:
            points.append((frame.d_mm[col], lo + k))
    if len(points) < 5:
        return float(u0), 0.0
    d, u = np.array(points, float).T
    keep = np.ones(len(d), bool)
    for _ in range(2):  # drop the odd column whose minimum is in a body, not the disc
        slope, at = np.polyfit(d[keep] - DISC_D_MM, u[keep], 1)
        keep = np.abs(u - (at + slope * (d - DISC_D_MM))) <= 3.0
        if keep.sum() < 5:
            return float(u0), 0.0
    return float(u0), float(np.clip(slope, -MAX_DISC_TILT, MAX_DISC_TILT))


def half_way(discs: list[int], n: int) -> int:
    """Rows from disc n half-way to its nearest chosen neighbour (at most DISC_REACH_ROWS)."""
    gaps = [abs(discs[n] - discs[m]) for m in (n - 1, n + 1) if 0 <= m < len(discs)]
    return int(np.clip(min(gaps) // 2 if gaps else DISC_REACH_ROWS, 4, DISC_REACH_ROWS))
