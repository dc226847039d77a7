"""Pose-model keypoints across sagittal slices -> six RAS points, heights and a grade per body."""
from __future__ import annotations

import numpy as np

from .fusion import Track
from .morphometry import Measurement, grade
from .scene_morphometry import heights_from_points
from .slicing import SliceStack


def track_keypoints(stack: SliceStack, track: Track, visibility: float) -> np.ndarray | None:
    """Mean RAS of the six points over the slices where the model saw all six (the mid-sagittal
    slices of that body); None when no slice shows them."""
    seen = [stack.to_ras(s, kp[:, 0], kp[:, 1]) for s, *_, kp in track.members
            if kp is not None and len(kp) == 6 and np.all(kp[:, 2] >= visibility)]
    return np.mean(seen, axis=0) if seen else None


def keypoint_rows(stack: SliceStack, tracks: list[Track], detections, visibility: float, source: str) -> list[dict]:
    found = []
    for track in tracks:
        kps = track_keypoints(stack, track, visibility)
        if kps is not None:
            found.append(kps)
    found.sort(key=lambda k: -k[:, 2].mean())  # top-down by RAS S
    measured = []
    for n, kps in enumerate(found):
        measured.append(Measurement(f"#{n + 1} from top", n + 1, keypoints_ras=np.round(kps, 3).tolist(),
                                    heights_mm={k: round(v, 3) for k, v in heights_from_points(kps).items()}))
    for n, m in enumerate(measured):
        grade(m, [measured[i].heights_mm["posterior"] for i in (n - 1, n + 1) if 0 <= i < len(measured)])
    return [{"kind": "vertebra", "method": "keypoints", "source": source, **m.to_json()} for m in measured]
