"""The spinal canal on CT, found without a model: on axial slices, the canal is soft tissue or
fluid (below ~120 HU) enclosed by bone on nearly every side within a few centimetres (the body in
front, pedicles and laminae around). Such pixels are linked across slices into the longest smooth
chain; the vertebral bodies lie in front of it. The pelvis, the arms, the table and the bowel have
no such ring, and the chain's continuity rejects the odd enclosed pocket elsewhere."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..slicing import Intensity, make_stack

WINDOW = Intensity("ct_window", -500.0, 1300.0)  # 0..255 <-> HU, ~7 HU a grey level
BONE_HU, SOFT_HU = (200.0, (-150.0, 60.0))  # the canal holds CSF, cord and fat; marrow is ~100 HU
DIRECTIONS = 16
REACH_MM = 25.0  # bone must close around a canal pixel within this distance
MIN_ENCLOSED = 11  # of DIRECTIONS rays
MIN_CLEARANCE_MM = 2.5  # the canal is 12-25 mm across: marrow inside a thin bone is never this far from it
AREA_MM2 = (10.0, 700.0)
# At a disc no bone rings the canal: a lumbar disc and the endplates beside it leave ~16 mm unseen.
MAX_GAP_MM = 20.0
# Left-right the canal moves little: 4 mm per step plus half the height (a steep scoliosis). A pocket
# between the iliac wing, the sacrum and the iliac vessels lies 30-40 mm beside it; the chain had
# stepped out to it at L4 (9-13 mm sideways per 8-16 mm) and run on down the pelvis (seed 970004).
LATERAL_MM, LATERAL_SLOPE = 4.0, 0.5
REAR_MM = 12.0  # a chain this far behind the longest one is the canal (what is in front: vessels)


@dataclass
class CanalChain:
    """Canal centres (RAS) head first, one per axial slice where the canal was seen."""
    centres_ras: np.ndarray  # [n, 3]
    slice_mm: float

    def __len__(self) -> int:
        return len(self.centres_ras)

    @property
    def span_s(self) -> tuple[float, float]:
        s = self.centres_ras[:, 2]
        return float(s.min()), float(s.max())

    def centre_at(self, s: float) -> np.ndarray | None:
        """The canal centre at height s (linear between seen slices); None beyond the chain's ends
        by more than two slices."""
        lo, hi = self.span_s
        if s < lo - 2 * self.slice_mm or s > hi + 2 * self.slice_mm:
            return None
        order = np.argsort(self.centres_ras[:, 2])
        c = self.centres_ras[order]
        return np.array([np.interp(s, c[:, 2], c[:, a]) for a in range(3)])


def _hu(images: np.ndarray) -> np.ndarray:
    return WINDOW.low + images.astype(np.float32) / 255.0 * (WINDOW.high - WINDOW.low)


def enclosed_soft_tissue(hu: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Pixels of soft tissue / fluid with bone on at least MIN_ENCLOSED of DIRECTIONS rays. Only
    pixels a canal could hold are tested: soft, 2.5-15 mm from the nearest bone."""
    bone = ndimage.binary_closing(ndimage.uniform_filter(hu, 3) > BONE_HU, iterations=1)
    soft = (hu > SOFT_HU[0]) & (hu < SOFT_HU[1])
    clearance = ndimage.distance_transform_edt(~bone) * pixel_mm
    ys, xs = np.nonzero(soft & (clearance >= MIN_CLEARANCE_MM) & (clearance <= 15.0))
    out = np.zeros(hu.shape, bool)
    if not len(ys):
        return out
    steps = np.arange(1, max(2, int(round(REACH_MM / pixel_mm))) + 1)
    h, w = hu.shape
    hits = np.zeros(len(ys), np.int32)
    for angle in np.linspace(0, 2 * np.pi, DIRECTIONS, endpoint=False):
        py = np.clip(np.rint(ys[:, None] + steps[None] * np.sin(angle)).astype(int), 0, h - 1)
        px = np.clip(np.rint(xs[:, None] + steps[None] * np.cos(angle)).astype(int), 0, w - 1)
        hits += bone[py, px].any(1)
    keep = hits >= MIN_ENCLOSED
    out[ys[keep], xs[keep]] = True
    return out


