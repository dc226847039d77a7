"""Correction loop: exported labels, re-imported, equal the (edited) segments."""
from __future__ import annotations

import json

import cv2
import numpy as np
import slicer

from conftest import results_from_truth
from SpineFractureAILib.results import VertebraRow
from SpineFractureAILib.slicer.logic import SpineFractureLogic
from SpineFractureAILib.slicer.scene import add_volume_node, write_results_to_scene
from SpineFractureAILib.slicing import Intensity, make_stack, stack_labels_to_volume
from SpineFractureAILib.training.yolo_export import FRACTURE_SEG_CLASSES


def _reimport(out_dir, volume, size=256, slice_mm=2.0):
    """Rasterise the exported polygons back onto the volume grid, per class."""
    stack = make_stack(volume, "sagittal", size, Intensity(), slice_mm=slice_mm)
    per_class = {c: {} for c in range(len(FRACTURE_SEG_CLASSES))}
    for label_file in out_dir.glob("labels/*/*.txt"):
        s = int(label_file.stem.rsplit("_s", 1)[1])
        for line in label_file.read_text().splitlines():
            cls, *xy = line.split()
            poly = np.round(np.array(xy, float).reshape(-1, 2) * size - 0.5).astype(np.int32)
            img = per_class[int(cls)].setdefault(s, np.zeros((size, size), np.uint8))
            cv2.fillPoly(img, [poly], 1)
            cv2.polylines(img, [poly], True, 1)
    return {c: stack_labels_to_volume(stack, imgs, volume) > 0 for c, imgs in per_class.items()}


def test_export_round_trips_the_edited_segments(tmp_path, wedge_phantom):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    results = results_from_truth(wedge_phantom)
    out = write_results_to_scene(scene, volume_node, results)
    out.rois[0].SetAttribute("SpineFractureAI.Review", "accepted")
    # the researcher deletes the crush segment (edit) - the export must say so
    segmentation = out.segmentation.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("Crush fracture"))
    from SpineFractureAILib.slicer.scene import previous_results_edited

    assert previous_results_edited(scene, volume_node) == ["Crush fracture"]  # the panel asks before a re-run
    entry = SpineFractureLogic(scene).export_training_labels(volume_node, out.segmentation, str(tmp_path))
    assert entry["edited_segments"] == ["Crush fracture"]
    assert list(entry["findings_review"].values()) == ["accepted"]
    assert entry["classes"] == {"vertebral body": 3, "wedge": 1}
    assert (tmp_path / "data.yaml").exists() and list((tmp_path / "images" / "val").glob("*.png"))
    assert json.loads((tmp_path / "corrections.json").read_text())[0]["source_volume"] == wedge_phantom.image.name
    back = _reimport(tmp_path, wedge_phantom.image)
    for cls, value in ((0, 1), (1, 2)):
        truth = results.labelmap == value
        dice = 2 * (back[cls] & truth).sum() / (back[cls].sum() + truth.sum())
        assert dice > 0.9, (FRACTURE_SEG_CLASSES[cls], dice)


def test_per_level_segment_names_export_and_the_detector_gets_boxes(tmp_path, wedge_phantom):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    out = write_results_to_scene(scene, volume_node, results_from_truth(wedge_phantom))
    segmentation = out.segmentation.GetSegmentation()
    segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Wedge fracture")).SetName("L1 wedge fracture")
    entry = SpineFractureLogic(scene).export_training_labels(volume_node, out.segmentation, str(tmp_path))
    assert entry["classes"] == {"vertebral body": 3, "wedge": 1}
    detect = tmp_path / "fracture-detect"
    names = (detect / "data.yaml").read_text().split("names:")[1]
    assert names.split() == ["0:", "fracture"] and entry["detect_images"] > 0
    lines = [line for f in detect.glob("labels/*/*.txt") for line in f.read_text().splitlines()]
    assert lines and all(line.split()[0] == "0" for line in lines)  # one class: fracture
    # intact bodies' slices are there as negatives (empty label files)
    assert any(f.read_text() == "" for f in detect.glob("labels/*/*.txt"))


