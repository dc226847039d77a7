"""Rasterise the phantom spine onto any voxel grid (any spacing and direction).

Each structure is an inequality in its vertebra's local frame, evaluated at the RAS
centres of the voxels inside the structure's bounding box, so oblique and flipped
grids are drawn exactly like axis-aligned ones.
"""
from __future__ import annotations

import numpy as np

from ..levels import VERSE_ID
from .anatomy import Vertebra, canal_size, disc_gap

# Tissue codes -> intensity per modality (CT in HU, MR T2-like in arbitrary units).
AIR, SOFT, LUNG, ANNULUS, NUCLEUS, CSF, CORD, CANCELLOUS, CORTICAL, ARCH = range(10)
INTENSITY = {
    "ct": {AIR: -1000, SOFT: 40, LUNG: -850, ANNULUS: 90, NUCLEUS: 70, CSF: 10, CORD: 35,
           CANCELLOUS: 180, CORTICAL: 800, ARCH: 450},
    "mr": {AIR: 0, SOFT: 260, LUNG: 25, ANNULUS: 140, NUCLEUS: 720, CSF: 950, CORD: 380,
           CANCELLOUS: 430, CORTICAL: 40, ARCH: 330},
}

LABEL_RIBS, LABEL_CANAL = 70, 200


def body_label(v: Vertebra) -> int:
    return VERSE_ID[v.level]


def arch_label(v: Vertebra) -> int:
    return 40 + VERSE_ID[v.level]


def disc_label(upper: Vertebra) -> int:
    return 100 + VERSE_ID[upper.level]


class Canvas:
    """Label and tissue arrays on a grid, with per-box access in local coordinates."""

    def __init__(self, shape_kji, ijk_to_ras):
        self.labels = np.zeros(shape_kji, np.uint16)
        self.tissue = np.full(shape_kji, SOFT, np.uint8)
        # Partial volume at vertebral-body surfaces: bone fraction and the tissue outside it.
        self.bone_fraction = np.full(shape_kji, np.nan, np.float32)
        self.outside = np.zeros(shape_kji, np.uint8)
        self.ijk_to_ras = ijk_to_ras
        self.ras_to_ijk = np.linalg.inv(ijk_to_ras)

    def box(self, v: Vertebra, half_extent):
        """Voxel slices and local (x, a, z) coordinates covering a local box around v."""
        hx, ha, hz = half_extent
        corners = np.array([[sx * hx, sa * ha, sz * hz] for sx in (-1, 1)
                            for sa in (-1, 1) for sz in (-1, 1)])
        ras = v.to_ras(corners[:, 0], corners[:, 1], corners[:, 2])
        ijk = ras @ self.ras_to_ijk[:3, :3].T + self.ras_to_ijk[:3, 3]
        lo = np.maximum(np.floor(ijk.min(0)).astype(int), 0)
        shape_ijk = self.labels.shape[::-1]
        hi = np.minimum(np.ceil(ijk.max(0)).astype(int) + 1, shape_ijk)
        if np.any(hi <= lo):
            return None
        i, j, k = np.meshgrid(*(np.arange(lo[d], hi[d]) for d in range(3)), indexing="ij")
        pts = np.stack([i, j, k], -1).transpose(2, 1, 0, 3).reshape(-1, 3).astype(float)
        ras = pts @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]
        x, a, z = v.local(ras)
        sl = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        shp = (hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0])
        return sl, x.reshape(shp), a.reshape(shp), z.reshape(shp)

    def paint(self, sl, mask, label=None, tissue=None):
        if label is not None:
            self.labels[sl][mask] = label
        if tissue is not None:
            self.tissue[sl][mask] = tissue


def _ellipse(x, a, rx, ra, a0=0.0):
    return (x / rx) ** 2 + ((a - a0) / ra) ** 2


def body_mask(v: Vertebra, x, a, z, margin=0.0):
    t = a / v.depth + 0.5
    inside = _ellipse(x, a, v.width / 2 - margin, v.depth / 2 - margin) <= 1.0
    return inside & (z <= v.z_top(t) - margin) & (z >= v.z_bot(t) + margin)


