"""A film taller or wider than the pose model's input is read in overlapping windows at the training
scale: letterboxing a whole-spine film (C2-S1, ~700 mm) into 320 px would shrink its bodies to half the
size the model learnt (thoracolumbar films of 5-10 levels). A body cut by a window's inner edge is
dropped (the overlap shows it whole in the next window); the rest are merged across windows."""
from __future__ import annotations

import math

import numpy as np

from ..slice_tracks import box_iou

FIT = 1.4  # up to this x the input side a film is letterboxed whole (training-like films reach 415 px: 1.3x)
OVERLAP = 0.4  # of the window side: more than a lumbar body with its discs, so every body is whole once
EDGE_PX = 3  # a box this close to a window's inner edge is cut by it
SAME_BODY_IOU = 0.3


def window_starts(length: int, side: int) -> list[tuple[int, int]]:
    """(start, stop) along one axis: the whole length where it fits, else windows of `side`."""
    if length <= side * FIT:
        return [(0, length)]
    overlap = int(OVERLAP * side)
    count = math.ceil((length - overlap) / (side - overlap))
    return [(int(s), int(s) + side) for s in np.round(np.linspace(0, length - side, count))]


def windows(shape: tuple[int, int], side: int) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) of every window; one window (the whole film) where it fits."""
    return [(r0, r1, c0, c1) for r0, r1 in window_starts(shape[0], side) for c0, c1 in window_starts(shape[1], side)]


def cut_by_window(boxes: np.ndarray, window, shape) -> np.ndarray:
    """Which boxes (film pixels) touch an edge of the window that is not an edge of the film."""
    r0, r1, c0, c1 = window
    cut = np.zeros(len(boxes), bool)
    for index, edge, inner, low in ((1, r0, r0 > 0, True), (3, r1, r1 < shape[0], False),
                                    (0, c0, c0 > 0, True), (2, c1, c1 < shape[1], False)):
        if inner:
            cut |= (boxes[:, index] <= edge + EDGE_PX) if low else (boxes[:, index] >= edge - EDGE_PX)
    return cut


def merge(found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
    """Detections of all windows (boxes, classes, scores, keypoints; film pixels) -> one set, the
    highest-scoring of each body, top to bottom."""
    boxes, classes, scores, kp = (np.concatenate([f[i] for f in found]) for i in range(4))
    keep: list[int] = []
    for i in np.argsort(-scores):
        if all(box_iou(boxes[i], boxes[j]) < SAME_BODY_IOU for j in keep):
            keep.append(int(i))
    keep_arr = np.array(sorted(keep, key=lambda i: (boxes[i, 1] + boxes[i, 3]) / 2), int)
    return boxes[keep_arr].reshape(-1, 4), classes[keep_arr], scores[keep_arr], kp[keep_arr].reshape(-1, 6, 3)
