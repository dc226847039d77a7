"""Levels for 3D findings: seed 001's per-slice level probabilities on an axial stack, checked by
counting the vertebral bodies the fracture model segmented.

The classifier alone can say "cervical" or "has ribs" reliably but may slip by one level in the
middle of a run of similar vertebrae; the bodies are discrete. So bodies, ordered head to feet,
get consecutive levels, and the whole sequence is placed where the classifier's probabilities
agree with it best (a dynamic programme that also allows one missing body where the gap between
two bodies says one is missing).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .levels import LEVELS
from .slicing import SliceStack

EPS = 1e-3
BODY_LEVELS = LEVELS[1:-1]  # C2..L5: the levels with a vertebral body (C1 is a ring, S1 the sacrum)
# What the counting may assign: C1 first (the atlas' arch can look like a small body; any number of
# such fragments may sit above C2), then one body per level.
STATES = ["C1"] + BODY_LEVELS


def axial_metadata(stack: SliceStack) -> np.ndarray:
    """[n, 4]: position (mm from the first slice), index ratio, slice thickness, pixel spacing."""
    n = len(stack)
    idx = np.arange(n, dtype=np.float32)
    return np.stack([idx * stack.slice_mm, idx / max(n - 1, 1), np.full(n, stack.slice_mm),
                     np.full(n, stack.pixel_mm)], 1).astype(np.float32)


@dataclass
class LevelProfile:
    """Per axial slice (slice 0 most superior), the probability of each level of the bundle."""
    levels: list[str]
    probabilities: np.ndarray  # [n_slices, n_levels]
    stack_to_ras: np.ndarray
    size: int = 0  # pixels per side: ras_of_slice gives the slice's centre

    @property
    def slice_step_mm(self) -> float:
        return float(np.linalg.norm(self.stack_to_ras[:3, 2]))

    def slice_of(self, ras) -> float:
        inv = np.linalg.inv(self.stack_to_ras)
        return float((np.asarray(ras, float) @ inv[:3, :3].T + inv[:3, 3])[2])

    def ras_of_slice(self, s: float) -> np.ndarray:
        return self.stack_to_ras[:3, :3] @ np.array([self.size / 2, self.size / 2, s]) + self.stack_to_ras[:3, 3]

    def at(self, ras, half_window: int = 1) -> dict[str, float]:
        """Level probabilities around the slice through `ras` (every LEVELS name; outside the
        bundle's label set, the probability that the slice shows none of its levels)."""
        s = int(round(self.slice_of(ras)))
        lo, hi = max(s - half_window, 0), min(s + half_window + 1, len(self.probabilities))
        if lo >= hi:  # outside the stack
            return {name: 0.0 for name in LEVELS}
        p = self.probabilities[lo:hi].mean(0)
        outside = float(1.0 - p.max())
        return {name: float(p[self.levels.index(name)]) if name in self.levels else outside for name in LEVELS}

    def best_level(self, ras) -> tuple[str | None, float]:
        """The bundle's most likely level at `ras` (None below 0.5) and its probability."""
        p = self.at(ras)
        name = max(self.levels, key=p.get)
        return (name if p[name] >= 0.5 else None), p[name]

    def extents(self, threshold: float = 0.5) -> dict[str, tuple[int, int]]:
        """Each level's longest run of slices at or above threshold: {level: (first, last)}."""
        runs = {}
        for c, name in enumerate(self.levels):
            on = np.r_[False, self.probabilities[:, c] >= threshold, False]
            edges = np.flatnonzero(on[1:] != on[:-1]).reshape(-1, 2)
            if len(edges):
                first, stop = max(edges, key=lambda e: e[1] - e[0])
                runs[name] = (int(first), int(stop - 1))
        return runs


def assign_body_levels(profile: LevelProfile, centres_ras: list, skip_penalty: float = 2.0,
                       heights_mm: list | None = None) -> tuple[list[str], dict]:
    """Consecutive levels for bodies (any order in, names returned in the same order) and a check:
    {"agreement": fraction of bodies whose own most likely level is the assigned one, ...}.
    heights_mm: each body's extent along the stack; its probabilities are averaged over the middle
    half of it (more slices, steadier than the one slice through the centre)."""
    if not centres_ras:
        return [], {"bodies": 0}
    order = np.argsort([profile.slice_of(c) for c in centres_ras])  # head to feet
    centres = np.asarray(centres_ras, float)[order]
    n, m = len(centres), len(STATES)
    step = profile.slice_step_mm
    windows = [1] * n if heights_mm is None else [max(1, int(heights_mm[i] / 4 / step)) for i in order]
    at = [profile.at(c, w) for c, w in zip(centres, windows)]  # once per body
    emit = np.log(np.maximum([[p[lv] for lv in STATES] for p in at], EPS))
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    # best[i, j]: body i is level j; back[i, j]: the level of body i - 1
    best = np.full((n, m), -np.inf)
    back = np.zeros((n, m), int)
    best[0] = emit[0]
    for i in range(1, n):
        # a gap much wider than its neighbours' (which change slowly along the spine) hides a body
        near = np.r_[gaps[max(i - 3, 0):i - 1], gaps[i:i + 2]]
        missing_one = len(near) > 0 and gaps[i - 1] > 1.6 * np.median(near)
        step_cost = (skip_penalty, 0.0) if missing_one else (0.0, skip_penalty + 5.0)  # (+1 level, +2 levels)
        for j in range(m):
            options = [(best[i - 1, j - 1] - step_cost[0], j - 1)] if j >= 1 else []
            if j >= 2:
                options.append((best[i - 1, j - 2] - step_cost[1], j - 2))
            if j == 0:  # another fragment of the atlas
                options.append((best[i - 1, 0], 0))
            value, prev = max(options)
            best[i, j], back[i, j] = value + emit[i, j], prev
    j = int(np.argmax(best[-1]))
    path = [j]
    for i in range(n - 1, 0, -1):
        j = int(back[i, j])
        path.append(j)
    path = path[::-1]
    names_sorted = [STATES[j] for j in path]
    own = [profile.best_level(c)[0] for c in centres]
    agree = sum(a == b for a, b in zip(own, names_sorted)) / n
    names = [""] * n
    for rank, idx in enumerate(order):
        names[idx] = names_sorted[rank]
    return names, {"bodies": n, "agreement": round(float(agree), 3),
                   "classifier_alone": [own[list(order).index(i)] for i in range(n)]}
