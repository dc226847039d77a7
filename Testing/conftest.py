"""Shared fixtures: real data location, phantoms, a results object made from phantom truth."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

os.environ.setdefault("YOLO_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("SPINEFRACTURE_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    # Real-data tests fail, never skip, when the data is missing.
    assert REALDATA.is_dir(), f"real data not found at {REALDATA} (expected ../shared/realdata)"
    return REALDATA


@pytest.fixture(scope="session")
def wedge_phantom():
    from SpineFractureAILib.phantom import make_phantom

    return make_phantom("T11-L2", "ct", ["L1:wedge:3"], [], seed=101, spacing=(1.2, 1.2, 1.5))


def results_from_truth(case):
    """Results built from a phantom's own labels (no model): body -> 'vertebral body', the
    fractured body -> its fracture segment, with one finding per fracture."""
    from SpineFractureAILib.slice_tracks import roi_from_mask_slices
    from SpineFractureAILib.results import Finding, Results
    from SpineFractureAILib.terminology import segment_for_class

    classes = ["vertebral body", "wedge", "biconcave", "crush"]
    segments = [segment_for_class(c, n + 1) for n, c in enumerate(classes)]
    labelmap = np.zeros(case.labels.voxels.shape, np.uint16)
    findings = []
    for v in case.truth["vertebrae"]:
        if not v["has_body"]:
            continue
        mask = case.labels.voxels == v["label"]
        value = classes.index(v["fracture"]) + 1 if v["fracture"] else 1
        labelmap[mask] = value
        if v["fracture"]:
            obj = ndimage.find_objects(mask.astype(np.uint8))[0]
            findings.append(Finding("fracture", v["fracture"], 0.9, roi_from_mask_slices(case.image, obj),
                                    level=v["level"], segment_value=value, source=["truth"]))
    return Results(case.image.name, labelmap, case.image.ijk_to_ras.copy(), segments, findings,
                   {"model_forward": 0.0}, modality="ct")
