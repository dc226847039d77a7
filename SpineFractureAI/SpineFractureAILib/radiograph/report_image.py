"""The report's picture of a radiograph: the film with each body's outline (red: fractured), its
six-point heights, its level and, for a fracture, its type, grade and age."""
from __future__ import annotations

import cv2
import numpy as np

from ..results import Results
from ..volume import Volume
from .model_input import to_uint8


def radiograph_figure(volume: Volume, results: Results, longest: int = 640) -> list[tuple[str, np.ndarray]]:
    image8 = to_uint8(volume.voxels[0])
    scale = min(1.0, longest / max(image8.shape)) if max(image8.shape) > longest else longest / max(image8.shape)
    size = (round(image8.shape[1] * scale), round(image8.shape[0] * scale))
    img = cv2.cvtColor(cv2.resize(image8, size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    labels = cv2.resize(results.labelmap[0].astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    fractured = {f.segment_value for f in results.findings}
    for v in np.unique(labels[labels > 0]):
        contours, _ = cv2.findContours((labels == v).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (0, 0, 255) if v in fractured else (0, 255, 0), 1)
    inverse = np.linalg.inv(volume.ijk_to_ras)
    for row in results.vertebrae:
        kps = np.asarray(row.get("keypoints_ras") or [], float)
        if kps.shape != (6, 3):
            continue
        px = (kps @ inverse[:3, :3].T + inverse[:3, 3])[:, :2] * scale
        for k in range(3):
            cv2.line(img, tuple(px[k].astype(int)), tuple(px[k + 3].astype(int)), (255, 200, 0), 1)
        text = row["level"] or f"#{row['position']}"
        if row.get("genant_grade"):
            text += f" {row['type']} g{row['genant_grade']}" + (f" {row['age']}" if row.get("age") else "")
        anchor = px[[0, 3]].mean(0)
        cv2.putText(img, text, (int(max(anchor[0] - 8 - 7 * len(text), 0)), int(anchor[1]) + 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
    title = "lateral radiograph" + (f", levels {results.radiograph.get('levels')}" if results.radiograph else "")
    return [(title, img)]
