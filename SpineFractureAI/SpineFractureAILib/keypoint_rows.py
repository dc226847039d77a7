"""Pose-model keypoints across sagittal slices -> six RAS points, heights and a grade per body."""
from __future__ import annotations

import numpy as np

from .slice_tracks import Track
from .morphometry import Measurement, grade, heights_from_points
from .results import VertebraRow
from .slicing import SliceStack


def track_keypoints(stack: SliceStack, track: Track, visibility: float, best: int = 2) -> np.ndarray | None:
    """Mean RAS of the six points over the `best` slices where the model was surest it saw them
    (a body's mid-sagittal slices); None when no slice reaches `visibility` on average."""
    seen = [(float(kp[:, 2].mean()), stack.to_ras(s, kp[:, 0], kp[:, 1])) for s, *_, kp in track.members
            if kp is not None and len(kp) == 6]
    seen = sorted((v for v in seen if v[0] >= visibility), key=lambda v: -v[0])[:best]
    return np.mean([pts for _, pts in seen], axis=0) if seen else None


def keypoint_rows(stack: SliceStack, tracks: list[Track], visibility: float, source: str) -> list[dict]:
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
    return [VertebraRow.from_json({"method": "keypoints", "source": source, **m.to_json()}) for m in measured]