def draw_disc(cv: Canvas, up: Vertebra, low: Vertebra, herniated: bool):
    bottom = up.center - up.height / 2 * up.e_si
    top = low.center + low.height / 2 * low.e_si
    e_si = (up.e_si + low.e_si) / np.linalg.norm(up.e_si + low.e_si)
    e_ap = np.array([0.0, -e_si[2], e_si[1]])
    w, d = (up.width + low.width) / 2, (up.depth + low.depth) / 2
    if low.level == "S1":
        w, d = up.width, up.depth
    disc = Vertebra(f"{up.level}", (bottom + top) / 2, e_si, e_ap, up.e_lr, 0, d, w)
    gap = float(np.linalg.norm(bottom - top))
    box = cv.box(disc, (w / 2 + 2, d / 2 + 14, gap / 2 + 4))
    if box is None:
        return disc.center
    sl, x, a, z = box
    slab = np.abs(z) <= gap / 2 + 1.5  # overlaps the endplates; bodies are drawn later
    annulus = (_ellipse(x, a, w / 2, d / 2) <= 1) & slab
    nucleus = (_ellipse(x, a, w / 3, d / 3.2, a0=d * 0.05) <= 1) & slab
    cv.paint(sl, annulus, disc_label(up), ANNULUS)
    if not herniated:
        cv.paint(sl, nucleus, None, NUCLEUS)
    else:  # paracentral posterior protrusion into the canal
        bulge = ((x - w * 0.08) / 9.0) ** 2 + ((a - d / 2 - 2.5) / 6.5) ** 2 + (z / (gap / 2 + 0.5)) ** 2 <= 1
        cv.paint(sl, bulge, disc_label(up), ANNULUS)
        cv.paint(sl, nucleus, None, ANNULUS)  # a degenerate, darker nucleus
    return disc.center


def draw_canal(cv: Canvas, v: Vertebra, gap_above: float, gap_below: float):
    ap, lr = canal_size(v.index)
    a0 = v.depth / 2 + ap / 2 + 0.5
    box = cv.box(v, (lr / 2 + 1, v.depth / 2 + ap + 2, v.height / 2 + max(gap_above, gap_below) + 2))
    if box is None:
        return
    sl, x, a, z = box
    span = (z <= v.height / 2 + gap_above / 2 + 1.5) & (z >= -v.height / 2 - gap_below / 2 - 1.5)
    canal = (_ellipse(x, a, lr / 2, ap / 2, a0) <= 1) & span
    cv.paint(sl, canal, LABEL_CANAL, CSF)
    if v.index < 19:  # the cord ends near L1 (conus)
        cv.paint(sl, (_ellipse(x, a, 4.5, 4.0, a0) <= 1) & span, None, CORD)


def draw_arch(cv: Canvas, v: Vertebra, ribs: bool):
    """Pedicles + laminae (a ring round the canal), spinous and transverse processes, and ribs."""
    ap, lr = canal_size(v.index)
    a0 = v.depth / 2 + ap / 2 + 0.5
    spin = 18.0 if v.index < 7 else 28.0
    reach = v.width / 2 + (12.0 if v.index >= 7 else 8.0)
    thoracic = 7 <= v.index <= 18  # the shape of the processes; `ribs` says whether it bears ribs
    rib_rx = v.width / 2 + 55.0
    half_x = rib_rx + 6 if ribs else reach + 2
    box = cv.box(v, (half_x, v.depth / 2 + ap + spin + 4, v.height / 2 + 8))
    if box is None:
        return
    sl, x, a, z = box
    lab = arch_label(v)
    zlim = np.abs(z) <= v.height * 0.42
    ring = (_ellipse(x, a, lr / 2 + 5, ap / 2 + 5, a0) <= 1) & (_ellipse(x, a, lr / 2, ap / 2, a0) > 1)
    ring &= zlim & (a > v.depth / 2 - 3)
    # in front of the canal the ring meets the body's back wall: a collapsed (crush) body takes it down too
    ring &= (a >= a0 - ap / 2) | ((z <= v.z_top(1.0)) & (z >= v.z_bot(1.0)))
    spinous = (np.abs(x) <= 3.5) & (a >= a0 + ap / 2) & (a <= a0 + ap / 2 + spin)
    spinous &= np.abs(z + (a - a0) * (0.35 if thoracic else 0.1)) <= v.height * 0.3
    transverse = (np.abs(x) <= reach) & (np.abs(x) >= lr / 2) & (np.abs(a - a0 + 1) <= 4) & (np.abs(z) <= 5)
    bone = ring | spinous | transverse
    cv.paint(sl, bone, lab, ARCH)
    if ribs:
        rib_ra, rib_a0 = 45.0 + v.index, -8.0
        r = np.sqrt(_ellipse(x, a, rib_rx, rib_ra, rib_a0))
        rib = (np.abs(r - 1) * min(rib_rx, rib_ra) <= 4.0) & (np.abs(z - v.height * 0.25) <= 4.5)
        rib &= (np.abs(x) >= reach - 4) & (a >= -v.depth * 0.6)
        lung = (r < 1 - 6.0 / rib_ra) & (np.abs(x) > v.width / 2 + 8) & (a < a0 - 4)
        lung &= np.abs(z) <= v.height / 2 + disc_gap(v) / 2 + 0.5
        cv.paint(sl, lung & (cv.labels[sl] == 0), None, LUNG)
        cv.paint(sl, rib, LABEL_RIBS, ARCH)
    if v.level == "C2":  # the dens rises from the body into the atlas ring
        dens = (_ellipse(x, a, 5.0, 5.0, -v.depth * 0.1) <= 1) & (z > 0) & (z <= v.height / 2 + 16)
        cv.paint(sl, dens, lab, ARCH)


