"""Seed 004 on sagittal lumbar MR: region and disc detectors, the segmentation and herniation
ensembles, bodies measured and named from the sacrum (the work lives in lumbar*.py)."""
from __future__ import annotations

from ..lumbar import LumbarPredictor, run_lumbar_mr as run


def make_predictor(bundle, device: str = "auto") -> LumbarPredictor:
    return LumbarPredictor(bundle, device)


__all__ = ["make_predictor", "run"]
