"""Vertebral morphometry (seed 003's six points) and Genant grading from any body mask.

Each body is measured in its own frame: the superior axis comes from the neighbours'
centroids (the local spine tangent, which a deformed body cannot bias), refined so that
the posterior wall - the part osteoporotic fractures spare - is parallel to it. Heights are
read on a fine resampling of the mask's mid-sagittal slab, so voxel size and obliquity
do not bias them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


STEP_A, STEP_Z = 0.5, 0.25  # mm: resampling of the mid-sagittal profile
# Below this many voxels across a body's height its endplates cannot be told from its neighbours'
# discs; above it, coarse voxels widen the heights' uncertainty (reported) instead of hiding them.
MIN_VOXELS_PER_HEIGHT = 6
COARSE_UNCERTAINTY_MM = 1.3  # half-voxel endplate errors of ~1.9 mm voxels: the coarse regime above
NEIGHBOURS_DISAGREE = 1.5  # neighbours' posterior heights this far apart: one of them is no reference
RUN_TOGETHER = 1.5  # a body this much higher at the back than the bodies around it is two in one
# A wedge or biconcave call divides by the body's own back: where that back is this much higher than
# the bodies around it the ratio measures a lengthened back, not a lost front (C2 with the base of
# its dens, named C3 where no anchor fixed the count; a grade-2 crush's neighbours reach ~1.3 only
# at a chain's end, and read grade 0).
TALL_BACK = 1.3
# Seed 003's six points sit at these fractions of the body's depth from its anterior wall: the
# anterior, middle and posterior heights (each a superior and an inferior endplate point).
KEYPOINT_T = (0.15, 0.5, 0.85)


def genant_grade(loss: float) -> int:
    """Genant's semi-quantitative grade from a fractional height loss (20, 25, 40 %)."""
    return 0 if loss < 0.20 else 1 if loss < 0.25 else 2 if loss < 0.40 else 3


@dataclass
class Measurement:
    level: str
    label: int
    status: str = "measured"
    keypoints_ras: list = field(default_factory=list)
    heights_mm: dict | None = None
    ratios: dict | None = None
    # Each endplate is placed to about half a voxel along the body's axis: heights are +- this much.
    height_uncertainty_mm: float | None = None
    height_loss: float | None = None
    genant_grade: int | None = None
    genant_grade_range: list | None = None  # the grades the height uncertainty allows, when it allows two
    type: str | None = None
    centroid_ras: list | None = None
    axes_ras: dict | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("centroid_ras", "axes_ras")} | {
            "superior_axis_ras": self.axes_ras["si"] if self.axes_ras else None}


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _frame(e_si) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e_si, e_ap, e_lr): e_lr from the patient's left-right axis, e_ap pointing posterior."""
    e_si = _unit(e_si)
    e_lr = _unit(np.array([1.0, 0, 0]) - e_si[0] * e_si)
    e_ap = np.cross(e_si, e_lr)
    if e_ap[1] > 0:  # RAS +A is anterior; we want anterior -> posterior
        e_ap = -e_ap
    return e_si, e_ap, e_lr


class BodySampler:
    """Samples one body's mask (trilinear, 0..1) at RAS points."""

    def __init__(self, mask: np.ndarray, ijk_to_ras: np.ndarray, origin=(0, 0, 0)):
        """mask: the body on a box of the grid whose first voxel is `origin` (i, j, k)."""
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        self.offset = np.array([box[2].start, box[1].start, box[0].start]) + np.asarray(origin) - 2
        self.mask = np.pad(mask[box].astype(np.float32), 2)
        self.ras_to_ijk = np.linalg.inv(ijk_to_ras)
        k, j, i = np.nonzero(mask[box])
        ijk = np.stack([i, j, k], -1) + self.offset + 2
        self.points = ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
        self.ijk_to_ras = ijk_to_ras

    def __call__(self, ras: np.ndarray) -> np.ndarray:
        ijk = ras @ self.ras_to_ijk[:3, :3].T + self.ras_to_ijk[:3, 3] - self.offset
        return ndimage.map_coordinates(self.mask, ijk[..., ::-1].reshape(-1, 3).T, order=1,
                                       cval=0.0).reshape(ras.shape[:-1])

    def resolution_along(self, e: np.ndarray) -> float:
        """How coarse the voxels are along direction e (mm)."""
        return float(np.sum(np.abs(self.ijk_to_ras[:3, :3].T @ e)))


