"""The bottom of the house: how an analysis reports progress, is cancelled, runs a model in batches
and keeps its timing. Imports nothing of ours, so every stage can use it without a cycle."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Sequence

Progress = Callable[[str, float], None]  # (stage, fraction 0..1)


class Cancelled(Exception):
    """Raised between stages when the caller's cancel flag is set."""


def add_time(timing: dict, key: str, seconds: float) -> None:
    """Stages that run more than once (two sliced models, two fusions) add up."""
    timing[key] = timing.get(key, 0.0) + seconds


@contextmanager
def timed(timing: dict, key: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        add_time(timing, key, time.perf_counter() - started)


def model_batches(predictor, indices: Sequence[int], predict_part: Callable, stage: str, progress: Progress,
                  cancelled: Callable[[], bool], timing: dict) -> list:
    """The one loop every task runs its model in: predict_part(indices of one model batch) per batch,
    a progress report and a cancel check between batches; adds the predictor's own forward time to
    timing["model_forward"] and the rest of the loop to timing["model_postprocess"]."""
    started, forward_before = time.perf_counter(), predictor.forward_seconds
    step = max(1, int(getattr(predictor, "batch", 16)))
    out = []
    for b in range(0, len(indices), step):
        part = indices[b:b + step]
        out.append(predict_part(part))
        progress(f"{stage}: model", 0.3 + 0.5 * (b + len(part)) / max(len(indices), 1))
        if cancelled():
            raise Cancelled()
    forward = predictor.forward_seconds - forward_before
    add_time(timing, "model_forward", forward)
    add_time(timing, "model_postprocess", time.perf_counter() - started - forward)
    return out
