"""Vertebral bodies on CT found without a model, in front of the spinal canal.

On the straightened spine (spine/straighten.py) the bodies are a column of bone blocks in front of
the canal, between the discs that spine/discs.py finds. Each body is the bone between two discs:
its cortical ring, filled, cut off behind at the canal's front wall; what runs on through the discs
(a vessel with contrast) is not body. A wide block below the last disc is the sacrum."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .body_edges import trim_back, trim_to_endplates
from .discs import (BONE_HU, CORE_D_MM, CORE_L_MM, DISC_D_MM, choose_discs, disc_dips, disc_line,
                    endplate_profile, endplate_spread, front_wall_gap, half_way)
from .straighten import SpineFrame

MARROW_HU = 95.0  # marrow of a thin cortex on a low-dose scan: above muscle (~50), below cortex
MARROW_CLIP_HU = 250.0  # trabecular bone reads up to about this; brighter is cortex
# the sacral alae (real CT: 94 mm; phantoms 90-104) against the widest L4-L5 with its transverse
# processes and the iliac wings beside it (phantoms up to 79: L5 at the end of a T10-L5 scan, seed
# 990011, was taken for the sacrum and every name counted one level too low; real L5: 60)
SACRUM_WIDTH_MM = 85.0
# Between the two a last block may be a small or cut sacrum (seed 1030011, T12-S1 stored sagittal:
# 84.5) or an L5 beside the iliac wings (990011: 79): only a count with no rib to go by takes it.
PROBABLE_SACRUM_MM = 75.0
SACRAL_SEGMENT = 0.75  # a wide block shorter than this against the body above: the sacrum's first segment
BODY_L_MM = 35.0  # no body is wider than 70 mm
VESSEL_MIN_RADIUS_MM = 4  # a vessel through the discs is wider than 8 mm (aorta ~25, IVC ~20)
OPEN_RADIUS = 3  # voxels (mm): the opening that cuts a neck narrower than ~6 mm
VESSEL_HU = 120.0  # contrast blood reads 150-400 HU; noise takes a 150 HU aorta under BONE_HU in patches


@dataclass
class FoundBody:
    top_u: float  # disc centres (or the scan's edge) above and below, straightened rows
    bottom_u: float
    cut: bool  # reaches the edge of the scan: not measurable
    mask: np.ndarray = field(repr=False, default=None)  # [u, d, l] of the straightened grid
    centre_ras: np.ndarray = None
    depth_mm: float = 0.0
    width_mm: float = 0.0


@dataclass
class SpineBodies:
    frame: SpineFrame
    discs_u: list[int]
    bodies: list[FoundBody]  # head first
    sacrum: FoundBody | None  # the block below the last disc, when it is the sacrum
    probable_sacrum: bool = False  # no sacrum, but the last body spreads PROBABLE_SACRUM_MM or more


def _posterior_wall(straight: np.ndarray, frame: SpineFrame, rows: slice) -> float:
    """The canal's front wall (the body's back wall), d in mm: the first bone in front of the
    canal centre on the midline, median over the body's rows."""
    mid = straight[rows][:, :, np.abs(frame.l_mm) <= 2].mean(2)
    ahead = frame.d_mm >= 0
    walls = []
    for row in mid:
        hits = np.flatnonzero((row > MARROW_HU) & ahead)
        if len(hits):
            walls.append(frame.d_mm[hits[0]])
    return float(np.median(walls)) if walls else 8.0