class ImageSampler:
    """Trilinear CT intensities around one body (a crop), for sub-voxel endplates."""

    def __init__(self, image: np.ndarray, ijk_to_ras: np.ndarray, around: BodySampler, margin: int = 8):
        lo = np.maximum(around.offset + 2 - margin, 0)
        hi = np.minimum(around.offset + 2 + np.array(around.mask.shape[::-1]) - 4 + margin, image.shape[::-1])
        self.offset = lo
        self.crop = image[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].astype(np.float32)
        self.ras_to_ijk = np.linalg.inv(ijk_to_ras)

    def __call__(self, ras: np.ndarray) -> np.ndarray:
        ijk = ras @ self.ras_to_ijk[:3, :3].T + self.ras_to_ijk[:3, 3] - self.offset
        return ndimage.map_coordinates(self.crop, ijk[..., ::-1].reshape(-1, 3).T, order=1,
                                       mode="nearest").reshape(ras.shape[:-1])


def refine_endplate(image: ImageSampler, center, e_si, e_ap, e_lr, xs, a, edge, outward: float,
                    min_contrast: float = 200.0, voxel_mm: float = 1.0):
    """Move each column's mask endplate (edge[x, a], mm along e_si) to the half-way crossing
    between the cortical peak and the tissue outside it, on the partial-volume CT image.
    voxel_mm: the voxels' size along e_si. On thick slices a mask's edge can lie 1.5 voxels outside
    the cortex (a slice half disc, half cortex counted in; the mask's 0.5 level half a voxel beyond
    it), so the search reaches that far."""
    inward = max(2.0, 1.6 * voxel_mm)  # where the cortical peak may lie inside the mask's edge
    reach = max(1.0, voxel_mm)
    offsets = np.arange(-inward - 0.5, 2.75, 0.25)  # along `outward` (+1 superior, -1 inferior)
    z = edge[..., None] + outward * offsets
    pts = (center + xs[:, None, None, None] * e_lr + a[None, :, None, None] * e_ap
           + np.nan_to_num(z)[..., None] * e_si)
    profile = image(pts)
    outside = np.median(profile[..., offsets >= 1.5], -1)
    near = (offsets >= -inward) & (offsets <= 0.5)
    peak_at = np.argmax(np.where(near, profile, -np.inf), -1)
    peak = np.take_along_axis(profile, peak_at[..., None], -1)[..., 0]
    level = (peak + outside) / 2
    below = (profile < level[..., None]) & (np.arange(len(offsets)) > peak_at[..., None])
    first = np.argmax(below, -1)
    ok = below.any(-1) & (peak - outside >= min_contrast) & np.isfinite(edge)
    i1 = np.clip(first, 1, len(offsets) - 1)
    p0 = np.take_along_axis(profile, (i1 - 1)[..., None], -1)[..., 0]
    p1 = np.take_along_axis(profile, i1[..., None], -1)[..., 0]
    crossing = offsets[i1 - 1] + 0.25 * (p0 - level) / np.maximum(p0 - p1, 1e-6)
    shift = np.clip(crossing, -reach, reach)
    return np.where(ok, edge + outward * shift, edge)


def sagittal_profile(sampler: BodySampler, center, e_si, e_ap, e_lr, half_slab: float):
    """Occupancy P[x, a, z] across the mid-sagittal slab, with its a and z axes."""
    local = sampler.points - center
    a_rng = (local @ e_ap).min() - 2, (local @ e_ap).max() + 2
    z_rng = (local @ e_si).min() - 2, (local @ e_si).max() + 2
    xs = np.linspace(-half_slab, half_slab, 5)
    a = np.arange(a_rng[0], a_rng[1], STEP_A)
    z = np.arange(z_rng[0], z_rng[1], STEP_Z)
    grid = (center + xs[:, None, None, None] * e_lr + a[None, :, None, None] * e_ap
            + z[None, None, :, None] * e_si)
    return sampler(grid), a, z


