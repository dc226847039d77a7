"""Analyses that live in one module each: `make_predictor(bundle, device)` and
`run(volume, bundle, predictor, results, progress, cancelled)`. TASKS maps a bundle's task to its
module; the older CT and MR tasks still run from pipeline.py until they move here (issue 12)."""
from __future__ import annotations

from . import radiograph_fracture

TASKS = {"radiograph-fracture": radiograph_fracture}