def through_discs(straight: np.ndarray, frame: SpineFrame, discs: list[tuple[float, float]]) -> np.ndarray:
    """[d, l] columns over VESSEL_HU in the middle of every given disc (row at DISC_D_MM, slope), in
    compact blobs away from the body's core: a vessel with contrast (touching the body over more than
    body_mask's opening cuts) runs on through the disc, a body does not. A thin osteophyte bridge is
    no blob; a disc row that grazes an endplate reaches the core and is ignored."""
    d_off = frame.d_mm - DISC_D_MM
    columns = np.arange(len(frame.d_mm))
    bright = []
    for row, slope in discs:
        u = np.round(row + slope * d_off).astype(int)
        if u.min() >= 0 and u.max() < len(straight):
            bright.append(ndimage.gaussian_filter(straight[u, columns, :], 0.7) > VESSEL_HU)
    if not bright:
        return np.zeros(straight.shape[1:], bool)
    tube = ndimage.binary_opening(np.logical_and.reduce(bright), iterations=VESSEL_MIN_RADIUS_MM)
    parts, count = ndimage.label(tube)
    core = (frame.d_mm[:, None] >= CORE_D_MM[0]) & (frame.d_mm[:, None] <= CORE_D_MM[1]) & \
        (np.abs(frame.l_mm)[None, :] <= CORE_L_MM)
    for n in np.unique(parts[core & (parts > 0)]):
        tube[parts == n] = False
    return ndimage.binary_dilation(tube, iterations=2)


def _vessels_beside(straight, frame: SpineFrame, lines: dict, edges: list, n: int) -> np.ndarray:
    """[d, l] columns of a vessel beside body n (between edges n and n + 1): through both its discs,
    or through one of them and the next disc beyond it (the aorta ends at its bifurcation in L4's
    rows: through L2-L3 and L3-L4 but not L4-L5, it had joined L4 over 70 mm of width). A body at
    the scan's edge has one disc: what is bright there is taken, as before."""
    discs = [u for u, edge in edges if not edge]
    own = [discs.index(u) for u, edge in edges[n:n + 2] if not edge]
    groups = [own]
    if len(own) == 2:
        groups += [[k, k + step] for k, step in zip(own, (-1, 1)) if 0 <= k + step < len(discs)]
    out = np.zeros(straight.shape[1:], bool)
    for group in groups:
        out |= through_discs(straight, frame, [lines[discs[k]] for k in group])
    return out


def body_mask(straight: np.ndarray, frame: SpineFrame, top: tuple[float, float],
              bottom: tuple[float, float], not_body: np.ndarray | None = None) -> np.ndarray | None:
    """The body between the disc planes top and bottom (row at DISC_D_MM, slope): per row the bone
    ring in front of the canal wall, closed and filled; the 3D part that holds the body's core, its
    endplate rows trimmed to those at least half bone (trim_to_endplates).
    not_body: [d, l] columns left out (what runs on through the discs: through_discs)."""
    d_off = frame.d_mm - DISC_D_MM
    upper, lower = top[0] + top[1] * d_off, bottom[0] + bottom[1] * d_off  # per column d
    first = max(int(np.floor(max(upper.min(), 0))), 0)
    last = min(int(np.ceil(lower.max())), len(straight) - 1)
    rows = slice(first, last + 1)
    uu = np.arange(first, last + 1)[:, None]
    between_discs = (uu >= upper[None]) & (uu <= lower[None])  # [u, d]
    wall = _posterior_wall(straight, frame, slice(int(top[0]) + 2, max(int(bottom[0]) - 1, int(top[0]) + 3)))
    keep_d = frame.d_mm >= wall - 1.0
    keep_l = np.abs(frame.l_mm) <= BODY_L_MM
    if not keep_d.any():
        return None
    # Work in the window a body can fill (plus the ball's reach): the same mask, a third of the voxels.
    dw, lw = (_window(keep, OPEN_RADIUS) for keep in (keep_d, keep_l))
    smooth, marrow = _filtered(straight[rows], dw, lw)
    block = (smooth > BONE_HU) | (marrow > MARROW_HU)
    block &= keep_d[dw][None, :, None] & keep_l[lw][None, None, :] & between_discs[:, dw, None]
    if not_body is not None:
        block &= ~not_body[None, dw, lw]
    # Dark (osteoporotic) marrow under a thin cortex: what lies between the two endplates is body.
    # (Not the inside of each row's cortical ring: where a biconcave endplate has sunk, the disc
    # fills the middle of the rim's ring, and filling the ring would hide the fracture.)
    block |= _between(block, 0)
    # a neck narrower than ~6 mm (the aorta or a psoas edge leaning on the body) is cut here and
    # grown back only on the body's side
    ball = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), OPEN_RADIUS)
    ball[[0, -1]] = False  # not along u: the body's rows are already bounded by its discs
    opened = ndimage.binary_opening(block, ball)
    parts, count = ndimage.label(opened)
    if not count:
        return None
    d0 = np.argmin(np.abs(frame.d_mm - (wall + 6.0))) - dw.start
    l0 = np.argmin(np.abs(frame.l_mm)) - lw.start
    if not (0 <= d0 < block.shape[1] and 0 <= l0 < block.shape[2]):
        return None  # outside the window block is empty: no core there
    core = parts[:, d0, l0]
    if not core.any():
        return None
    label = np.bincount(core[core > 0]).argmax()
    mask = np.zeros(straight.shape, bool)
    hu = straight[rows, dw, lw]
    grown = trim_to_endplates(ndimage.binary_dilation(parts == label, ball) & block, hu)
    mask[rows, dw, lw] = trim_back(grown, hu)
    return mask


