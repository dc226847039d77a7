"""Analyses that live in one module each: `make_predictor(bundle, device)` returns a
predictors.Predictor, and `run(volume, bundle, predictor, results, progress, cancelled)` runs it
(its model calls through progress.model_batches). TASKS maps a bundle's task to its
module: adding an analysis is one module here plus its bundle (docs/architecture.md)."""
from __future__ import annotations

from . import fracture_detect, fracture_seg, lumbar_mr, radiograph_fracture, vertebra_levels, vertebra_pose

TASKS = {"fracture-seg": fracture_seg, "vertebra-pose": vertebra_pose, "vertebra-levels": vertebra_levels,
         "fracture-detect": fracture_detect, "lumbar-mr": lumbar_mr, "radiograph-fracture": radiograph_fracture}