def anterior_run(profile: np.ndarray) -> tuple[int, int]:
    """First contiguous run of occupied columns from the anterior side (the body, not the arch)."""
    occupied = (profile > 0.5).any(1)
    idx = np.flatnonzero(occupied)
    if idx.size == 0:
        return 0, -1
    start = end = idx[0]
    while end + 1 < len(occupied) and occupied[end + 1]:
        end += 1
    return start, end


def column_extents(profile, z, step: float = STEP_Z):
    """Sub-sample top and bottom 0.5-crossings of every column (last axis = z); NaN if empty."""
    inside = profile > 0.5
    has = inside.any(-1)
    n = profile.shape[-1]
    i_top = np.where(has, n - 1 - np.argmax(inside[..., ::-1], -1), 0)
    i_bot = np.where(has, np.argmax(inside, -1), 0)
    take = lambda idx: np.take_along_axis(profile, np.clip(idx, 0, n - 1)[..., None], -1)[..., 0]  # noqa: E731
    p_top, p_next = take(i_top), take(i_top + 1) * (i_top + 1 < n)
    p_bot, p_prev = take(i_bot), take(i_bot - 1) * (i_bot > 0)
    top = z[i_top] + step * (p_top - 0.5) / np.maximum(p_top - p_next, 1e-6)
    bot = z[i_bot] - step * (p_bot - 0.5) / np.maximum(p_bot - p_prev, 1e-6)
    return np.where(has, top, np.nan), np.where(has, bot, np.nan)


