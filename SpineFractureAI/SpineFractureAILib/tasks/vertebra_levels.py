"""Seed 001's level classifier on axial slices (a GCViT-style network with slice-position metadata):
a per-slice level profile that assembly.finish turns into the bodies' levels."""
from __future__ import annotations

import time

import numpy as np

from ..bundles import BundleError
from ..level_assignment import LevelProfile, axial_metadata
from ..predictors.level_net import LevelPredictor
from ..progress import Cancelled
from ..results import Results
from ..slicing import Intensity, make_stack


def make_predictor(bundle, device: str = "auto") -> LevelPredictor:
    if bundle.manifest.get("framework") != "torch":
        raise BundleError(f"bundle {bundle.name}: a level classifier needs framework 'torch'")
    return LevelPredictor(bundle, device)


def run(volume, bundle, predictor, results: Results, progress, cancelled) -> None:
    """Seed 001's classifier on axial slices, whatever the acquisition plane (docs/decisions.md)."""
    m = bundle.manifest
    if m.get("plane", "axial") != "axial":
        raise BundleError(f"bundle {bundle.name}: the level classifier's metadata is a position along an "
                          f"axial stack; plane {m['plane']!r} is not supported")
    progress(f"{bundle.name}: axial slices", 0.1)
    started = time.perf_counter()
    stack = make_stack(volume, "axial", int(m["input_size"]), Intensity.from_manifest(m["preprocessing"]),
                       slice_mm=m.get("slice_mm"), pixel_mm=m.get("pixel_mm"), cancelled=cancelled)
    meta = axial_metadata(stack)
    results.timing_s["slice"] = results.timing_s.get("slice", 0) + time.perf_counter() - started
    started, forward_before = time.perf_counter(), predictor.forward_seconds
    parts = []
    for b in range(0, len(stack), predictor.batch):
        parts.append(predictor.predict(stack.images[b:b + predictor.batch], meta[b:b + predictor.batch]))
        progress(f"{bundle.name}: model", 0.3 + 0.5 * min(1.0, (b + predictor.batch) / max(len(stack), 1)))
        if cancelled():
            raise Cancelled()
    forward = predictor.forward_seconds - forward_before
    results.timing_s["model_forward"] = results.timing_s.get("model_forward", 0) + forward
    results.timing_s["model_postprocess"] = (results.timing_s.get("model_postprocess", 0)
                                             + time.perf_counter() - started - forward)
    results.level_profile = LevelProfile(bundle.classes, np.concatenate(parts), stack.stack_to_ras, stack.size)
