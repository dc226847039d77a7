"""The CT resampled along the spinal canal: a straightened spine, whatever the scan's orientation.

At each height the canal curve gives a local frame: `t` along the canal, `a` towards anterior
(perpendicular to `t` in the sagittal plane), `r` towards patient right. A point (u, d, l) of the
straightened volume is canal(u) + d a(u) + l r(u), in millimetres; u runs along the height of the
canal (RAS S, head first), so the bodies lie at d > 0 as a column of blocks separated by discs
whatever the scan's direction, spacing or the spine's curvature."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canal import CanalChain

STEP_MM = 1.0


@dataclass
class SpineFrame:
    """The canal curve as smooth functions of height s (RAS S), and the straightened grid."""
    s: np.ndarray  # [n] heights, head first (descending), STEP_MM apart
    centre: np.ndarray  # [n, 3] canal centre (RAS)
    t: np.ndarray  # [n, 3] unit tangent pointing up (towards the head)
    a: np.ndarray  # [n, 3] unit vector towards anterior
    r: np.ndarray  # [n, 3] unit vector towards patient right
    d_mm: np.ndarray  # sample offsets anterior of the canal centre
    l_mm: np.ndarray  # sample offsets to the right

    def to_ras(self, u, d, l) -> np.ndarray:
        """RAS of straightened coordinates (u: row index, fractional; d, l: mm)."""
        u = np.clip(np.asarray(u, float), 0, len(self.s) - 1)
        lo = np.floor(u).astype(int)
        hi = np.minimum(lo + 1, len(self.s) - 1)
        w = (u - lo)[..., None]
        pick = lambda arr: arr[lo] * (1 - w) + arr[hi] * w  # noqa: E731
        return pick(self.centre) + np.asarray(d, float)[..., None] * pick(self.a) \
            + np.asarray(l, float)[..., None] * pick(self.r)

    def to_straight(self, ras: np.ndarray, window: int = 30) -> np.ndarray:
        """(u, d, l) of RAS points: stepping along the local tangent converges for most points in
        three steps; where the rows fan out (in front of a lordosis) it may not, and those points
        take the row whose plane passes nearest, searched within `window` rows."""
        ras = np.asarray(ras, float).reshape(-1, 3)
        n = len(self.s)
        u = np.interp(-ras[:, 2], -self.s, np.arange(n))
        for _ in range(3):
            k = np.clip(np.rint(u).astype(int), 0, n - 1)
            u = k - np.einsum("ij,ij->i", ras - self.centre[k], self.t[k]) / STEP_MM  # t points up, u runs down
        out = self._coordinates(ras, u)
        stray = np.linalg.norm(self.to_ras(*out.T) - ras, axis=1) > STEP_MM / 2
        if stray.any():
            out[stray] = self._nearest_plane(ras[stray], out[stray, 0], window)
        return out

    def _coordinates(self, ras: np.ndarray, u: np.ndarray) -> np.ndarray:
        k = np.clip(np.rint(u).astype(int), 0, len(self.s) - 1)
        offset = ras - self.centre[k]
        u = k - np.einsum("ij,ij->i", offset, self.t[k]) / STEP_MM
        return np.stack([u, np.einsum("ij,ij->i", offset, self.a[k]), np.einsum("ij,ij->i", offset, self.r[k])], 1)

    def _nearest_plane(self, ras: np.ndarray, u: np.ndarray, window: int) -> np.ndarray:
        n = len(self.s)
        start = np.clip(np.rint(u), 0, n - 1).astype(int)
        ks = np.clip(start[:, None] + np.arange(-window, window + 1)[None], 0, n - 1)  # [N, K]
        offset = (ras[:, None, :] - self.centre[ks]).astype(np.float32)
        along = np.einsum("nkj,nkj->nk", offset, self.t[ks].astype(np.float32))  # out of each row's plane
        best = np.argmin(np.abs(along), axis=1)
        return self._coordinates(ras, ks[np.arange(len(ras)), best].astype(float))


def spine_frame(chain: CanalChain, margin_mm: float = 20.0, d_range=(-30.0, 90.0),
                l_range=(-60.0, 60.0)) -> SpineFrame:
    """A smooth canal curve through the chain (a low-order fit of left-right and front-back
    against height), extended `margin_mm` beyond its ends."""
    c = chain.centres_ras[np.argsort(-chain.centres_ras[:, 2])]
    top, bottom = c[0, 2] + margin_mm, c[-1, 2] - margin_mm
    s = np.arange(top, bottom - 1e-6, -STEP_MM)
    span = max(c[0, 2] - c[-1, 2], 1.0)
    degree = int(np.clip(span // 60, 1, 5)) if len(c) > 3 else 1
    # Smooth in height: a robust polynomial (two passes dropping the worst points: a stray canal
    # candidate must not bend the curve).
    keep = np.ones(len(c), bool)
    for _ in range(2):
        fits = [np.polyfit(c[keep, 2], c[keep, k], min(degree, keep.sum() - 1)) for k in (0, 1)]
        resid = np.hypot(*(c[:, k] - np.polyval(fits[k], c[:, 2]) for k in (0, 1)))
        keep = resid <= max(4.0, 2.5 * np.median(resid[keep]))
    inside = np.clip(s, c[-1, 2], c[0, 2])  # beyond the chain: continue along the end tangent
    xy = np.stack([np.polyval(f, inside) for f in fits], 1)
    slope = np.stack([np.polyval(np.polyder(f), inside) for f in fits], 1) if degree else np.zeros((len(s), 2))
    xy = xy + slope * (s - inside)[:, None]
    centre = np.column_stack([xy, s])
    t = np.column_stack([slope, np.ones(len(s))])
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    anterior = np.array([0.0, 1.0, 0.0])
    a = anterior - (t @ anterior)[:, None] * t
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    r = np.cross(a, t)  # anterior x up = right in RAS
    return SpineFrame(s, centre, t, a, r, np.arange(d_range[0], d_range[1] + 1e-6, STEP_MM),
                      np.arange(l_range[0], l_range[1] + 1e-6, STEP_MM))


def straightened_ijk(volume, frame: SpineFrame, u, d, l) -> np.ndarray:
    """[N, 3] voxel coordinates (i, j, k) of straightened points (u: rows; d, l: mm)."""
    return volume.ras_to_ijk_points(frame.to_ras(u, d, l).reshape(-1, 3))


def sample_hu(volume, ijk: np.ndarray, fill: float = -1024.0) -> np.ndarray:
    """Trilinear HU at voxel coordinates; `fill` outside the scan."""
    return ndimage.map_coordinates(volume.voxels, ijk[:, ::-1].T, order=1, mode="constant", cval=fill)


def in_grid(volume, ijk: np.ndarray) -> np.ndarray:
    return np.all((ijk >= -0.5) & (ijk <= np.array(volume.shape_ijk) - 0.5), axis=1)


def straighten(volume, frame: SpineFrame, fill: float = -1024.0) -> np.ndarray:
    """HU on the straightened grid [u, d, l] (trilinear; `fill` outside the scan). Whole rows need
    no interpolation between rows: each row's plane maps to voxels as origin + d a' + l r'."""
    to_ijk = np.linalg.inv(volume.ijk_to_ras)
    origin = frame.centre @ to_ijk[:3, :3].T + to_ijk[:3, 3]  # [n, 3] (i, j, k)
    a, r = frame.a @ to_ijk[:3, :3].T, frame.r @ to_ijk[:3, :3].T
    d, l = frame.d_mm.astype(np.float32), frame.l_mm.astype(np.float32)
    out = np.empty((len(frame.s), len(d), len(l)), np.float32)
    for start in range(0, len(frame.s), 64):  # in slabs: the coordinates are 3 floats a sample
        part = slice(start, start + 64)
        kji = np.stack([origin[part, None, None, axis].astype(np.float32)
                        + d[None, :, None] * a[part, None, None, axis].astype(np.float32)
                        + l[None, None, :] * r[part, None, None, axis].astype(np.float32) for axis in (2, 1, 0)])
        out[part] = ndimage.map_coordinates(volume.voxels, kji.reshape(3, -1), order=1, mode="constant",
                                            cval=fill).reshape(out[part].shape)
    return out

