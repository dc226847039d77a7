"""Correction loop: exported labels, re-imported, equal the (edited) segments."""
from __future__ import annotations

import json

import cv2
import numpy as np
import slicer

from conftest import results_from_truth
from SpineFractureAILib.logic import SpineFractureLogic
from SpineFractureAILib.scene import add_volume_node, write_results_to_scene
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
    from SpineFractureAILib.scene import previous_results_edited

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