def test_lumbar_mr_export_gives_boxes_crops_and_masks_with_reviews(tmp_path):
    from SpineFractureAILib.results import Finding, Results, Segment
    from SpineFractureAILib.slice_tracks import roi_from_ijk_box
    from SpineFractureAILib.phantom import make_phantom

    case = make_phantom("L2-S1", "mr", [], ["L4-L5"], seed=9, orientation="sagittal", spacing=(2.0, 1.0, 1.0))
    lab = case.labels.voxels
    classes = np.zeros(lab.shape, np.uint8)
    classes[(lab >= 100) & (lab < 200)], classes[(lab >= 1) & (lab <= 28)], classes[lab == 200] = 1, 2, 3
    k, j, i = np.indices(lab.shape, sparse=True)
    a = case.image.ijk_to_ras
    x = a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3]
    classes[np.abs(x - case.truth["discs"][0]["center_ras"][0]) > 4.0] = 0  # as analysed: central slices only
    segments = [Segment(1, "Intervertebral disc", (0, 0, 1)), Segment(2, "Vertebral body", (1, 1, 0)),
                Segment(3, "Spinal canal", (0, 1, 0))]
    findings = []
    for disc in case.truth["discs"]:
        ijk = case.image.ras_to_ijk_points([disc["center_ras"]])[0]
        label = "herniated" if disc["herniated"] else "not herniated"
        findings.append(Finding("disc", label, 0.9, roi_from_ijk_box(case.image, ijk - 5, ijk + 5), level=disc["level"]))
    results = Results(case.image.name, classes, case.image.ijk_to_ras.copy(), segments, findings, modality="mr")
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, case.image)
    out = write_results_to_scene(scene, volume_node, results)
    l2 = next(r for r in out.rois if r.GetName().startswith("L2-L3"))
    l2.SetAttribute("SpineFractureAI.Review", "rejected")  # the researcher says L2-L3 IS herniated
    entry = SpineFractureLogic(scene).export_training_labels(volume_node, out.segmentation, str(tmp_path))
    assert entry["slices"] >= 2 and entry["findings_review"][l2.GetName()] == "rejected"
    crops = np.load(tmp_path / "herniation.npz")
    assert entry["disc_crops"] == len(crops["labels"]) >= 4 * entry["slices"]
    # two discs herniated per slice: L4-L5 (finding) and L2-L3 (rejected "not herniated")
    assert entry["herniated_crops"] == 2 * entry["slices"]
    seg = np.load(tmp_path / "segmentation.npz")
    assert set(np.unique(seg["masks"])) == {0, 1, 2, 3} and len(seg["images"]) == entry["slices"]
    disc_lines = [line for f in (tmp_path / "discs").glob("labels/*/*.txt") for line in f.read_text().splitlines()]
    assert len(disc_lines) >= 4 * entry["slices"]
    SpineFractureLogic(scene).export_training_labels(volume_node, out.segmentation, str(tmp_path))  # appends
    assert len(np.load(tmp_path / "segmentation.npz")["images"]) == 2 * entry["slices"]


def test_moved_morphometry_points_export_as_pose_labels(tmp_path, wedge_phantom):
    results = results_from_truth(wedge_phantom)
    for v in wedge_phantom.truth["vertebrae"]:
        if v["has_body"]:
            results.vertebrae.append(VertebraRow("mask", v["level"], data={
                "status": "measured", "keypoints_ras": v["keypoints_ras"], "heights_mm": v["heights_mm"]}))
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    out = write_results_to_scene(scene, volume_node, results)
    l1 = next(n for n in out.morphometry.points_nodes if n is not None and n.GetName().startswith("L1"))
    moved = np.array(l1.GetNthControlPointPositionWorld(0)) + [0.0, 0.0, -2.0]  # the researcher lowers one point
    l1.SetNthControlPointPositionWorld(0, *moved)
    entry = SpineFractureLogic(scene).export_training_labels(volume_node, out.segmentation, str(tmp_path))
    pose = tmp_path / "vertebra-pose"
    assert entry["pose_images"] > 0 and "kpt_shape: [6, 3]" in (pose / "data.yaml").read_text()
    stack = make_stack(wedge_phantom.image, "sagittal", 256, Intensity(), slice_mm=2.0)
    found = []
    for f in pose.glob("labels/*/*.txt"):
        s = int(f.stem.rsplit("_s", 1)[1])
        for line in f.read_text().splitlines():
            v = np.array(line.split(), float)[5:].reshape(6, 3)
            if v[0, 2] == 2:
                found.append(stack.to_ras(s, v[0, 0] * 256, v[0, 1] * 256))
    # the moved point is exported where the researcher put it (in-plane, to a pixel)
    d = [np.linalg.norm((p - moved)[[1, 2]]) for p in found]
    assert min(d) < stack.pixel_mm