def _window(keep: np.ndarray, margin: int) -> slice:
    """The span of `keep` widened by margin, within the axis."""
    on = np.flatnonzero(keep)
    return slice(max(int(on[0]) - margin, 0), min(int(on[-1]) + margin + 1, len(keep)))


def _filtered(rows: np.ndarray, dw: slice, lw: slice) -> tuple[np.ndarray, np.ndarray]:
    """The two blurs of body_mask over the window [:, dw, lw], equal to blurring the whole rows
    (computed on the window widened by the filters' reach, which reflects at the true edges only)."""
    reach = 7  # gaussian_filter's truncate 4 x sigma 1.5, rounded up
    outer = [slice(max(w.start - reach, 0), min(w.stop + reach, n)) for w, n in zip((dw, lw), rows.shape[1:])]
    part = rows[:, outer[0], outer[1]]
    inner = (slice(None), slice(dw.start - outer[0].start, dw.stop - outer[0].start),
             slice(lw.start - outer[1].start, lw.stop - outer[1].start))
    smooth = ndimage.gaussian_filter(part, (0.0, 0.7, 0.7))[inner]
    # the cortical ring (filled below), or marrow where the cortex is too thin to ring it
    # (the cortex is clipped before the marrow's blur: 800 HU bled into the disc beside it, a biconcave
    # endplate's dimple came out as bone and every body about 2 mm high)
    marrow = ndimage.gaussian_filter(np.minimum(part, MARROW_CLIP_HU), (0.0, 1.5, 1.5))[inner]
    return smooth, marrow


def _between(mask: np.ndarray, axis: int) -> np.ndarray:
    """Pixels with mask on both sides along one axis."""
    return np.maximum.accumulate(mask, axis) & np.flip(np.maximum.accumulate(np.flip(mask, axis), axis), axis)


