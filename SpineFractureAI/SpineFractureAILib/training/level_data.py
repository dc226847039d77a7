"""Seed 001's training data: axial slices of a labelled volume, each with the multi-hot set of
levels it shows and its metadata (position along the stack, index ratio, slice and pixel size)."""
from __future__ import annotations

import numpy as np

from ..levels import VERSE_ID
from ..slicing import SliceStack, sample_labels
from ..volume import Volume


def axial_metadata(stack: SliceStack) -> np.ndarray:
    """[n, 4]: position (mm from the first slice), index ratio, slice thickness, pixel spacing."""
    n = len(stack)
    idx = np.arange(n, dtype=np.float32)
    return np.stack([idx * stack.slice_mm, idx / max(n - 1, 1), np.full(n, stack.slice_mm),
                     np.full(n, stack.pixel_mm)], 1).astype(np.float32)


def axial_level_targets(labels: Volume, stack: SliceStack, level_names: list[str], min_pixels: int = 4) -> np.ndarray:
    """[n, len(level_names)] multi-hot: a level is shown when its vertebra (body or posterior
    elements, VerSe-style labels v and 40 + v) covers at least min_pixels of the slice."""
    sampled = sample_labels(labels, stack)
    targets = np.zeros((len(stack), len(level_names)), np.float32)
    for c, name in enumerate(level_names):
        v = VERSE_ID[name]
        targets[:, c] = (np.isin(sampled, (v, 40 + v)).sum((1, 2)) >= min_pixels)
    return targets