def canal_candidates(stack) -> list[list[tuple[float, float, float]]]:
    """Per axial slice: (col, row, area mm2) of each enclosed soft-tissue blob of canal size."""
    out = []
    px2 = stack.pixel_mm ** 2
    for image in _hu(stack.images):
        mask = enclosed_soft_tissue(image, stack.pixel_mm)
        parts, n = ndimage.label(mask)
        found = []
        if n:
            areas = ndimage.sum(mask, parts, range(1, n + 1)) * px2
            centres = ndimage.center_of_mass(mask, parts, range(1, n + 1))
            found = [(c[1], c[0], a) for c, a in zip(centres, areas) if AREA_MM2[0] <= a <= AREA_MM2[1]]
        out.append(found)
    return out


def longest_chain(candidates, pixel_mm: float, slice_mm: float, max_gap_mm: float = MAX_GAP_MM) -> list[tuple[int, int]]:
    """(slice, candidate index) of the longest chain whose steps move at most ~6 mm in-plane plus
    ~0.6 mm per mm of height (the canal curves gently), and less sideways (LATERAL_MM); ties go to the
    larger blobs. Candidates are (column, row, area) of an axial stack: columns run left-right."""
    max_gap = max(1, int(max_gap_mm // slice_mm))
    nodes = [(s, i) for s, found in enumerate(candidates) for i in range(len(found))]
    best = {}
    for s, i in nodes:  # slices in order: a DAG
        x, y, area = candidates[s][i]
        score, prev = (1.0 + area / 1000.0, None)
        for g in range(1, max_gap + 1):
            for j, (x2, y2, _) in enumerate(candidates[s - g] if s - g >= 0 else []):
                allowed = (6.0 + 0.6 * g * slice_mm) / pixel_mm
                sideways = (LATERAL_MM + LATERAL_SLOPE * g * slice_mm) / pixel_mm
                if (s - g, j) in best and np.hypot(x - x2, y - y2) <= allowed and abs(x - x2) <= sideways:
                    cand = best[(s - g, j)][0] + 1.0 + area / 1000.0
                    if cand > score:
                        score, prev = cand, (s - g, j)
        best[(s, i)] = (score, prev)
    if not best:
        return []
    node = max(best, key=lambda k: best[k][0])
    chain = []
    while node is not None:
        chain.append(node)
        node = best[node][1]
    return chain[::-1]


def find_canal(volume, slice_mm: float = 4.0, pixel_mm: float = 1.5, max_size: int = 384) -> CanalChain | None:
    """The spinal canal of a CT as a chain of centres, or None when no chain of 3+ slices exists."""
    span = np.ptp(volume.corners_ras()[:, :2], 0).max()
    size = int(min(max_size, np.ceil(span / pixel_mm) + 2))
    # small batches: each resamples a float32 crop of the volume (memory target: 3x the volume)
    stack = make_stack(volume, "axial", size, WINDOW, slice_mm=slice_mm, pixel_mm=max(pixel_mm, span / max_size),
                       batch=4)
    candidates = canal_candidates(stack)
    chain = longest_chain(candidates, stack.pixel_mm, stack.slice_mm)
    if len(chain) < 3:
        return None
    chain, candidates = _rearmost(chain, candidates, stack)
    points = np.array([stack.to_ras(s, candidates[s][i][0], candidates[s][i][1]) for s, i in chain])
    # a running median over five slices: one pocket off the canal (a foramen) must not pull a node away
    if len(points) >= 5:
        points[:, :2] = ndimage.median_filter(points[:, :2], size=(5, 1), mode="nearest")
    return CanalChain(points, stack.slice_mm)


def _rearmost(chain, candidates, stack):
    """The canal lies behind the vertebral bodies; a pocket of soft tissue enclosed in front of them
    (between a contrast-filled aorta and vena cava lying on the bodies) can form a chain as long as
    the canal's. Where a chain of at least half the length runs 12 mm or more behind the chosen one,
    that is the canal. Returns (chain, the candidates it indexes)."""
    ras = [[stack.to_ras(s, c[0], c[1]) for c in found] for s, found in enumerate(candidates)]
    along = np.array([ras[s][i] for s, i in chain])
    along = along[np.argsort(along[:, 2])]

    def behind_it(p) -> bool:  # REAR_MM or more behind the chain at p's height, and not far beside it
        x, y = (np.interp(p[2], along[:, 2], along[:, k]) for k in (0, 1))
        return p[1] <= y - REAR_MM and abs(p[0] - x) <= 30.0

    behind = [[c for c, p in zip(found, points) if behind_it(p)] for found, points in zip(candidates, ras)]
    rear = longest_chain(behind, stack.pixel_mm, stack.slice_mm)
    if len(rear) >= max(3, len(chain) / 2):
        return rear, behind
    return chain, candidates