def measure_body(sampler: BodySampler, e_si_hint, level: str, label: int,
                 hint_sigma_deg: float = 30.0, image: ImageSampler | None = None) -> Measurement:
    """hint_sigma_deg: how far the hinted axis may be off (1.5 from two neighbours' chord)."""
    m = Measurement(level, label)
    hint = np.asarray(e_si_hint, float)
    if not np.all(np.isfinite(hint)) or np.linalg.norm(hint) < 1e-6 or abs(_unit(hint)[0]) > 0.7:
        hint, hint_sigma_deg = np.array([0.0, 0.0, 1.0]), 30.0  # no usable spine direction: patient S
    hint = e_si = _unit(hint)
    center = np.median(sampler.points, 0)
    wall_sigma = 30.0
    for _ in range(3):  # refine the axis on the posterior wall, re-centre on the body
        e_si, e_ap, e_lr = _frame(e_si)
        width = np.ptp(sampler.points @ e_lr)
        slab, a, z = sagittal_profile(sampler, center, e_si, e_ap, e_lr, max(1.5, 0.08 * width))
        profile = slab.mean(0)
        start, end = anterior_run(profile)
        if end < start + 4:
            return Measurement(level, label, "unmeasurable: no vertebral body in the mid-sagittal plane")
        top, bot = column_extents(profile[start:end + 1], z)
        height = np.nanmax(top - bot)
        rows = (z > np.nanmedian(bot) + 0.2 * height) & (z < np.nanmedian(top) - 0.2 * height)
        # posterior wall per row, at the sub-sample 0.5 crossing (a 0.5 mm step would tilt the fit)
        wall_a, _ = column_extents(profile[start:end + 1, rows].T, a[start:end + 1], step=STEP_A)
        ok = np.isfinite(wall_a)
        if ok.sum() < 4:
            break
        slope = np.polyfit(z[rows][ok], wall_a[ok], 1)[0]
        wall_len = np.ptp(z[rows][ok])
        wall_sigma = np.degrees(sampler.resolution_along(e_ap) / max(wall_len, 1.0)) + 0.5
        tilt = np.clip(np.arctan(slope), -np.radians(15), np.radians(15))
        mid = (a[start] + a[end]) / 2
        center = center + mid * e_ap + (np.nanmedian(top) + np.nanmedian(bot)) / 2 * e_si
        e_si = np.cos(tilt) * e_si + np.sin(tilt) * e_ap
    # Two estimates of the axis, weighted by their expected errors: hint (neighbours) and wall.
    w_wall, w_hint = 1 / wall_sigma**2, 1 / hint_sigma_deg**2
    e_si = _unit(hint + (w_wall / (w_wall + w_hint)) * (_unit(e_si) - hint))
    e_si, e_ap, e_lr = _frame(e_si)
    width = np.ptp(sampler.points @ e_lr)
    half_slab = max(1.5, 0.08 * width)
    slab, a, z = sagittal_profile(sampler, center, e_si, e_ap, e_lr, half_slab)
    start, end = anterior_run(slab.mean(0))
    a_ant, a_post = a[start] - STEP_A / 2, a[end] + STEP_A / 2
    depth = a_post - a_ant
    top_x, bot_x = column_extents(slab, z)  # [x, a]: averaging dithers the voxel staircase
    if image is not None:  # CT partial volume places each endplate below a voxel
        xs = np.linspace(-half_slab, half_slab, slab.shape[0])
        voxel = sampler.resolution_along(e_si)
        top_x = refine_endplate(image, center, e_si, e_ap, e_lr, xs, a, top_x, +1.0, voxel_mm=voxel)
        bot_x = refine_endplate(image, center, e_si, e_ap, e_lr, xs, a, bot_x, -1.0, voxel_mm=voxel)
    with warnings.catch_warnings():  # columns outside the body are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        top, bot = np.nanmean(top_x, 0), np.nanmean(bot_x, 0)
    window = np.ones(5) / 5  # +-1 mm along the depth
    smooth = lambda v: np.convolve(np.nan_to_num(v, nan=np.nanmean(v[start:end + 1])), window, "same")  # noqa: E731
    top, bot = smooth(top), smooth(bot)
    pos = lambda t: int(np.clip(np.rint((a_ant + t * depth - a[0]) / STEP_A), start + 2, end - 2))  # noqa: E731
    heights = {name: float(top[pos(t)] - bot[pos(t)]) for name, t in zip(("anterior", "middle", "posterior"), KEYPOINT_T)}
    span = np.arange(pos(KEYPOINT_T[0]), pos(KEYPOINT_T[-1]) + 1)
    heights["minimum"] = float(np.min(top[span] - bot[span]))
    res = sampler.resolution_along(e_si)
    # Judge resolution against the depth: a collapsed body must not make itself unmeasurable.
    if 0.75 * depth / res < MIN_VOXELS_PER_HEIGHT:
        return Measurement(level, label, f"unmeasurable: voxels too coarse for the body's height "
                                         f"({res:.1f} mm along its axis for a ~{0.75 * depth:.0f} mm body)")
    kps = [center + (a_ant + t * depth) * e_ap + top[pos(t)] * e_si for t in KEYPOINT_T]
    kps += [center + (a_ant + t * depth) * e_ap + bot[pos(t)] * e_si for t in KEYPOINT_T]
    m.keypoints_ras = np.round(kps, 3).tolist()
    m.heights_mm = {k: round(v, 3) for k, v in heights.items()}
    m.height_uncertainty_mm = round(float(np.sqrt(2) * res / 2), 2)
    m.centroid_ras = np.round(center, 3).tolist()
    m.axes_ras = {"si": np.round(e_si, 5).tolist(), "ap": np.round(e_ap, 5).tolist()}
    return m


def heights_from_points(points: np.ndarray) -> dict:
    """Ha, Hm, Hp between paired superior and inferior points (seed 003), and their minimum."""
    h = {name: float(np.linalg.norm(points[n] - points[n + 3])) for n, name in
         enumerate(("anterior", "middle", "posterior"))}
    h["minimum"] = min(h.values())
    return h


