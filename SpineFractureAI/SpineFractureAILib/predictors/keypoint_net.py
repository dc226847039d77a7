"""Seed 003's second stage on radiographs, the inference side: the network that regresses a body's
six endplate points from a crop round its box, and the crop's frame (training/radiograph_keypoints.py
trains it)."""
from __future__ import annotations

import numpy as np
import timm

from ..radiograph.model_input import CROP_CONTEXT

KEYPOINT_ARCH = "resnet10t"


def crop_frame(box, size: int):
    """(centre, pixels per crop pixel) of crop_body's square crop, resized to size."""
    c1, r1, c2, r2 = box
    side = max(c2 - c1, r2 - r1) * CROP_CONTEXT
    return np.array([(c1 + c2) / 2, (r1 + r2) / 2]), side / size


def to_crop(points, box, size: int) -> np.ndarray:
    centre, scale = crop_frame(box, size)
    return (np.asarray(points, float) - centre) / scale / size + 0.5  # 0..1 across the crop


def from_crop(values, box, size: int) -> np.ndarray:
    centre, scale = crop_frame(box, size)
    return (np.asarray(values, float) - 0.5) * size * scale + centre


def build_keypoint_net():
    return timm.create_model(KEYPOINT_ARCH, pretrained=False, num_classes=12, in_chans=1)
