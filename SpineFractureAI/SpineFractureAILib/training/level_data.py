"""Seed 001's training data: axial slices of a labelled volume, each with the multi-hot set of
levels it shows and its metadata (position along the stack, index ratio, slice and pixel size)."""
from __future__ import annotations

import numpy as np

from ..level_assignment import axial_metadata  # noqa: F401  (re-exported for training)
from ..levels import VERSE_ID
from ..slicing import SliceStack, sample_labels
from ..volume import Volume


def axial_level_targets(labels: Volume, stack: SliceStack, level_names: list[str], min_pixels: int = 4,
                        parts: str = "body") -> np.ndarray:
    """[n, len(level_names)] multi-hot: a level is shown when its vertebral body (the atlas: its
    ring; the phantom's label v) covers at least min_pixels of the slice; parts="whole" counts the
    posterior elements too (label 40 + v). Bodies by default: levels are given to bodies and to
    fractures of bodies, and a spinous process reaching down over the next body would otherwise
    label that body's slices with both levels, blurring exactly the neighbours the count must
    tell apart (docs/decisions.md)."""
    sampled = sample_labels(labels, stack)
    targets = np.zeros((len(stack), len(level_names)), np.float32)
    for c, name in enumerate(level_names):
        v = VERSE_ID[name]
        values = (v,) if parts == "body" else (v, 40 + v)
        targets[:, c] = (np.isin(sampled, values).sum((1, 2)) >= min_pixels)
    return targets