def grade(m: Measurement, neighbour_posterior: list[float]) -> None:
    """Genant: wedge (Ha/Hp), biconcave (Hm or the lowest notch / Hp), crush (the body / neighbours' Hp).
    A crush lowers the whole body, so its loss takes the median of Ha, Hm and Hp: one short height
    alone is a wedge, a dimple, or a keypoint on a blurred corner (the back column of a small
    cervical body on 2.5 mm voxels across the spine read Hp 10.2 mm for 13.0, Ha and Hm right)."""
    h = m.heights_mm
    central = min(h["middle"], h["minimum"]) if h["minimum"] < h["anterior"] else h["middle"]
    losses = {"wedge": 1 - h["anterior"] / h["posterior"], "biconcave": 1 - central / h["posterior"]}
    m.ratios = {"Ha/Hp": round(h["anterior"] / h["posterior"], 4), "Hm/Hp": round(h["middle"] / h["posterior"], 4)}
    if len(neighbour_posterior) == 2 and max(neighbour_posterior) > NEIGHBOURS_DISAGREE * min(neighbour_posterior):
        # one neighbour is no reference (C2 with its dens, a segmentation running into the sacrum):
        # the smaller one only, so that the odd one cannot make a crush out of a normal body
        neighbour_posterior = [min(neighbour_posterior)]
    if neighbour_posterior:
        ref = float(np.mean(neighbour_posterior))
        losses["crush"] = 1 - float(np.median([h["anterior"], h["middle"], h["posterior"]])) / ref
        m.ratios["Hp/neighbours"] = round(h["posterior"] / ref, 4)
    kind = max(losses, key=losses.get)
    m.height_loss = round(max(0.0, losses[kind]), 4)
    m.genant_grade = genant_grade(m.height_loss)
    if m.height_uncertainty_mm:  # a loss of (h1 - h2) / h2 moves by about sqrt(2) x the height error / h2
        spread = float(np.sqrt(2) * m.height_uncertainty_mm / h["posterior"])
        low, high = genant_grade(max(0.0, losses[kind] - spread)), genant_grade(losses[kind] + spread)
        if low != high:
            m.genant_grade_range = [low, high]
            if m.height_uncertainty_mm > COARSE_UNCERTAINTY_MM:  # coarse voxels: the least the heights show
                m.genant_grade = low
    m.type = kind if m.genant_grade > 0 else None


def grade_chain(chain: list[Measurement]) -> None:
    """Grade a head-first chain of bodies against their measured neighbours. No fracture makes a
    body higher: one RUN_TOGETHER times as high at the back as the bodies around it (the median of
    up to two on each side, so that a crushed neighbour does not make a normal body look high) is
    two bodies in one, where a disc was not found. It is not graded, nor is it a reference for the
    bodies around it, which are looked at again without it."""
    reference = [m.status == "measured" for m in chain]
    while True:
        two_in_one = []
        for n, m in enumerate(chain):
            around = _around(chain, reference, n) if reference[n] else []
            if len(around) >= 2 and m.heights_mm["posterior"] > RUN_TOGETHER * np.median(around):
                two_in_one.append((n, m.heights_mm["posterior"] / np.median(around)))
        if not two_in_one:
            break
        for n, ratio in two_in_one:
            reference[n] = False
            chain[n].status = (f"not graded: {ratio:.1f}x as high as the bodies around it (two bodies run "
                               "together: the disc between them was not found)")
    for n, m in enumerate(chain):
        if reference[n]:
            grade(m, [chain[i].heights_mm["posterior"] for i in (n - 1, n + 1) if 0 <= i < len(chain) and reference[i]])
            around = _around(chain, reference, n)
            ratio = m.heights_mm["posterior"] / np.median(around) if around else 1.0
            if m.type in ("wedge", "biconcave") and ratio > TALL_BACK:
                m.status = (f"not graded: {ratio:.1f}x as high at the back as the bodies around it (no fracture "
                            "makes a body higher: C2's dens, or a level one off?)")
                m.genant_grade, m.genant_grade_range, m.type, m.height_loss = None, None, None, None


def _around(chain: list[Measurement], reference: list[bool], n: int, each_side: int = 2) -> list[float]:
    """Posterior heights of the nearest reference bodies, up to each_side above and below n."""
    up = [i for i in range(n - 1, -1, -1) if reference[i]][:each_side]
    down = [i for i in range(n + 1, len(chain)) if reference[i]][:each_side]
    return [chain[i].heights_mm["posterior"] for i in up + down]
