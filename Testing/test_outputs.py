"""Writers: files re-read (SimpleITK and slicer-core's own readers) and a real MRML scene."""
from __future__ import annotations

import json

import numpy as np
import pytest
import slicer

from conftest import results_from_truth
from SpineFractureAILib.files import write_case
from SpineFractureAILib.results import Roi
from SpineFractureAILib.slicer.scene import (add_volume_node, remove_previous_results, volume_from_node,
                                      write_results_to_scene)
from SpineFractureAILib.volume import read_volume


def _l1(case):
    return next(v for v in case.truth["vertebrae"] if v["level"] == "L1")


def test_case_files_reread_with_input_geometry(tmp_path, wedge_phantom):
    results = results_from_truth(wedge_phantom)
    paths = write_case(results, tmp_path)
    seg = read_volume(paths["segmentation"])
    np.testing.assert_allclose(seg.ijk_to_ras, wedge_phantom.image.ijk_to_ras, atol=1e-5)
    np.testing.assert_array_equal(seg.voxels, results.labelmap)
    findings = json.loads(open(paths["findings"]).read())["findings"]
    assert [f["label"] for f in findings] == ["wedge"]
    assert Roi(**findings[0]["roi"]).contains(_l1(wedge_phantom)["center_ras"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_slicer_reads_segmentation_and_rois(tmp_path, wedge_phantom):
    results = results_from_truth(wedge_phantom)
    paths = write_case(results, tmp_path)
    scene = slicer.vtkMRMLScene()
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(paths["segmentation"])
    assert storage.ReadData(seg_node)
    segmentation = seg_node.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    assert names == ["Vertebral body", "Wedge fracture", "Biconcave fracture", "Crush fracture"]
    wedge = segmentation.GetSegment("Segment_2")
    assert wedge.GetLabelValue() == 2
    reader = slicer.vtkMRMLMarkupsROIJsonStorageNode()  # what Slicer picks for type ROI
    scene.AddNode(reader)
    roi = reader.AddNewMarkupsNodeFromFile(paths["markups"], "roi", 0)
    center = [0.0, 0.0, 0.0]
    roi.GetCenterWorld(center)
    np.testing.assert_allclose(center, results.findings[0].roi.center_ras, atol=1e-3)
    np.testing.assert_allclose(roi.GetSize(), results.findings[0].roi.size_mm, atol=1e-3)


def test_scene_writer_aligns_segments_and_rois_to_the_volume(wedge_phantom):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    results = results_from_truth(wedge_phantom)
    out = write_results_to_scene(scene, volume_node, results)
    # segmentation -> labelmap on the volume's grid equals what we wrote
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToLabelmapNode(out.segmentation, label_node, 0)  # 0: reference geometry
    back = volume_from_node(label_node)
    np.testing.assert_allclose(back.ijk_to_ras, wedge_phantom.image.ijk_to_ras, atol=1e-5)
    assert back.voxels.shape == results.labelmap.shape
    assert ((back.voxels > 0) == (results.labelmap > 0)).mean() > 0.999
    (roi,) = out.rois
    x = [0.0, 0.0, 0.0]
    roi.GetXAxisWorld(x)
    np.testing.assert_allclose(x, wedge_phantom.image.ijk_to_ras[:3, 0] / wedge_phantom.image.spacing[0], atol=1e-6)
    centre = [0.0, 0.0, 0.0]
    roi.GetCenterWorld(centre)
    assert Roi(list(centre), list(roi.GetSize()), results.findings[0].roi.axes_ras).contains(_l1(wedge_phantom)["center_ras"])
    assert roi.GetName().startswith("L1 wedge")
    assert out.table.GetTable().GetNumberOfRows() == 1
    sh = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    assert sh.GetItemParent(sh.GetItemByDataNode(roi)) == out.folder_item
    assert remove_previous_results(scene, volume_node) == 3
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode") == 0


def test_morphometry_markups_are_editable_and_regrade(wedge_phantom):
    """Moving a keypoint re-measures the vertebra: heights, grade, lines and table follow."""
    from SpineFractureAILib.results import VertebraRow
    from SpineFractureAILib.spine_morphometry import measure_labelmap

    names = {v["label"]: v["level"] for v in wedge_phantom.truth["vertebrae"]}
    labels = np.where(np.isin(wedge_phantom.labels.voxels, list(names)), wedge_phantom.labels.voxels, 0)
    results = results_from_truth(wedge_phantom)
    results.vertebrae = [VertebraRow.from_json({"method": "mask", **m.to_json()}) for m in measure_labelmap(
        labels.astype(np.uint16), wedge_phantom.image.ijk_to_ras, names)]
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    morph = write_results_to_scene(scene, volume_node, results).morphometry
    table = morph.table.GetTable()
    row = {table.GetValue(r, 0).ToString(): r for r in range(table.GetNumberOfRows())}
    assert table.GetValue(row["L1"], 6).ToDouble() == 3 and table.GetValue(row["L1"], 7).ToString() == "wedge"
    assert table.GetValue(row["L2"], 6).ToDouble() == 0
    n = [r["level"] for r in morph.rows].index("L2")
    l2 = morph.points_nodes[n]
    line = morph.lines[n][0]
    before = line.GetLineLengthWorld()
    up = np.array(wedge_phantom.truth["vertebrae"][3]["superior_axis_ras"])
    p = np.array(l2.GetNthControlPointPositionWorld(0)) - 9.0 * up  # sink the anterior superior point 9 mm
    l2.SetNthControlPointPositionWorld(0, *p)
    assert abs(line.GetLineLengthWorld() - (before - 9.0)) < 0.3
    assert table.GetValue(row["L2"], 6).ToDouble() >= 2 and table.GetValue(row["L2"], 7).ToString() == "wedge"
    assert morph.rows[n]["edited"] is True
    assert remove_previous_results(scene, volume_node) > 3
    assert scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == 0


def test_results_table_rows_targets_and_reviews(wedge_phantom):
    from SpineFractureAILib.slicer.table_model import COLUMNS, ResultsTable

    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    results = results_from_truth(wedge_phantom)
    outputs = write_results_to_scene(scene, volume_node, results)
    table = ResultsTable(outputs, results)
    assert len(table.rows) == 1 and table.cell(0, COLUMNS.index("finding")) == "wedge fracture"
    assert table.cell(0, COLUMNS.index("level")) == "L1"
    centre, roi = table.target(0)
    assert roi is outputs.rois[0] and Roi(**results.findings[0].roi.__dict__).contains(centre)
    table.set_review(0, "rejected")
    assert outputs.rois[0].GetAttribute("SpineFractureAI.Review") == "rejected" and table.cell(0, 5) == "rejected"


def test_warnings_come_first_in_the_table_and_the_status_line(wedge_phantom):
    """A run that could not do all it was asked must not read as a clean scan in the panel either."""
    from SpineFractureAILib.slicer.table_model import COLUMNS, ResultsTable, status_text

    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    results = results_from_truth(wedge_phantom)
    results.warnings = ["no spine found: no spinal canal in this CT", "levels: not run"]
    table = ResultsTable(write_results_to_scene(scene, volume_node, results), results)
    assert [r.kind for r in table.rows] == ["warning", "warning", "fracture"]
    assert table.cell(0, COLUMNS.index("finding")) == "warning: no spine found: no spinal canal in this CT"
    assert table.target(0) == (None, None)
    with pytest.raises(ValueError):
        table.set_review(0, "accepted")  # a warning is not a finding to review
    line = status_text(results, 2.0)
    assert line.startswith("1 finding(s) in 2.0 s; 2 warning(s), read them first: no spine found")
    assert status_text(results_from_truth(wedge_phantom), 2.0) == "1 finding(s) in 2.0 s"


def test_panel_parameters_survive_saving_and_reloading_the_scene(tmp_path, wedge_phantom):
    import pytest

    from SpineFractureAILib.slicer.parameters import PanelParameters

    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    outputs = write_results_to_scene(scene, volume_node, results_from_truth(wedge_phantom))
    PanelParameters("/bundles/mine", "cpu", "ct", 0.4, "fractures,levels", volume_node, outputs.segmentation,
                    outputs.table).save(scene)
    scene.SetRootDirectory(str(tmp_path))
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    reloaded = slicer.vtkMRMLScene()
    reloaded.SetURL(str(tmp_path / "scene.mrml"))
    assert reloaded.Import()
    p = PanelParameters.load(reloaded)
    assert (p.bundle_path, p.device, p.modality, p.fracture_confidence, p.analyses) == \
        ("/bundles/mine", "cpu", "ct", 0.4, "fractures,levels")
    assert p.input_volume.GetName() == volume_node.GetName()
    assert p.segmentation.GetName() == outputs.segmentation.GetName() and p.table is not None
    with pytest.raises(ValueError, match="device"):
        PanelParameters(device="tpu")


def test_a_disc_placed_between_bodies_says_so_in_the_table(wedge_phantom):
    """A disc the lumbar detector missed, placed in the gap between two bodies, must not read in the
    panel as one a model found."""
    from SpineFractureAILib.results import Finding
    from SpineFractureAILib.slicer.table_model import COLUMNS, ResultsTable

    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, wedge_phantom.image)
    results = results_from_truth(wedge_phantom)
    roi = results.findings[0].roi
    results.findings += [Finding("disc", "not herniated", 0.9, roi, level="T11-T12", extra={"probability": 0.1, "placed": "x"}),
                         Finding("disc", "not herniated", 0.8, roi, level="L1-L2", extra={"probability": 0.2})]
    table = ResultsTable(write_results_to_scene(scene, volume_node, results), results)
    cells = {table.cell(r, COLUMNS.index("level")): table.cell(r, COLUMNS.index("finding"))
             for r in range(len(table.rows)) if table.rows[r].kind == "disc"}
    assert cells == {"T11-T12": "not herniated (placed between the bodies: not detected)", "L1-L2": "not herniated"}
