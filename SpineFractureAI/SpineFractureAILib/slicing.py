"""SliceStack: patient-aligned 2D slices of a Volume, each with an exact pixel->RAS map.

Planes are defined in RAS, not by the volume's voxel axes, so an oblique, flipped or
sagittally acquired volume yields the same sagittal images of the same anatomy.
Pixel coordinates are continuous, YOLO-style: pixel ``c`` covers ``[c, c+1)``; slice
``s`` lies at integer ``s``. ``stack_to_ras @ (col, row, s, 1)`` gives RAS.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .progress import Cancelled
from .volume import Volume

# (column axis, row axis, slice axis) in RAS. Sagittal: anterior on the left, head up.
PLANES = {
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
    "axial": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),  # slice 0 = most superior
    "coronal": ((-1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
}


@dataclass
class Intensity:
    """How voxel values become 0..1 pixels: a CT window in HU or MR percentiles."""
    kind: str = "ct_window"  # "ct_window" | "percentile"
    low: float = -250.0  # HU, or a percentile
    high: float = 1250.0

    @classmethod
    def from_manifest(cls, spec: dict) -> "Intensity":
        if spec.get("type") == "ct_window":
            c, w = float(spec["center"]), float(spec["width"])
            return cls("ct_window", c - w / 2, c + w / 2)
        if spec.get("type") == "percentile":
            return cls("percentile", float(spec.get("low", 1.0)), float(spec.get("high", 99.5)))
        raise ValueError(f"unknown intensity normalisation {spec!r}")

    def limits(self, volume: Volume) -> tuple[float, float]:
        if self.kind == "ct_window":
            return self.low, self.high
        step = max(1, int(round((volume.voxels.size / 4e6) ** (1 / 3))))
        sample = volume.voxels[::step, ::step, ::step]
        lo, hi = np.percentile(sample[sample > sample.min()] if (sample > sample.min()).any() else sample,
                               [self.low, self.high])
        return float(lo), float(max(hi, lo + 1e-3))


@dataclass
class SliceStack:
    images: np.ndarray  # [n, S, S] uint8
    stack_to_ras: np.ndarray  # 4x4: (col, row, slice, 1) -> RAS
    plane: str
    pixel_mm: float
    slice_mm: float

    @property
    def size(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def to_ras(self, slice_index, col, row) -> np.ndarray:
        pts = np.stack(np.broadcast_arrays(np.asarray(col, float), np.asarray(row, float),
                                           np.asarray(slice_index, float)), -1)
        return pts @ self.stack_to_ras[:3, :3].T + self.stack_to_ras[:3, 3]

    def from_ras(self, ras) -> np.ndarray:
        """(col, row, slice) continuous coordinates of RAS points."""
        inv = np.linalg.inv(self.stack_to_ras)
        return np.asarray(ras, float) @ inv[:3, :3].T + inv[:3, 3]


def plan_stack(volume: Volume, plane: str, size: int, slice_mm: float | None = None,
               pixel_mm: float | None = None) -> tuple[np.ndarray, int, float, float]:
    """The stack_to_ras matrix and slice count that cover the volume in `plane`."""
    u, v, w = (np.array(a) for a in PLANES[plane])
    n_i, n_j, n_k = volume.shape_ijk
    corners = np.array([[i, j, k] for i in (-0.5, n_i - 0.5) for j in (-0.5, n_j - 0.5)
                        for k in (-0.5, n_k - 0.5)])
    ras = volume.ijk_to_ras_points(corners)
    proj = ras @ np.stack([u, v, w]).T
    lo, hi = proj.min(0), proj.max(0)
    span = hi - lo
    pixel = float(pixel_mm or max(span[0], span[1]) / size)
    if slice_mm is None:  # the volume's own spacing along the slice axis
        axis_steps = np.abs(volume.ijk_to_ras[:3, :3].T @ w)
        slice_mm = float(axis_steps.max())
    n = max(1, int(np.floor(span[2] / slice_mm + 1e-6)))
    start = lo + np.array([(span[0] - size * pixel) / 2, (span[1] - size * pixel) / 2,
                           (span[2] - (n - 1) * slice_mm) / 2])
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2] = u * pixel, v * pixel, w * slice_mm
    m[:3, 3] = start[0] * u + start[1] * v + start[2] * w
    return m, n, pixel, float(slice_mm)


def make_stack(volume: Volume, plane: str = "sagittal", size: int = 256,
               intensity: Intensity | None = None, slice_mm: float | None = None,
               pixel_mm: float | None = None, slices: range | None = None,
               batch: int = 32, cancelled=None, only=None, plan=None) -> SliceStack:
    """Resample `volume` into `plane` slices of size x size isotropic pixels (uint8).

    slices: an evenly spaced subset that becomes the stack; only: indices to fill in a full stack
    (the others stay black), e.g. just the slices that contain bone."""
    intensity = intensity or Intensity()
    m, n, pixel, slice_mm = plan or plan_stack(volume, plane, size, slice_mm, pixel_mm)
    lo, hi = intensity.limits(volume)
    chosen = list(slices if slices is not None else range(n))
    images = np.zeros((len(chosen), size, size), np.uint8)
    fill = np.arange(len(chosen)) if only is None else np.asarray(sorted(only), int)
    for b in range(0, len(fill), batch):
        if cancelled is not None and cancelled():
            raise Cancelled()
        part = fill[b:b + batch]
        images[part] = _sample(volume, m, np.array([chosen[i] for i in part]), size, lo, hi)
    if slices is not None and chosen != list(range(n)):  # keep the map exact for a subset
        m = m.copy()
        if len(chosen) > 1 and np.all(np.diff(chosen) == chosen[1] - chosen[0]):
            m[:3, 3] = m[:3, 3] + m[:3, 2] * chosen[0]
            m[:3, 2] = m[:3, 2] * (chosen[1] - chosen[0])
            slice_mm *= chosen[1] - chosen[0]
        elif len(chosen) == 1:
            m[:3, 3] = m[:3, 3] + m[:3, 2] * chosen[0]
        else:
            raise ValueError("a subset of slices must be evenly spaced")
    return SliceStack(images, m, plane, pixel, slice_mm)


def coarse_stack(volume: Volume, plane: str, size: int, intensity: Intensity, slice_mm=None,
                 factor: int = 4, cancelled=None) -> SliceStack:
    """The same slices as make_stack(volume, plane, size, ...) at size // factor pixels, sampled
    from a 2x-strided view of the volume: a cheap look at every slice (e.g. to find bone)."""
    m, n, pixel, slice_mm = plan_stack(volume, plane, size, slice_mm)
    m = m.copy()
    m[:3, :2] *= factor
    step = np.diag([2.0, 2.0, 2.0, 1.0])
    strided = Volume(volume.voxels[::2, ::2, ::2], volume.ijk_to_ras @ step, volume.modality, volume.name)
    lo_hi = Intensity("ct_window", *intensity.limits(volume))  # same window as the full pass
    return make_stack(strided, plane, size // factor, lo_hi, cancelled=cancelled,
                      plan=(m, n, pixel * factor, slice_mm))


def _sample(volume: Volume, m: np.ndarray, slice_idx: np.ndarray, size: int, lo: float, hi: float):
    """Trilinear samples at pixel centres of the given slices, on a crop of the volume."""
    r2i = volume.ras_to_ijk @ m  # stack -> ijk: affine, so the crop follows from the corners
    edge = [0.5, size - 0.5]
    corners = np.array([[c, r, s, 1.0] for c in edge for r in edge for s in (slice_idx.min(), slice_idx.max())])
    ijk_corners = corners @ r2i[:3].T
    shape = np.array(volume.shape_ijk)
    cmin, cmax = ijk_corners.min(0), ijk_corners.max(0)
    start = np.clip(np.floor(cmin).astype(int) - 1, 0, shape - 1)
    stop = np.clip(np.ceil(cmax).astype(int) + 2, 1, shape)
    if np.any(stop - start < 1) or np.any(cmax < -1) or np.any(cmin > shape):
        return np.zeros((len(slice_idx), size, size), np.uint8)
    stop = np.maximum(stop, start + 2)
    pad = np.maximum(stop - shape, 0)  # a 1-voxel-thick axis still needs two samples
    start = np.maximum(start - pad, 0)
    stop = np.minimum(stop, shape)
    crop = volume.voxels[start[2]:stop[2], start[1]:stop[1], start[0]:stop[0]]
    norm = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
    norm = ((norm - lo) / (hi - lo)).clamp_(0, 1)
    extent = np.array(norm.shape[::-1], dtype=np.float64)  # (i, j, k) sizes
    # grid_sample's [-1, 1] coordinates are affine in (col, row, slice) too: one pass builds them
    scale = 2.0 / np.maximum(extent - 1, 1)
    g = (r2i[:3] * scale[:, None]).astype(np.float32)
    g[:, 3] = (r2i[:3, 3] - start) * scale - 1
    c = np.arange(size, dtype=np.float32) + 0.5
    s = slice_idx.astype(np.float32)
    grid = (c[None, None, :, None] * g[:, 0] + c[None, :, None, None] * g[:, 1]
            + s[:, None, None, None] * g[:, 2] + g[:, 3])
    out = F.grid_sample(norm[None, None], torch.from_numpy(grid)[None], mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return (out[0, 0] * 255 + 0.5).to(torch.uint8).numpy()


def stack_labels_to_volume(stack: SliceStack, labels: dict[int, np.ndarray], volume: Volume,
                           chunk: int = 16) -> np.ndarray:
    """Carry per-slice label images ({slice: [S,S] uint}) onto the volume's whole voxel grid."""
    out = np.zeros(volume.voxels.shape, np.uint16)
    box, sub = stack_labels_to_box(stack, labels, volume, chunk=chunk)
    if sub is not None:
        out[box] = sub
    return out


