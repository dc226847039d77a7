"""Bodies and findings checked against the spinal canal: a vertebral body lies in front of the canal
(4-60 mm anterior, within ~22 mm left-right of it). A spinous process lies behind it, the pelvis,
the arms and the table far to the side or behind: none of them may become a body, a level or a
fracture. Where the canal chain does not reach (the scan's ends, a canal not seen) nothing is
decided."""
from __future__ import annotations

import numpy as np

from .canal import CanalChain

AHEAD_MM = (4.0, 60.0)
BESIDE_MM = 22.0
# Beyond the chain's ends the spine goes on, but it may curve: the nearest end, with more slack,
# still rules out what lies far to the side or behind (a femoral head, an arm, the table).
BEYOND_MM = np.inf  # a spine does not wander 45 mm sideways, however far the chain ends
BEYOND_AHEAD_MM, BEYOND_BESIDE_MM = (-15.0, 80.0), 45.0


def off_chain(centres_ras, chain: CanalChain | None) -> list[bool | None]:
    """Per centre: True when it cannot be a vertebral body of this spine, False when it fits,
    None where the canal chain is absent or too far above or below to say."""
    out: list[bool | None] = []
    for centre in np.asarray(centres_ras, float).reshape(-1, 3):
        if chain is None:
            out.append(None)
            continue
        canal, (ahead_mm, beside_mm) = chain.centre_at(centre[2]), (AHEAD_MM, BESIDE_MM)
        if canal is None:
            lo, hi = chain.span_s
            if centre[2] < lo - BEYOND_MM or centre[2] > hi + BEYOND_MM:
                out.append(None)
                continue
            canal = chain.centre_at(float(np.clip(centre[2], lo, hi)))
            ahead_mm, beside_mm = BEYOND_AHEAD_MM, BEYOND_BESIDE_MM
        ahead, beside = centre[1] - canal[1], abs(centre[0] - canal[0])
        out.append(not (ahead_mm[0] <= ahead <= ahead_mm[1] and beside <= beside_mm))
    return out


def summary(chain: CanalChain | None, dropped: int) -> dict:
    """What findings.json says of the prior."""
    if chain is None:
        return {"spinal_canal": "not found", "objects_dropped": dropped}
    lo, hi = chain.span_s
    return {"spinal_canal": "found", "canal_slices": len(chain), "canal_span_s_mm": [round(lo, 1), round(hi, 1)],
            "objects_dropped": dropped}
