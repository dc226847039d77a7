"""A sliced model's run over a volume: slice as the manifest says, skip slices without bone, run the
model in batches between cancel checks (timing recorded), and link its per-slice detections into tracks."""
from __future__ import annotations

import time

import numpy as np

from .slice_tracks import link_detections
from .progress import Cancelled, Progress, add_time, model_batches
from .run_state import RunState
from .slicing import Intensity, coarse_stack, make_stack


def run_sliced_model(volume, bundle, predictor, state: RunState, progress: Progress, cancelled):
    """Slice as the manifest says, skip slices without bone, run the model in batches."""
    m, timing = bundle.manifest, state.timing_s
    progress(f"{bundle.name}: slicing", 0.1)
    started = time.perf_counter()
    size, intensity = int(m["input_size"]), Intensity.from_manifest(m["preprocessing"])
    # Slices with no bone-bright pixels cannot hold a vertebral body: find them on a quarter-size
    # pass, then resample (and run the model on) only the others.
    bright = int(m.get("thresholds", {}).get("min_bright_pixels", 0))
    level = int(m.get("thresholds", {}).get("bright_level", 110))
    # Models that slice alike (fracture-seg and the cervical detector) share one stack.
    key = (m["plane"], size, repr(intensity), m.get("slice_mm"), bright, level)
    if key in state.stacks:
        stack, keep = state.stacks[key]
    else:
        keep = None
        if bright:
            coarse = coarse_stack(volume, m["plane"], size, intensity, m.get("slice_mm"), cancelled=cancelled)
            keep = np.flatnonzero((coarse.images >= level).sum((1, 2)) >= max(1, bright // 16))
        stack = make_stack(volume, m["plane"], size, intensity, slice_mm=m.get("slice_mm"), cancelled=cancelled,
                           only=keep)
        if bright:  # confirm at full size
            keep = keep[(stack.images[keep] >= level).sum((1, 2)) >= bright]
        else:
            keep = np.arange(len(stack))
        state.stacks[key] = (stack, keep)
    add_time(timing, "slice", time.perf_counter() - started)
    if cancelled():
        raise Cancelled()

    def predict(part):
        found = predictor.predict(stack.images[part])
        for d, s in zip(found, part):
            d.slice_index = int(s)
        return found

    detections = [d for found in model_batches(predictor, keep, predict, bundle.name, progress, cancelled, timing)
                  for d in found]
    add_time(timing, "slices", len(keep))
    return stack, detections


def tracks(detections, thresholds: dict):
    """Detections linked across slices; tracks shorter than min_slices are noise."""
    return [tr for tr in link_detections(detections, float(thresholds.get("link_iou", 0.3)))
            if len(tr.members) >= int(thresholds.get("min_slices", 2))]