def draw_atlas(cv: Canvas, v: Vertebra):
    """C1: a ring with lateral masses and no body."""
    box = cv.box(v, (30, 40, 12))
    if box is None:
        return
    sl, x, a, z = box
    ap, lr = canal_size(v.index)
    a0 = ap / 2 - v.depth * 0.2
    outer = _ellipse(x, a, 22.0, 20.0, a0) <= 1
    inner = _ellipse(x, a, 17.0, 15.0, a0) <= 1
    masses = (np.abs(np.abs(x) - 15.0) <= 5.5) & (np.abs(a - a0 + 4) <= 8)
    atlas = ((outer & ~inner) | masses) & (np.abs(z) <= 5.5)
    cv.paint(sl, atlas, body_label(v), CORTICAL)
    cv.paint(sl, atlas & (np.abs(z) <= 3.5) & masses, None, CANCELLOUS)


def draw_body(cv: Canvas, v: Vertebra, shell: float = 1.6):
    box = cv.box(v, (v.width / 2 + 1, v.depth / 2 + 1, v.height / 2 + 1))
    if box is None:
        return
    sl, x, a, z = box
    body = body_mask(v, x, a, z)
    core = body_mask(v, x, a, z, margin=shell)
    # Signed distance to the endplates and the wall (negative inside), and the fraction of each
    # voxel inside: the image gets partial volume, so an endplate is located below a voxel.
    t = a / v.depth + 0.5
    wall = (np.sqrt(_ellipse(x, a, v.width / 2, v.depth / 2)) - 1) * min(v.width, v.depth) / 2
    sd = np.maximum(np.maximum(z - v.z_top(t), v.z_bot(t) - z), wall)
    extent = float(np.sum(np.abs(cv.ijk_to_ras[:3, :3].T @ v.e_si)))  # voxel width along the axis
    fraction = np.clip(0.5 - sd / extent, 0.0, 1.0)
    edge = (fraction > 0) & (fraction < 1)
    cv.outside[sl][edge & ~body] = cv.tissue[sl][edge & ~body]
    cv.outside[sl][edge & body] = np.where(cv.labels[sl][edge & body] == 0, SOFT, cv.tissue[sl][edge & body])
    cv.bone_fraction[sl][edge] = fraction[edge]
    cv.paint(sl, body, body_label(v), CORTICAL)
    cv.paint(sl, core, None, CANCELLOUS)


def draw_sacrum(cv: Canvas, v: Vertebra):
    """S1 as the top of a sacral block that narrows and runs posteriorly-down."""
    length = 70.0
    box = cv.box(v, (v.width / 2 + 30, v.depth / 2 + length * 0.6 + 10, length + v.height))
    if box is None:
        return
    sl, x, a, z = box
    depth_down = np.clip(-(z - v.height / 2), 0, None)  # distance below the S1 endplate
    shift = depth_down * 0.35  # curves posteriorly
    taper = np.clip(1 - depth_down / (length * 1.6), 0.35, 1)
    rx = (v.width / 2 + 28 * np.clip(1 - depth_down / 40, 0, 1)) * taper
    block = (_ellipse(x, a - shift, rx, v.depth / 2 * taper) <= 1) & (z <= v.height / 2) & (depth_down <= length)
    core = (_ellipse(x, a - shift, rx - 1.8, v.depth / 2 * taper - 1.8) <= 1) & (z <= v.height / 2 - 1.8)
    cv.paint(sl, block, body_label(v), CORTICAL)
    cv.paint(sl, block & core, None, CANCELLOUS)


def render(spine: list[Vertebra], shape_kji, ijk_to_ras, herniated: set[str],
           rib_pairs: int = 12, underlay=None) -> tuple[Canvas, dict]:
    """Draw in order of precedence: discs, canal, posterior elements, then bodies. rib_pairs: ribs
    on T1 and the next rib_pairs - 1 vertebrae (11 or 13: transitional anatomy). underlay(canvas):
    draws what lies under the spine first (the surroundings)."""
    cv = Canvas(shape_kji, ijk_to_ras)
    if underlay is not None:
        underlay(cv)
    disc_centers = {}
    for up, low in zip(spine, spine[1:]):
        if up.level == "C1":
            continue  # no disc between atlas and axis
        disc_centers[up.level] = draw_disc(cv, up, low, up.level in herniated)
    for n, v in enumerate(spine):
        above = disc_gap(spine[n - 1]) if n > 0 else 6.0
        if v.level != "S1":
            draw_canal(cv, v, above, disc_gap(v))
    for v in spine:
        if v.has_body:
            draw_arch(cv, v, 7 <= v.index < 7 + rib_pairs)
    for v in spine:
        if v.level == "C1":
            draw_atlas(cv, v)
        elif v.level == "S1":
            draw_sacrum(cv, v)
        else:
            draw_body(cv, v)
    return cv, disc_centers
