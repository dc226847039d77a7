"""Signs of a fracture's age drawn into a phantom CT before it is projected, after the radiological
literature on fresh versus old vertebral compression fractures on radiographs:

- fresh: a band of trabecular impaction (denser bone) under the collapsed endplate, a break in the
  endplate cortex, and a step or displaced fragment of the anterior cortex;
- old: smooth, corticated, sclerotic endplates and anterior osteophytes (a remodelled wedge).

These stand in for real data: they are our drawing of textbook signs, not learned from radiographs with
MRI-proven ages, so a model trained on them says nothing about a real fracture's age. Each sign's
strength is random and the other age's signs appear weakly too (degeneration beside a fresh fracture,
sclerosis beside an old one), so the two ages overlap and the task is not trivially separable.
"""
from __future__ import annotations

import numpy as np

from ..phantom.render import body_mask

AGES = ("fresh", "old")


def _box(shape_kji, ijk_to_ras, v, half):
    """Voxel slices of a local box round v and the voxels' local (x, a, z) coordinates."""
    hx, ha, hz = half
    corners = np.array([[sx * hx, sa * ha, sz * hz] for sx in (-1, 1) for sa in (-1, 1) for sz in (-1, 1)])
    ras = v.to_ras(corners[:, 0], corners[:, 1], corners[:, 2])
    inv = np.linalg.inv(ijk_to_ras)
    ijk = ras @ inv[:3, :3].T + inv[:3, 3]
    lo = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, np.array(shape_kji[::-1]))
    if np.any(hi <= lo):
        return None
    k, j, i = np.meshgrid(*(np.arange(lo[d], hi[d]) for d in (2, 1, 0)), indexing="ij")
    pts = np.stack([i, j, k], -1).reshape(-1, 3).astype(float)
    x, a, z = v.local(pts @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3])
    shp = i.shape
    return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), x.reshape(shp), a.reshape(shp), z.reshape(shp)


def strengths(age: str | None, rng: np.random.Generator) -> dict:
    """How strongly each sign shows (0..1): the age's own signs clearly, the other's weakly at times."""
    own, other = rng.uniform(0.35, 1.0), (rng.uniform(0.0, 0.4) if rng.random() < 0.5 else 0.0)
    if age == "fresh":
        return {"fresh": own, "old": other}
    if age == "old":
        return {"fresh": other * 0.8, "old": own}
    # an unfractured body: degenerative osteophytes and sclerosis at times, never an impaction band
    return {"fresh": 0.0, "old": rng.uniform(0.0, 0.7) if rng.random() < 0.3 else 0.0}


def draw(hu: np.ndarray, ijk_to_ras: np.ndarray, v, strength: dict, rng: np.random.Generator) -> None:
    """Change the CT (HU, [k, j, i]) in place round vertebra v."""
    found = _box(hu.shape, ijk_to_ras, v, (v.width / 2 + 2, v.depth / 2 + 12, v.height / 2 + 6))
    if found is None:
        return
    sl, x, a, z = found
    t = np.clip(a / v.depth + 0.5, 0, 1)  # 0 at the anterior wall, 1 at the posterior wall
    inside = body_mask(v, x, a, z)
    top, bottom = v.z_top(t), v.z_bot(t)
    block = hu[sl].astype(np.float32)
    fresh, old = strength["fresh"], strength["old"]
    if fresh > 0:
        band = rng.uniform(3.0, 7.0)
        under = inside & (top - z >= 1.2) & (top - z <= 1.2 + band)
        block[under] += fresh * rng.uniform(250, 450)
        if rng.random() < fresh:  # a gap in the superior endplate's cortex
            gap = inside & (np.abs(z - top) <= 2.0) & (np.abs(t - rng.uniform(0.3, 0.7)) <= 0.06)
            block[gap] = 120
        if rng.random() < 0.4 + 0.6 * fresh:  # anterior cortical step with a small displaced fragment
            z_step = float(v.z_top(0.0)) - v.height * rng.uniform(0.1, 0.35)
            wall = inside & (t <= 0.08) & (np.abs(z - z_step) <= 1.5)
            block[wall] = 60
            out = 1.0 + 4.0 * fresh
            fragment = (a < -v.depth / 2) & (a >= -v.depth / 2 - out) & (z > z_step + 1) & (z <= z_step + 5) \
                & (np.abs(x) <= v.width * 0.35)
            block[fragment] = 700
    if old > 0:
        thick = 1.5 + 2.5 * old
        sclerotic = inside & ((top - z <= thick) | (z - bottom <= thick))
        block[sclerotic] += old * rng.uniform(300, 500)
        for corner, sign in ((v.height / 2, 1), (-v.height / 2, -1)):  # anterior osteophytes
            if rng.random() > 0.3 + 0.7 * old:
                continue
            length = 2.0 + 6.0 * old * rng.uniform(0.6, 1.0)
            spur = ((a + v.depth / 2 + length / 2) / (length / 2 + 1)) ** 2 + ((z - corner + sign * 1.5) / 2.5) ** 2 <= 1
            spur &= (np.abs(x) <= v.width * 0.4) & (a < -v.depth / 2 + 1)
            block[spur] = np.maximum(block[spur], 650)
    hu[sl] = np.clip(np.round(block), -1024, 3071).astype(hu.dtype)
