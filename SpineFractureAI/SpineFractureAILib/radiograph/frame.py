"""The frame a radiograph's positions are given in. A projection has no 3D position, so we define one:
pixel (0, 0) at the RAS origin, columns towards posterior, rows towards inferior (a lateral view with
the patient facing the viewer's left), one pixel = the known pixel spacing, else 1 mm. ROIs, truth
files and findings.json all use it; findings.json says which spacing it assumed."""
from __future__ import annotations

import numpy as np


def default_plane(spacing: float = 1.0) -> np.ndarray:
    """IJK->RAS of a radiograph stored as [1, rows, cols]: i = column, j = row, k = 1 mm across."""
    m = np.eye(4)
    m[:3, 0] = [0.0, -spacing, 0.0]
    m[:3, 1] = [0.0, 0.0, -spacing]
    m[:3, 2] = [1.0, 0.0, 0.0]
    return m