def find_bodies(straight: np.ndarray, frame: SpineFrame) -> SpineBodies:
    profile, valid = endplate_profile(straight, frame)
    discs = choose_discs(disc_dips(profile, valid), front_wall_gap(straight, frame), endplate_spread(profile), profile)
    rows = np.flatnonzero(valid)
    if not len(rows):
        return SpineBodies(frame, [], [], None)
    edges = [(int(rows[0]), True)] + [(u, False) for u in discs] + [(int(rows[-1]), True)]
    lines = {u: disc_line(straight, frame, u, half_way(discs, n)) for n, u in enumerate(discs)}
    found = []
    for n, ((a, a_edge), (b, b_edge)) in enumerate(zip(edges, edges[1:])):
        if b - a < 6:
            continue
        top = (float(a), 0.0) if a_edge else lines[a]
        bottom = (float(b), 0.0) if b_edge else lines[b]
        vessels = _vessels_beside(straight, frame, lines, edges, n)
        mask = body_mask(straight, frame, (top[0] + (0 if a_edge else 2), top[1]),
                         (bottom[0] - (0 if b_edge else 2), bottom[1]), vessels)
        if mask is None or mask.sum() < 300:  # mm^3: less than a sliver of a body
            continue
        uu, dd, ll = np.nonzero(mask)
        # cut only where its bone runs into the scan's first or last rows (not a disc's gap)
        cut = (a_edge and uu.min() <= a + 1) or (b_edge and uu.max() >= b - 1)
        body = FoundBody(a, b, bool(cut), mask)
        body.centre_ras = frame.to_ras(uu.mean(), frame.d_mm[dd].mean(), frame.l_mm[ll].mean())
        body.depth_mm = float(np.ptp(frame.d_mm[dd]) + 1)
        body.width_mm = float(np.ptp(frame.l_mm[ll]) + 1)
        found.append(body)
    sacrum = take_sacrum(straight, frame, found, discs)
    probable = sacrum is None and bool(found) and bool(discs) and found[-1].top_u == discs[-1] \
        and _sacral_width(straight, frame, found[-1]) >= PROBABLE_SACRUM_MM
    return SpineBodies(frame, discs, found, sacrum, probable)


def take_sacrum(straight: np.ndarray, frame: SpineFrame, found: list[FoundBody],
                discs: list[int]) -> FoundBody | None:
    """The block below the last disc, when its alae spread sideways (taken off `found`). Or the block
    above it, when that one is as wide and much shorter than the body above it, and the scan ends in
    the last block: a line between two sacral segments (a remnant S1-S2 disc) was taken for a disc;
    both blocks are the sacrum and that line leaves `discs`."""
    if not found or not discs or found[-1].top_u != discs[-1]:
        return None
    last = _sacral_width(straight, frame, found[-1])
    if last >= SACRUM_WIDTH_MM:
        return found.pop()
    if len(found) < 3 or len(discs) < 2 or found[-2].top_u != discs[-2] or not found[-1].cut:
        return None
    upper_height = found[-2].bottom_u - found[-2].top_u
    if (upper_height > SACRAL_SEGMENT * (found[-3].bottom_u - found[-3].top_u)
            or _sacral_width(straight, frame, found[-2]) < SACRUM_WIDTH_MM):
        return None  # a lumbar body (its transverse processes can be as wide) over a cut one
    lower, upper = found.pop(), found.pop()
    discs.pop()
    return FoundBody(upper.top_u, lower.bottom_u, True, upper.mask | lower.mask, upper.centre_ras,
                     upper.depth_mm, max(upper.width_mm, lower.width_mm))


def _sacral_width(straight: np.ndarray, frame: SpineFrame, body: FoundBody) -> float:
    """How far bone spreads sideways from a block 5-20 mm below its top (the median over those
    rows; 0 if none): the sacrum's alae span more than SACRUM_WIDTH_MM."""
    rows = slice(int(body.top_u) + 5, int(body.top_u) + 21)
    if rows.start >= len(straight):
        return 0.0
    d_in = (frame.d_mm >= 0) & (frame.d_mm <= 25)
    bone = (ndimage.gaussian_filter(straight[rows][:, d_in], (0, 1, 1)) > BONE_HU).any(1)  # [u, l]
    widths = []
    l0 = int(np.argmin(np.abs(frame.l_mm)))
    for row in bone:
        parts, _ = ndimage.label(ndimage.binary_closing(row, iterations=3))
        if parts[l0]:
            span = np.flatnonzero(parts == parts[l0])
            widths.append(float(frame.l_mm[span[-1]] - frame.l_mm[span[0]]))
    return float(np.median(widths)) if widths else 0.0
