"""analyze(): Volume + bundles -> Results. Slicer-free; the CLI, tests and Slicer call it."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .assembly import assemble_results
from .bundles import Bundle, BundleError
from .predictors import Predictor
from .progress import Cancelled, Progress, add_time
from .spine.anchors import name_in_volume
from .spine.bodies import find_bodies
from .spine.canal import find_canal
from .spine.prior_bodies import add_prior_bodies
from .spine.straighten import spine_frame, straighten
from .spine.prior import summary as prior_summary
from .tasks import TASKS
from .results import Results
from .run_state import RunState
from .volume import Volume, check_modality, validate_volume

PRIOR_TASKS = ("fracture-seg", "fracture-detect")  # the CT tasks whose objects must sit on the spine


class Analyzer:
    """Holds loaded predictors so repeated analyses (or a GUI session) load weights once."""

    def __init__(self, bundles: list[Bundle], device: str = "auto", thresholds: dict | None = None,
                 predictors: dict[str, Predictor] | None = None):
        """thresholds: overrides of the manifests' thresholds (e.g. the panel's fracture confidence);
        predictors: already built ones by bundle name (a test's fakes), used instead of loading."""
        if not bundles:
            raise ValueError("no model bundle fits this volume's modality")
        if thresholds:  # new Bundle objects: the caller's stay as loaded
            bundles = [Bundle(b.path, {**b.manifest, "thresholds": {**b.thresholds, **thresholds}}) for b in bundles]
        self.bundles = bundles
        self.device = device
        self._predictors: dict[str, Predictor] = dict(predictors or {})

    @property
    def loaded(self) -> list[str]:
        """The bundles whose weights this analyzer has loaded so far."""
        return list(self._predictors)

    def predictor(self, bundle: Bundle) -> Predictor:
        if bundle.name not in self._predictors:
            if bundle.task not in TASKS:
                raise BundleError(f"bundle {bundle.name}: no analysis for task {bundle.task!r}")
            self._predictors[bundle.name] = TASKS[bundle.task].make_predictor(bundle, self.device)
        return self._predictors[bundle.name]

    def analyze(self, volume: Volume, progress: Progress | None = None,
                cancelled: Callable[[], bool] | None = None) -> Results:
        """What is written: the results only."""
        return self.run(volume, progress, cancelled).written()

    def run(self, volume: Volume, progress: Progress | None = None,
            cancelled: Callable[[], bool] | None = None) -> RunState:
        """The whole run state (bodies, detections, canal too), for benchmarks and tests that look inside."""
        progress = progress or (lambda stage, fraction: None)
        cancelled = cancelled or (lambda: False)
        validate_volume(volume)
        modality_warnings = check_modality(volume)
        state = RunState(volume.name, np.zeros(volume.voxels.shape, np.uint8), volume.ijk_to_ras.copy(),
                         [], [], modality=volume.modality, warnings=modality_warnings,
                         dicom_series=volume.metadata.get("dicom_series"))
        if state.dicom_series:
            state.warnings.append(f"the DICOM folder holds {1 + len(state.dicom_series['other_series'])} series; "
                                  f"analysed {state.dicom_series['series_uid']} ({state.dicom_series['rule']})")
        timing = state.timing_s
        prior = None
        if volume.modality == "ct" and any(b.task in PRIOR_TASKS and b.fits("ct") for b in self.bundles):
            started = time.perf_counter()
            progress("spine prior: spinal canal", 0.05)
            state.canal = find_canal(volume)
            state.spine_prior = prior_summary(state.canal, 0)
            if state.canal is None:
                state.warnings.append("no spine found: no spinal canal in this CT, so no vertebra is named "
                                      "and no fracture reported (an image without a spine, or too coarse a scan)")
            else:
                progress("spine prior: vertebral bodies", 0.1)
                frame = spine_frame(state.canal)
                found = find_bodies(straighten(volume, frame), frame)
                prior = (found, name_in_volume(volume, found))
                if prior[1].warning:
                    state.warnings.append(prior[1].warning)
                state.spine_prior.update(bodies=len(found.bodies), level_anchor=prior[1].anchor,
                                         sacrum_found=found.sacrum is not None)
            timing["spine_prior"] = time.perf_counter() - started
        for bundle in self.bundles:
            if not bundle.fits(volume.modality):
                state.warnings.append(f"bundle {bundle.name} is for {bundle.manifest['modalities']}, "
                                      f"not {volume.modality}: skipped")
                continue
            if cancelled():
                raise Cancelled()
            started = time.perf_counter()
            predictor = self.predictor(bundle)
            add_time(timing, "model_load", time.perf_counter() - started)
            TASKS[bundle.task].run(volume, bundle, predictor, state, progress, cancelled)
            state.bundles.append(bundle.summary())
        if state.spine_prior and state.canal is None:
            _forget_spine_objects(state)
        if prior is not None:
            started = time.perf_counter()
            min_grade = next((int(b.thresholds.get("morphometry_min_grade", 2)) for b in self.bundles
                              if b.task == "fracture-seg"), 2)
            add_prior_bodies(state, volume, *prior, min_grade=min_grade)
            timing["spine_prior"] += time.perf_counter() - started
        progress("fusion", 0.9)
        assemble_results(state)
        return state


def _forget_spine_objects(state: RunState) -> None:
    """Without a spinal canal nothing the CT models found can be a vertebra: no bodies, rows, levels
    or fractures (the segmentation stays empty); the warning says why."""
    state.bodies, state.body_instances, state.detections, state.vertebrae = [], None, [], []
    state.level_profile = None
    state.findings = [f for f in state.findings if f.kind not in ("fracture", "vertebra")]


