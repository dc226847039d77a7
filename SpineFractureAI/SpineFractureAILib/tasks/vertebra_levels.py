"""Seed 001's level classifier on axial slices (a GCViT-style network with slice-position metadata):
a per-slice level profile that assembly.assemble_results turns into the bodies' levels."""
from __future__ import annotations

import time

import numpy as np

from ..bundles import BundleError
from ..level_assignment import LevelProfile, axial_metadata
from ..predictors.level_net import LevelPredictor
from ..progress import add_time, model_batches
from ..run_state import RunState
from ..slicing import Intensity, make_stack


def make_predictor(bundle, device: str = "auto") -> LevelPredictor:
    if bundle.manifest.get("framework") != "torch":
        raise BundleError(f"bundle {bundle.name}: a level classifier needs framework 'torch'")
    return LevelPredictor(bundle, device)


def run(volume, bundle, predictor, state: RunState, progress, cancelled) -> None:
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
    add_time(state.timing_s, "slice", time.perf_counter() - started)
    parts = model_batches(predictor, np.arange(len(stack)),
                          lambda part: predictor.predict(stack.images[part], meta[part]),
                          bundle.name, progress, cancelled, state.timing_s)
    state.level_profile = LevelProfile(bundle.classes, np.concatenate(parts), stack.stack_to_ras, stack.size)
