"""Which of the bodies found along the canal bear ribs: bone beside the spine on both sides, further
out than any lumbar transverse process reaches, at the height of the body's upper half and the
disc above it (where a rib's head and neck sit). In most people the last rib-bearing vertebra is
T12: an anchor for the count where the sacrum is not in the scan, and a check where it is (11 or
13 rib pairs and a sixth lumbar vertebra make the two disagree)."""
from __future__ import annotations

import numpy as np

from .bodies import FoundBody, SpineBodies
from .straighten import in_grid, sample_hu, straightened_ijk

RIB_L_MM = (55.0, 85.0)  # lateral of the canal: past the longest lumbar transverse process (L3, ~50 mm)
RIB_D_MM = (-45.0, 15.0)  # from behind the canal (the rib's angle) to just in front of it
RIB_HU = 250.0  # a rib's cortex and marrow
MIN_RIB_MM2 = 40.0  # bone per side in one cross-section: a rib's neck or angle, not a stray voxel
# A kidney with contrast (120-250 HU) in noise puts a third of its voxels over RIB_HU, enough to
# make L1 "rib-bearing" and every name one level off; a rib has a cortex well above that, a kidney
# almost no voxel over CORTEX_HU (seed 950006: ribs ~300 mm² per side, the kidney none).
CORTEX_HU = 400.0
MIN_CORTEX_MM2 = 15.0
ABOVE_MM = 6.0  # the disc above: a rib head articulates across it
# A rib is ~9-15 mm high where it leaves the spine (sampled every mm, on any slice thickness);
# what meets both areas on one or two rows only is no rib (seed 990006: one row at the T12-L1 disc,
# 31 mm² over CORTEX_HU beside L1 on both sides, made L1 rib-bearing and every name one level off).
MIN_RIB_ROWS = 3


def _rib_rows(volume, frame, rows: np.ndarray, sign: float) -> np.ndarray | None:
    """Per straightened row, whether the rib test's window on one side (sign: +1 or -1) holds rib
    bone and cortex; None where the window lies mostly outside the scan (cannot tell)."""
    d = np.arange(RIB_D_MM[0], RIB_D_MM[1] + 1e-6, 1.0)
    ls = np.arange(RIB_L_MM[0], RIB_L_MM[1] + 1e-6, 1.0)
    uu, dd, ll = np.meshgrid(rows, d, sign * ls, indexing="ij")
    ijk = straightened_ijk(volume, frame, uu, dd, ll)
    if in_grid(volume, ijk).mean() < 0.25:
        return None
    hu = sample_hu(volume, ijk).reshape(uu.shape)
    bone_mm2 = (hu > RIB_HU).sum((1, 2))  # 1 mm x 1 mm samples per row
    cortex_mm2 = (hu > CORTEX_HU).sum((1, 2))
    return (bone_mm2 >= MIN_RIB_MM2) & (cortex_mm2 >= MIN_CORTEX_MM2)


def rib_bearing(volume, bodies: SpineBodies, blocks: list[FoundBody] | None = None) -> list[bool | None]:
    """Per body (head first; or per one of `blocks`, such as the sacrum): True with rib bone on both
    sides, False with none on either or one side only, None where the sides lie (mostly) outside
    the scan."""
    out: list[bool | None] = []
    for body in bodies.bodies if blocks is None else blocks:
        rows = np.arange(max(body.top_u - ABOVE_MM, 0.0), (body.top_u + body.bottom_u) / 2 + 1e-6, 1.0)
        sides = [_rib_rows(volume, bodies.frame, rows, sign) for sign in (1.0, -1.0)]
        unknown = any(side is None for side in sides)
        out.append(None if unknown else all(int(side.sum()) >= MIN_RIB_ROWS for side in sides))
    return out


CREST_GAP_ROWS = 3  # a thin wing read under the thresholds for a row or two is still one crest
CREST_END_ROWS = 15  # the wings go on below the crest: a run that stops this far above the end is none


def crest_top_u(volume, bodies: SpineBodies, from_body: int) -> float | None:
    """Where the iliac crests begin: the highest row (straightened u, 1 mm rows) of the run of rows
    with rib-test bone on both sides that reaches furthest down, searched from body `from_body`'s
    top to the last body's bottom; None without such a run of MIN_RIB_ROWS rows that goes on to
    the end (within CREST_END_ROWS). The posterior crest lies in the rib test's window a few mm
    under the crest's highest point."""
    rows = np.arange(bodies.bodies[from_body].top_u, bodies.bodies[-1].bottom_u + 1e-6, 1.0)
    sides = [_rib_rows(volume, bodies.frame, rows, sign) for sign in (1.0, -1.0)]
    if any(side is None for side in sides):
        return None
    lit = sides[0] & sides[1]
    at = np.flatnonzero(lit)
    if not len(at):
        return None
    first = len(at) - 1  # walk up the lowest run, over short gaps
    while first > 0 and at[first] - at[first - 1] <= CREST_GAP_ROWS:
        first -= 1
    if at[-1] - at[first] + 1 < MIN_RIB_ROWS or at[-1] < len(rows) - 1 - CREST_END_ROWS:
        return None
    return float(rows[at[first]])