def stack_labels_to_box(stack: SliceStack, labels: dict[int, np.ndarray], volume: Volume, pad: int = 0,
                        chunk: int = 16) -> tuple[tuple, np.ndarray | None]:
    """The same, on just the box of the grid the labelled pixels reach (grown by `pad` voxels
    where the grid allows): (box as (k, j, i) slices, labels in it), or ((), None) if empty.

    Each voxel takes the label of the pixel it falls in on its nearest slice."""
    pts = []
    for s, img in labels.items():
        rows, cols = np.nonzero(img)
        if rows.size:
            for cc in (cols.min(), cols.max() + 1):
                for rr in (rows.min(), rows.max() + 1):
                    for ds in (-0.5, 0.5):
                        pts.append((cc, rr, s + ds))
    if not pts:
        return (), None
    ijk = volume.ras_to_ijk_points(stack.to_ras(*np.array(pts, float).T[[2, 0, 1]]))
    shape = np.array(volume.shape_ijk)
    lo = np.clip(np.floor(ijk.min(0)).astype(int) - pad, 0, shape)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 1 + pad, 0, shape)
    if np.any(hi <= lo):
        return (), None
    size = stack.size
    first, last = min(labels), max(labels)
    dense = np.zeros((last - first + 1, size, size), np.uint16)  # one lookup instead of a loop
    for s, img in labels.items():
        dense[s - first] = img
    ras_to_stack = np.linalg.inv(stack.stack_to_ras) @ volume.ijk_to_ras
    sub = np.zeros((hi[2] - lo[2], hi[1] - lo[1], hi[0] - lo[0]), np.uint16)
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]), indexing="xy")
    for k0 in range(lo[2], hi[2], chunk):
        ks = np.arange(k0, min(k0 + chunk, hi[2]))
        kk = np.broadcast_to(ks[:, None, None], (len(ks),) + ii.shape)
        ijk_pts = np.stack([np.broadcast_to(ii, kk.shape), np.broadcast_to(jj, kk.shape), kk], -1)
        crs = ijk_pts.reshape(-1, 3) @ ras_to_stack[:3, :3].T + ras_to_stack[:3, 3]
        col = np.floor(crs[:, 0]).astype(int)
        row = np.floor(crs[:, 1]).astype(int)
        sl = np.rint(crs[:, 2]).astype(int)
        value = np.zeros(len(crs), np.uint16)
        sel = (sl >= first) & (sl <= last) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
        value[sel] = dense[sl[sel] - first, row[sel], col[sel]]
        sub[ks[0] - lo[2]:ks[-1] + 1 - lo[2]] = value.reshape(kk.shape)
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    return box, sub


def sample_labels(labels: Volume, stack: SliceStack, slices=None) -> np.ndarray:
    """Nearest-neighbour labels of `labels` at every pixel centre of `stack` (or of the listed
    slices only): [n, S, S]."""
    size = stack.size
    c = np.arange(size, dtype=np.float64) + 0.5
    cols, rows = np.meshgrid(c, c)
    r2i = labels.ras_to_ijk @ stack.stack_to_ras
    shape = np.array(labels.shape_ijk)
    slices = range(len(stack)) if slices is None else list(slices)
    out = np.zeros((len(slices), size, size), labels.voxels.dtype)
    for n, s in enumerate(slices):
        ijk = (cols[..., None] * r2i[:3, 0] + rows[..., None] * r2i[:3, 1] + s * r2i[:3, 2] + r2i[:3, 3])
        idx = np.rint(ijk).astype(int)
        inside = np.all((idx >= 0) & (idx < shape), axis=-1)
        out[n][inside] = labels.voxels[idx[inside][:, 2], idx[inside][:, 1], idx[inside][:, 0]]
    return out
