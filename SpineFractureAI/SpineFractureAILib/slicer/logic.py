"""The module's logic without Qt: analyse a volume node and put the results in its scene.

Usable from Slicer's Python console:
    from SpineFractureAILib.logic import SpineFractureLogic
    outputs, results = SpineFractureLogic(slicer.mrmlScene).analyze(getNode("CT"))
"""
from __future__ import annotations

import json

from ..bundles import parse_analyses
from ..files import write_case
from ..model_host import ModelHost
from ..pipeline import Analyzer
from ..training.corrections import export_training_labels
from ..training.lumbar_corrections import export_lumbar_labels
from .background import WorkerRun
from .scene import (RESULT_ATTRIBUTE, dicom_source_files, edited_segments, remove_previous_results,
                    segmentation_to_labelmap, volume_from_node, write_results_to_scene)
from .worker_client import WorkerClient


class SpineFractureLogic:
    def __init__(self, scene, bundle_paths: list[str] | None = None, device: str = "auto",
                 thresholds: dict | None = None, analyses: tuple[str, ...] | None = None, dicom_file_for=None,
                 worker: WorkerClient | None = None):
        """analyses: what to run, keys of bundles.ANALYSES ("keypoints" adds the opt-in keypoint
        morphometry; None: the bundles that run by default); dicom_file_for: SOP
        Instance UID -> file (Slicer: slicer.dicomDatabase.fileForInstance), so a report of a
        volume loaded from DICOM includes a DICOM SEG and SR that reference its series; worker: the
        analysis process that analyze_async uses (the panel keeps one across clicks; default: our own)."""
        self.dicom_file_for = dicom_file_for
        self.analyses = parse_analyses(analyses) if analyses is not None else None
        self.scene = scene
        self.bundle_paths = bundle_paths
        self.device = device
        self.thresholds = thresholds or {}
        self._hosts: dict[str, ModelHost] = {}
        self.worker = worker or WorkerClient()

    def analyzer(self, modality: str) -> Analyzer:
        """In this process (analyze(), the console): one model host per configuration."""
        key = json.dumps(self.worker_config(), sort_keys=True)
        if key not in self._hosts:
            self._hosts[key] = ModelHost(self.bundle_paths, self.analyses, self.device, self.thresholds)
        return self._hosts[key].analyzer(modality)

    def worker_config(self) -> dict:
        """What the worker loads: a change restarts it (and reloads the weights)."""
        return {"bundle_paths": self.bundle_paths, "device": self.device, "thresholds": self.thresholds,
                "analyses": list(self.analyses) if self.analyses else None}

    def analyze_async(self, volume_node, modality: str = "auto") -> WorkerRun:
        """Start the analysis in the worker process; poll() the returned run from the main thread
        (the panel uses a QTimer), or wait() from the console. cancel() kills the worker at once."""
        volume = volume_from_node(volume_node, modality)  # copied here, on the main thread

        def apply(results):
            remove_previous_results(self.scene, volume_node)
            return write_results_to_scene(self.scene, volume_node, results), results

        self.worker.configure(self.worker_config())
        run = WorkerRun(self.worker, volume, apply, still_wanted=lambda: bool(self.scene.IsNodePresent(volume_node)))
        run.start()
        return run

    def save_report(self, volume_node, results, folder: str) -> dict:
        """findings.json, markups, segmentation and the HTML report of the last analysis; for a
        volume loaded from DICOM also the DICOM SEG and SR (for the PACS)."""
        volume = volume_from_node(volume_node)
        files = dicom_source_files(volume_node, self.dicom_file_for)
        if files:
            volume.metadata["dicom_files"] = files
        return write_case(results, folder, volume)

    def export_training_labels(self, volume_node, seg_node, out_dir: str) -> dict:
        """Researchers' correction loop: the current (edited) segments + this volume as training data
        appended to out_dir (CT: YOLO polygons for fracture-seg, boxes for fracture-detect; lumbar MR:
        region and disc boxes, disc crops, masks), with which segments were edited and the ROI reviews."""

        labelmap, names = segmentation_to_labelmap(self.scene, seg_node, volume_node)
        reviews, discs = {}, []
        for n in range(self.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode")):
            roi = self.scene.GetNthNodeByClass(n, "vtkMRMLMarkupsROINode")
            if roi.GetAttribute(RESULT_ATTRIBUTE) == volume_node.GetID():
                review = roi.GetAttribute("SpineFractureAI.Review") or "unreviewed"
                reviews[roi.GetName()] = review
                finding = json.loads(roi.GetAttribute("SpineFractureAI.Finding") or "{}")
                if finding.get("kind") == "disc":  # lumbar MR: the reviewed herniated / not
                    centre = [0.0, 0.0, 0.0]
                    roi.GetCenterWorld(centre)
                    discs.append((centre, (finding["label"] == "herniated") != (review == "rejected")))
        review = {"edited_segments": edited_segments(seg_node, labelmap, names), "findings_review": reviews}
        if {"intervertebral disc", "spinal canal"} & {n.strip().lower() for n in names.values()}:

            return export_lumbar_labels(volume_from_node(volume_node), labelmap, names, out_dir, discs, review)
        keypoints = []  # the six morphometry points per vertebra, as the user left them
        for n in range(self.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")):
            node = self.scene.GetNthNodeByClass(n, "vtkMRMLMarkupsFiducialNode")
            if node.GetAttribute(RESULT_ATTRIBUTE) == volume_node.GetID() and node.GetNumberOfControlPoints() == 6:
                keypoints.append([node.GetNthControlPointPositionWorld(i) for i in range(6)])
        return export_training_labels(volume_from_node(volume_node), labelmap, names, out_dir, review,
                                      keypoints=keypoints)

    def analyze(self, volume_node, modality: str = "auto", progress=None, cancelled=None):
        """Run the pipeline, then (only if it finished) replace this volume's earlier results."""
        volume = volume_from_node(volume_node, modality)
        results = self.analyzer(volume.modality).analyze(volume, progress, cancelled)
        remove_previous_results(self.scene, volume_node)
        return write_results_to_scene(self.scene, volume_node, results), results
