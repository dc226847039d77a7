"""Per-slice instances linked across slices into 3D tracks, their masks on the volume grid and aligned ROIs."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .predictors import SliceDetections
from .results import Roi
from .slicing import SliceStack, stack_labels_to_box
from .volume import Volume


@dataclass
class Track:
    """One object followed across neighbouring slices: [(slice, box, class, score, mask, keypoints)]."""
    members: list = field(default_factory=list)

    @property
    def last_slice(self) -> int:
        return self.members[-1][0]

    @property
    def last_box(self) -> np.ndarray:
        return self.members[-1][1]

    def mean_scores(self, n_classes: int) -> np.ndarray:
        """Per class, its summed score over the track / slices spanned."""
        sums = np.zeros(n_classes)
        for _, _, cls, score, *_ in self.members:
            sums[cls] += score
        return sums / len(self.members)

    def vote(self, n_classes: int) -> tuple[int, float]:
        """The class with the largest summed score; confidence = its mean score over the slices spanned."""
        means = self.mean_scores(n_classes)
        best = int(np.argmax(means))
        return best, float(means[best])

    def slices(self) -> list[int]:
        return [m[0] for m in self.members]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def link_detections(per_slice: list[SliceDetections], iou_min: float = 0.3, max_gap: int = 1) -> list[Track]:
    """Greedy class-agnostic linking by box IoU between nearby slices (a vertebra's type may
    differ between its edge and central slices; the track votes on it afterwards)."""
    finished: list[Track] = []
    active: list[Track] = []
    for det in sorted(per_slice, key=lambda d: d.slice_index):
        s = det.slice_index
        still = [t for t in active if s - t.last_slice <= max_gap + 1]
        finished += [t for t in active if s - t.last_slice > max_gap + 1]
        active = still
        pairs = sorted(((box_iou(t.last_box, det.boxes[n]), ti, n) for ti, t in enumerate(active)
                        for n in range(len(det.boxes))), reverse=True)
        used_t, used_n = set(), set()
        for iou, ti, n in pairs:
            if iou < iou_min or ti in used_t or n in used_n:
                continue
            used_t.add(ti)
            used_n.add(n)
            active[ti].members.append(_member(det, n))
        for n in range(len(det.boxes)):
            if n not in used_n:
                active.append(Track([_member(det, n)]))
    return finished + active


def _member(det: SliceDetections, n: int) -> tuple:
    kp = det.keypoints[n] if det.keypoints is not None and len(det.keypoints) else None
    return det.slice_index, det.boxes[n], int(det.classes[n]), float(det.scores[n]), det.masks[n], kp


def tracks_to_box(stack: SliceStack, tracks: list[Track], volume: Volume, pad: int = 3):
    """Instance labels (track index + 1) on the box of the grid the tracks reach: (box, sub)."""
    images: dict[int, np.ndarray] = {}
    for n, track in enumerate(tracks):
        for s, _, _, _, mask, _ in track.members:
            img = images.setdefault(s, np.zeros((stack.size, stack.size), np.uint16))
            img[mask & (img == 0)] = n + 1
    return stack_labels_to_box(stack, images, volume, pad=pad)


def roi_from_mask_slices(volume: Volume, obj: tuple) -> Roi:
    """A box along the volume axes enclosing voxel slices (k, j, i) from find_objects."""
    lo = np.array([obj[2].start, obj[1].start, obj[0].start], float) - 0.5
    hi = np.array([obj[2].stop, obj[1].stop, obj[0].stop], float) - 0.5
    return roi_from_ijk_box(volume, lo, hi)


def roi_from_ijk_box(volume: Volume, lo, hi) -> Roi:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    center = volume.ijk_to_ras_points((lo + hi) / 2)[0]
    spacing = volume.spacing
    axes = (volume.ijk_to_ras[:3, :3] / spacing[None, :]).T
    return Roi(np.round(center, 4).tolist(), np.round((hi - lo) * spacing, 4).tolist(),
               np.round(axes, 6).tolist())


def track_rois(volume: Volume, stack: SliceStack, tracks: list[Track], box: tuple, sub) -> list[Roi]:
    """One ROI per track: from its voxels, or from its 2D boxes when it maps to no voxel."""
    objects = ndimage.find_objects(sub, max_label=len(tracks)) if sub is not None else [None] * len(tracks)
    rois = []
    for n, track in enumerate(tracks):
        if objects[n] is not None:
            shifted = tuple(slice(o.start + b.start, o.stop + b.start) for o, b in zip(objects[n], box))
            rois.append(roi_from_mask_slices(volume, shifted))
            continue
        corners = [(s + ds, x, y) for s, box2d, *_ in track.members for ds in (-0.5, 0.5)
                   for x in (box2d[0], box2d[2]) for y in (box2d[1], box2d[3])]
        ijk = volume.ras_to_ijk_points(stack.to_ras(*np.array(corners).T))
        rois.append(roi_from_ijk_box(volume, ijk.min(0), ijk.max(0)))
    return rois
