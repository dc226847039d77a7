"""The seam every analysis plugs into (issue 12): a task module builds a Predictor from its bundle
and runs it; any object with the Predictor's members can stand in for the real models."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.predictors import Predictor, SliceDetections
from SpineFractureAILib.slicing import Intensity, make_stack
from SpineFractureAILib.tasks import TASKS


def test_every_task_module_has_the_two_functions_with_one_signature():
    for name, module in TASKS.items():
        assert list(inspect.signature(module.make_predictor).parameters) == ["bundle", "device"], name
        assert list(inspect.signature(module.run).parameters) == [
            "volume", "bundle", "predictor", "state", "progress", "cancelled"], name


def test_every_built_in_bundle_builds_a_predictor():
    for bundle in builtin_bundles():
        predictor = TASKS[bundle.task].make_predictor(bundle, "cpu")
        assert isinstance(predictor, Predictor), bundle.name
        assert predictor.bundle is bundle and predictor.batch >= 1 and predictor.forward_seconds == 0.0


class BoxOnBone:
    """A fake fracture detector: on every slice, one box around a fixed pixel where the slice shows
    bone there (so only the slices through that vertebral body answer)."""

    def __init__(self, bundle, col, row, half=6):
        self.bundle, self.device, self.batch, self.forward_seconds = bundle, "cpu", 8, 0.0
        self.box = np.array([col - half, row - half, col + half, row + half], np.float32)
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        self.forward_seconds += 0.001
        x1, y1, x2, y2 = self.box.astype(int)
        out = []
        for image in images:
            bone = image[y1:y2, x1:x2].mean() > 65  # marrow and cortex; soft tissue reads ~50
            boxes = self.box[None] if bone else np.zeros((0, 4), np.float32)
            masks = np.zeros((len(boxes),) + image.shape, bool)
            masks[:, y1:y2, x1:x2] = True
            out.append(SliceDetections(0, boxes, np.zeros(len(boxes), int), np.full(len(boxes), 0.9), masks))
        return out


def test_a_fake_predictor_runs_through_the_whole_pipeline():
    case = make_phantom("C3-T2", "ct", [], [], seed=5151)  # the demo detector is for the cervical spine
    detect = next(b for b in builtin_bundles() if b.task == "fracture-detect")
    m = detect.manifest
    stack = make_stack(case.image, m["plane"], int(m["input_size"]), Intensity.from_manifest(m["preprocessing"]),
                       slice_mm=m.get("slice_mm"))
    c5 = next(v for v in case.truth["vertebrae"] if v["level"] == "C5")
    col, row, _ = stack.from_ras(np.array(c5["center_ras"]))
    fake = BoxOnBone(detect, col, row)
    results = Analyzer([detect], "cpu", predictors={detect.name: fake}).analyze(case.image)
    assert fake.calls >= 2 and results.timing_s["model_forward"] == pytest.approx(fake.calls * 0.001)
    found = [f for f in results.findings if f.kind == "fracture"]
    assert len(found) == 1 and found[0].source == [detect.name]
    assert found[0].roi.contains(c5["center_ras"], tolerance_mm=1.0) and found[0].level.startswith("C")
    others = [v["center_ras"] for v in case.truth["vertebrae"] if v["level"] in ("C4", "C6")]
    assert not any(found[0].roi.contains(c) for c in others)  # one body, not its neighbours
