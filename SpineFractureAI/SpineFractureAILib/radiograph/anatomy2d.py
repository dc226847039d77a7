"""What a lateral radiograph shows beyond the phantom's CT grid, added to its line integrals: the
trunk's soft tissue and lungs, whole ribs, iliac wings and femoral heads, arms and bowel gas.

Bones are sampled in 3D (points with the attenuation they carry) and splatted onto the image plane,
which is what a projection is: the line integral through a pixel is the attenuation mass above it.
"""
from __future__ import annotations

from copy import copy

import numpy as np
from scipy import ndimage

from .drr import MU_WATER

MU_BONE = MU_WATER * 0.9  # cortical-cancellous bone against soft tissue (per mm)


class Plane:
    """Pixel <-> RAS on a lateral image: columns run anterior -> posterior, rows superior -> inferior."""

    def __init__(self, shape, y0: float, z0: float, spacing: float):
        self.shape, self.y0, self.z0, self.spacing = shape, y0, z0, spacing

    def pixel(self, ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ras = np.asarray(ras, float).reshape(-1, 3)
        return (self.y0 - ras[:, 1]) / self.spacing, (self.z0 - ras[:, 2]) / self.spacing

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """y and z of every pixel ([1, cols] and [rows, 1]: they broadcast to the image)."""
        rows, cols = self.shape
        return (self.y0 - np.arange(cols)[None, :] * self.spacing, self.z0 - np.arange(rows)[:, None] * self.spacing)

    def splat(self, ras: np.ndarray, mass: np.ndarray, sigma_mm: float, magnify: np.ndarray | None = None) -> np.ndarray:
        """Line integrals of point masses (mu * mm^3) blurred by sigma_mm; magnify scales each point's
        offset from the image centre (the divergent beam enlarges what lies nearer the source)."""
        out = np.zeros(self.shape, np.float64)
        c, r = self.pixel(ras)
        if magnify is not None:
            cc, rc = self.shape[1] / 2, self.shape[0] / 2
            c, r = cc + (c - cc) * magnify, rc + (r - rc) * magnify
        ci, ri = np.round(c).astype(int), np.round(r).astype(int)
        ok = (ci >= 0) & (ci < self.shape[1]) & (ri >= 0) & (ri < self.shape[0])
        np.add.at(out, (ri[ok], ci[ok]), np.broadcast_to(mass, ci.shape)[ok] / self.spacing ** 2)
        return ndimage.gaussian_filter(out, max(sigma_mm / self.spacing, 0.5))


def _tube(points: np.ndarray, radius: float, density: float = 0.6):
    """Mass per sample of a bony tube along a polyline (cortex + marrow ~ `density` of solid bone)."""
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    step = np.append(step, step[-1:])
    return points, MU_BONE * density * np.pi * radius ** 2 * step


def rib_points(v, side: int, rng: np.random.Generator, length: float) -> np.ndarray:
    """One rib of a thoracic vertebra v: from its head beside the body, posterolaterally round the
    angle, then forwards round the chest wall, falling as it goes (length: fraction of a half-turn)."""
    rx = 110.0 + rng.uniform(-15, 25)
    ra = 85.0 + rng.uniform(-10, 20)
    a_c = v.depth / 2 + 30 - ra  # posterior extreme ~ 30 mm behind the body's back wall
    phi = np.linspace(0.12, np.pi * length, 160)
    x = side * rx * np.sin(phi)
    a = a_c + ra * np.cos(phi)
    z = v.height * 0.25 - (55.0 + rng.uniform(-10, 15)) * (phi / np.pi) ** 1.3
    head = np.linspace(0, 1, 12)[:, None] * np.array([x[0] - side * v.width / 2, a[0] - v.depth * 0.3, 0.0])
    head += np.array([side * v.width / 2, v.depth * 0.3, v.height * 0.25])
    pts = np.concatenate([head, np.stack([x, a, z], 1)])
    return v.to_ras(pts[:, 0], pts[:, 1], pts[:, 2])


def ribs(plane: Plane, spine, rng: np.random.Generator, extra_above: int = 3) -> np.ndarray:
    """Both ribs of every thoracic vertebra (T11 and T12 short and floating), and of a few thoracic
    vertebrae above the image's top that still reach into it anteriorly."""
    out = np.zeros(plane.shape)
    thoracic = [v for v in spine if 7 <= v.index <= 18]
    ghosts = []
    if thoracic and thoracic[0].index > 7:  # vertebrae above the phantom carry ribs into the view
        top = thoracic[0]
        for n in range(1, min(extra_above, thoracic[0].index - 7) + 1):
            ghost = _shifted(top, n * (top.height + 5.0))
            ghosts.append(ghost)
    for v in thoracic + ghosts:
        length = {18: 0.28, 17: 0.5}.get(v.index, 0.78)
        for side in (-1, 1):
            # thin cortex round marrow: a rib is faint on a lateral film beside a vertebral body
            pts, mass = _tube(rib_points(v, side, rng, length), radius=rng.uniform(4.0, 6.0), density=rng.uniform(0.15, 0.35))
            magnify = 1 + side * 0.04 * np.ones(len(pts))  # the two sides' ribs separate slightly
            out += plane.splat(pts, mass, 2.0, magnify)
    return out


def _shifted(v, up_mm: float):
    ghost = copy(v)
    ghost.center = v.center + up_mm * v.e_si
    ghost.level = "T1"  # any thoracic level: only its rib matters
    return ghost


def pelvis(plane: Plane, spine, rng: np.random.Generator) -> np.ndarray:
    """Iliac wings (plates with a dense crest) beside L5-S1 and femoral heads below, when S1 is shown."""
    sacrum = next((v for v in spine if v.level == "S1"), None)
    if sacrum is None:
        return np.zeros(plane.shape)
    y, z = plane.coords()
    out = np.zeros(plane.shape)
    base = sacrum.center + sacrum.height / 2 * sacrum.e_si
    for side in (-1, 1):
        cy = base[1] + rng.uniform(10, 35) + side * 4
        cz = base[2] + rng.uniform(-10, 15)
        ry, rz = rng.uniform(55, 75), rng.uniform(45, 60)
        d = ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2
        wing = (d <= 1) & (z > cz - rz * 0.9)
        out += wing * MU_BONE * rng.uniform(5.0, 9.0)  # the plate's thickness along the beam
        crest = np.abs(np.sqrt(d) - 1) * min(ry, rz) <= 4.0
        out += (crest & (z > cz)) * MU_BONE * rng.uniform(12.0, 20.0)
        fy, fz = base[1] + rng.uniform(15, 35), base[2] - rng.uniform(85, 105)
        head = np.clip(1 - ((y - fy) ** 2 + (z - fz) ** 2) / 23.0 ** 2, 0, None)
        out += np.sqrt(head) * MU_BONE * 40.0
    return ndimage.gaussian_filter(out, 1.0 / plane.spacing)


def arms(plane: Plane, rng: np.random.Generator, anterior_y: float, count: int) -> np.ndarray:
    """Humeri raised forwards over the chest: long bony tubes anterior to the spine."""
    out = np.zeros(plane.shape)
    rows, cols = plane.shape
    for _ in range(count):
        start = np.array([rng.uniform(-60, 60), anterior_y + rng.uniform(0, 80), plane.z0 + rng.uniform(0, 40)])
        angle = np.radians(rng.uniform(30, 80))
        end = start + 260 * np.array([0, np.cos(angle), -np.sin(angle)])
        pts = start + np.linspace(0, 1, 200)[:, None] * (end - start)
        for radius, sign in ((11.0, 1.0), (8.0, -0.7)):  # cortex: the shaft minus its marrow cavity
            p, mass = _tube(pts, radius, density=1.0)
            out += sign * plane.splat(p, mass, radius / 2)
    return np.clip(out, 0, None)


def trunk(plane: Plane, grid_width_mm: float, posterior_y: float, rng: np.random.Generator,
          diaphragm_z: float | None, depth: float) -> np.ndarray:
    """Soft tissue beyond the CT grid's width (the trunk is wider than the spine), lungs above the
    diaphragm (less attenuating than soft tissue), and bowel gas below it."""
    y, z = plane.coords()
    half_width = rng.uniform(130, 180)
    mid = posterior_y + depth / 2
    u = np.clip(np.abs(y - mid) / (depth / 2), 0, 1)
    chord = 2 * half_width * (1 - u ** 4) ** 0.25
    forward = y - posterior_y  # mm in front of the back's skin
    inside = (forward >= 0) & (forward <= depth)
    out = MU_WATER * np.clip(chord - grid_width_mm, 0, None) * inside + np.zeros(plane.shape)
    if diaphragm_z is not None:  # the dome rises anteriorly
        dome = diaphragm_z + 25 * np.clip((forward - 40) / depth, 0, 1)
        lung = (z > dome) & (forward > 25) & (forward < depth - 20)
        out -= MU_WATER * 0.7 * lung * np.clip(chord - 80, 0, 120) * rng.uniform(0.25, 0.5)
        out = ndimage.gaussian_filter(out, 3.0 / plane.spacing)
    gas = np.zeros(plane.shape)
    for _ in range(int(rng.integers(0, 7))):
        gy, gz = posterior_y + rng.uniform(40, depth - 30), rng.uniform(z.min(), z.max())
        if diaphragm_z is not None and gz > diaphragm_z:
            continue
        r = rng.uniform(8, 25)
        gas += np.clip(1 - ((y - gy) ** 2 + (z - gz) ** 2) / r ** 2, 0, None) ** 0.5 * 2 * r
    # bowel: mottled gas and contents below the diaphragm, in front of the spine
    mottle = ndimage.gaussian_filter(rng.normal(size=plane.shape), 5.0 / plane.spacing)
    mottle *= rng.uniform(0.0, 0.3) / max(mottle.std(), 1e-6)
    belly = inside & (forward > 60) & ((z < diaphragm_z) if diaphragm_z is not None else True)
    return out - MU_WATER * 0.9 * gas * inside + mottle * belly
