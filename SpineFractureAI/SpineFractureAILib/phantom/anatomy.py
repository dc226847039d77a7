"""Per-level sizes, sagittal curvature and the vertebral-body shape of the phantom.

Every vertebra has its own frame: ``e_si`` (its superior axis), ``e_ap`` (anterior ->
posterior), ``e_lr`` (towards patient right... +R). A point's local coordinates are
``x`` (along e_lr), ``a`` (along e_ap, 0 at the body centre) and ``z`` (along e_si).
Fractures change the endplate profiles ``z_top(t)``/``z_bot(t)``, where ``t`` is the
fraction of the body's depth from its anterior wall (0) to its posterior wall (1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..levels import LEVELS, level_index
from ..morphometry import KEYPOINT_T, genant_grade  # the phantom's truth is graded as we measure

# Knots (level index, value); values between knots are interpolated linearly.
_HEIGHT = [(1, 15.0), (2, 13.0), (6, 14.5), (7, 16.0), (18, 24.0), (19, 25.0), (23, 27.5)]
_DEPTH = [(1, 15.0), (2, 15.0), (6, 17.0), (7, 18.0), (18, 30.0), (19, 32.0), (23, 36.0)]
_WIDTH = [(1, 18.0), (2, 18.0), (6, 24.0), (7, 28.0), (18, 42.0), (19, 44.0), (23, 52.0)]
_DISC = [(0, 4.0), (6, 5.0), (7, 4.5), (18, 7.0), (19, 9.0), (23, 11.0)]
# Sagittal tilt of each vertebra's superior axis towards anterior, degrees
# (cervical and lumbar lordosis, thoracic kyphosis, sacral slope).
_TILT = [(0, -15.0), (3, 0.0), (6, 15.0), (7, 15.0), (12, 0.0), (18, -12.0), (19, -12.0),
         (21, 0.0), (23, 20.0), (24, 40.0)]
_CANAL = [(0, (16.0, 26.0)), (6, (14.0, 24.0)), (7, (14.0, 17.0)), (18, (15.0, 18.0)),
          (19, (16.0, 22.0)), (23, (17.0, 24.0))]  # (AP, LR) diameters in mm

TRANSITIONAL = {"L6": "L5"}  # a sixth lumbar vertebra, shaped like L5
GRADE_LOSS = {1: (0.21, 0.245), 2: (0.27, 0.38), 3: (0.43, 0.55)}
FRACTURE_TYPES = ("wedge", "biconcave", "crush")


def _interp(knots, index: int) -> float:
    xs, ys = zip(*knots)
    return float(np.interp(index, xs, ys))


def canal_size(index: int) -> tuple[float, float]:
    xs = [k for k, _ in _CANAL]
    return (float(np.interp(index, xs, [v[0] for _, v in _CANAL])),
            float(np.interp(index, xs, [v[1] for _, v in _CANAL])))


@dataclass
class Vertebra:
    level: str
    center: np.ndarray
    e_si: np.ndarray
    e_ap: np.ndarray
    e_lr: np.ndarray
    height: float
    depth: float
    width: float
    fracture: str | None = None
    loss: float = 0.0  # fractional height loss that defines the Genant grade
    like: str | None = None  # a transitional vertebra (L6) takes the shape of this level (L5)

    @property
    def index(self) -> int:
        return level_index(self.like or self.level)

    @property
    def has_body(self) -> bool:
        return self.level not in ("C1", "S1")

    @property
    def grade(self) -> int:
        return genant_grade(self.loss) if self.fracture else 0

    def local(self, ras: np.ndarray):
        d = ras - self.center
        return d @ self.e_lr, d @ self.e_ap, d @ self.e_si

    def to_ras(self, x, a, z) -> np.ndarray:
        return (self.center + np.multiply.outer(x, self.e_lr) + np.multiply.outer(a, self.e_ap)
                + np.multiply.outer(z, self.e_si))

    def collapse(self, t):
        """Height lost at depth fraction t, in mm, split (top, bottom)."""
        t = np.asarray(t, dtype=float)
        h, loss = self.height, self.loss
        if self.fracture == "wedge":  # anterior collapse, mostly of the superior endplate
            lost = h * loss * np.clip((0.85 - t) / 0.70, 0.0, 1.15)
            return 0.7 * lost, 0.3 * lost
        if self.fracture == "biconcave":  # both endplates sink centrally, walls keep height
            lost = h * loss * np.clip(1.0 - ((t - 0.5) / 0.3) ** 2, 0.0, 1.0)
            return 0.5 * lost, 0.5 * lost
        if self.fracture == "crush":  # the whole body collapses
            lost = h * loss * np.ones_like(t)
            return 0.5 * lost, 0.5 * lost
        zero = np.zeros_like(t)
        return zero, zero

    def z_top(self, t):
        return self.height / 2 - self.collapse(t)[0]

    def z_bot(self, t):
        return -self.height / 2 + self.collapse(t)[1]

    def keypoints_ras(self) -> np.ndarray:
        """Six points: superior then inferior endplate, each anterior, middle, posterior."""
        t = np.array(KEYPOINT_T)
        a = (t - 0.5) * self.depth
        sup = self.to_ras(np.zeros(3), a, self.z_top(t))
        inf = self.to_ras(np.zeros(3), a, self.z_bot(t))
        return np.concatenate([sup, inf])

    def heights_mm(self) -> dict:
        t = np.array(KEYPOINT_T)
        h = self.z_top(t) - self.z_bot(t)
        tt = np.linspace(0.15, 0.85, 71)
        return {"anterior": float(h[0]), "middle": float(h[1]), "posterior": float(h[2]),
                "minimum": float(np.min(self.z_top(tt) - self.z_bot(tt)))}


def build_spine(levels: list[str], rng: np.random.Generator, curvature: float = 1.0,
                fractures: dict | None = None) -> list[Vertebra]:
    """Place the vertebrae of `levels` top-down along a curved sagittal spine."""
    fractures = fractures or {}
    scale = rng.uniform(0.92, 1.08)
    spine: list[Vertebra] = []
    previous_bottom = np.zeros(3)
    for n, name in enumerate(levels):
        like = TRANSITIONAL.get(name)
        idx = level_index(like or name)
        tilt = np.radians(_interp(_TILT, idx) * curvature)
        e_si = np.array([0.0, np.sin(tilt), np.cos(tilt)])
        e_ap = np.array([0.0, -np.cos(tilt), np.sin(tilt)])
        h = _interp(_HEIGHT, idx) * scale
        if name == "S1":
            h = 30.0 * scale  # the sacral block's depth along its own axis
        v = Vertebra(name, np.zeros(3), e_si, e_ap, np.array([1.0, 0.0, 0.0]), h,
                     _interp(_DEPTH, idx) * scale * (1.1 if name == "S1" else 1.0),
                     _interp(_WIDTH, idx) * scale, like=like)
        if name in fractures:
            kind, grade = fractures[name]
            lo, hi = GRADE_LOSS[grade]
            v.fracture, v.loss = kind, float(rng.uniform(lo, hi))
        if n == 0:
            v.center = np.zeros(3)
        else:
            up = spine[-1]
            gap = _interp(_DISC, up.index) * scale
            e_mid = (up.e_si + e_si) / np.linalg.norm(up.e_si + e_si)
            top = previous_bottom - gap * e_mid
            v.center = top - h / 2 * e_si
        previous_bottom = v.center - v.height / 2 * v.e_si
        spine.append(v)
    shift = np.mean([v.center for v in spine], axis=0)
    for v in spine:
        v.center = v.center - shift
    return spine


def disc_gap(upper: Vertebra) -> float:
    return _interp(_DISC, upper.index)


__all__ = ["Vertebra", "build_spine", "genant_grade", "canal_size", "FRACTURE_TYPES",
           "GRADE_LOSS", "KEYPOINT_T", "LEVELS"]
