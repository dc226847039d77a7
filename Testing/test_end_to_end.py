"""The shipped demo bundle, end to end: phantoms with known fractures, the real CT, DICOM, the logic."""
from __future__ import annotations

import json

import numpy as np
import pytest
import slicer

from SpineFractureAILib.bundles import builtin_bundles
from SpineFractureAILib.cli import analyze_paths, main
from SpineFractureAILib.slicer.logic import SpineFractureLogic
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.results import Roi
from SpineFractureAILib.slicer.scene import add_volume_node
from SpineFractureAILib.volume import read_volume


def test_demo_bundle_is_shipped_small_and_labelled_not_clinical():
    bundles = {b.name: b for b in builtin_bundles()}
    demo = bundles["fracture-seg-demo"]
    assert "NOT FOR CLINICAL USE" in demo.manifest["clinical_use"]
    (weights,) = demo.weight_files()  # sha256 verified
    assert weights.stat().st_size < 20 * 2**20
    assert demo.manifest["weights"][0]["precision"] == "fp16"


def test_demo_command_finds_the_l1_wedge(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["wedge_roi_contains_L1_center"] is True
    assert report["wedge_reported_at"] == ["L1"]  # the level classifier runs by default
    seg = read_volume(report["results"]["segmentation"])
    image = read_volume(report["phantom"])
    np.testing.assert_allclose(seg.ijk_to_ras, image.ijk_to_ras, atol=1e-5)
    assert seg.voxels.shape == image.voxels.shape
    page = (tmp_path / "results" / "phantom_L1_wedge" / "report.html").read_text(encoding="utf-8")  # name: phantom_<level>_<type>
    assert page.count("data:image/png;base64,") >= 1 and "<td>wedge</td>" in page and "NOT FOR CLINICAL USE" in page


@pytest.mark.parametrize("levels,fracture,seed,orientation", [
    ("T10-L3", "L1:wedge:3", 31, "axial"),
    ("T11-L4", "L2:wedge:3", 77, "oblique"),
    ("T9-L2", "T12:wedge:3", 123, "sagittal"),
])
def test_wedge_found_where_it_is_on_unseen_phantoms(tmp_path, levels, fracture, seed, orientation):
    case = make_phantom(levels, "ct", [fracture], [], seed=seed, orientation=orientation)
    paths = write_phantom(case, tmp_path / "case.nii.gz")
    (written,) = analyze_paths([paths["image"]], tmp_path / "out")
    findings = json.loads(open(written["findings"]).read())["findings"]
    level = fracture.split(":")[0]
    centre = next(v["center_ras"] for v in case.truth["vertebrae"] if v["level"] == level)
    assert any(f["label"] == "wedge" and Roi(**f["roi"]).contains(centre) for f in findings), findings
    others = [v["center_ras"] for v in case.truth["vertebrae"] if v["level"] != level and v["has_body"]]
    false = [f for f in findings if f["confidence"] >= 0.5 and any(Roi(**f["roi"]).contains(c) for c in others)
             and not Roi(**f["roi"]).contains(centre)]
    assert not false, false


def test_real_ct_runs_and_outputs_match_its_grid(tmp_path, realdata):
    src = realdata / "totalsegmentator" / "example_ct.nii.gz"
    assert main(["analyze", str(src), "--out", str(tmp_path)]) == 0
    image = read_volume(src)
    seg = read_volume(tmp_path / "example_ct" / "segmentation.seg.nrrd")
    np.testing.assert_allclose(seg.ijk_to_ras, image.ijk_to_ras, atol=1e-5)
    assert seg.voxels.shape == image.voxels.shape
    report = json.loads((tmp_path / "example_ct" / "findings.json").read_text())
    assert report["modality"] == "ct" and "fracture-seg-demo" in [b["name"] for b in report["bundles"]]
    markups = json.loads((tmp_path / "example_ct" / "findings.mrk.json").read_text())
    assert len(markups["markups"]) == len(report["findings"])


def test_dicom_folder_is_analysed(tmp_path, realdata):
    assert main(["analyze", str(realdata / "totalsegmentator" / "example_ct_dicom"), "--out", str(tmp_path)]) == 0
    seg = read_volume(tmp_path / "example_ct_dicom" / "segmentation.seg.nrrd")
    assert seg.shape_ijk == (512, 512, 20)


def test_logic_on_a_slicer_scene_matches_truth():
    """What the module's self-test does, on slicer-core's real MRML scene."""
    scene = slicer.vtkMRMLScene()
    case = make_phantom("T10-L3", "ct", ["L1:wedge:3"], [], seed=4242)
    node = add_volume_node(scene, case.image)
    logic = SpineFractureLogic(scene)
    outputs, results = logic.analyze(node)
    centre = next(v["center_ras"] for v in case.truth["vertebrae"] if v["level"] == "L1")
    assert any(f.label == "wedge" and f.roi.contains(centre) for f in results.findings)
    assert len(outputs.rois) == len(results.findings)
    before = scene.GetNumberOfNodes()
    logic.analyze(node)  # a re-run replaces, it does not pile up
    assert scene.GetNumberOfNodes() == before


def test_cancelled_run_leaves_the_scene_as_it_was():
    from SpineFractureAILib.progress import Cancelled

    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, make_phantom("L1-L2", "ct", [], [], seed=5).image)
    before = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
    calls = []

    def cancel_after_slicing():
        calls.append(1)
        return len(calls) > 1  # let validation pass, stop at the next stage boundary

    with pytest.raises(Cancelled):
        SpineFractureLogic(scene).analyze(node, cancelled=cancel_after_slicing)
    assert [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())] == before


def test_logic_threshold_override_and_opt_in_keypoint_morphometry():
    scene = slicer.vtkMRMLScene()
    case = make_phantom("T11-L3", "ct", ["L1:wedge:3"], [], seed=4343)
    node = add_volume_node(scene, case.image)
    strict = SpineFractureLogic(scene, thresholds={"fracture_confidence": 1.0})
    _, results = strict.analyze(node)
    assert all(f.source == ["morphometry"] for f in results.findings)  # no model finding passes 1.0
    names = {b.name for b in SpineFractureLogic(scene).analyzer("ct").bundles}
    assert "vertebra-pose-demo" not in names and "fracture-seg-demo" in names  # the keypoint bundle is opt-in
    both = SpineFractureLogic(scene, analyses=("fractures", "keypoints"))
    assert {b.name for b in both.analyzer("ct").bundles} == {"fracture-seg-demo", "fracture-detect-demo",
                                                              "vertebra-pose-demo"}
    _, results = both.analyze(node)
    truth = {v["level"]: v for v in case.truth["vertebrae"]}
    keypoint_rows = [r for r in results.vertebrae if r["method"] == "keypoints"]
    assert len(keypoint_rows) >= 3
    centres = np.array([t["center_ras"] for t in truth.values()])
    for row in keypoint_rows:  # each row's points sit on one true vertebra
        nearest = np.linalg.norm(centres - np.mean(row["keypoints_ras"], 0), axis=1).min()
        assert nearest < 8.0


def test_panel_analyses_choose_the_bundles_by_task_and_modality():
    scene = slicer.vtkMRMLScene()

    def tasks(modality, **kw):
        return sorted(b.task for b in SpineFractureLogic(scene, **kw).analyzer(modality).bundles)

    assert tasks("ct", analyses=("fractures",)) == ["fracture-detect", "fracture-seg"]
    assert tasks("ct", analyses=("fractures", "levels")) == ["fracture-detect", "fracture-seg", "vertebra-levels"]
    assert tasks("mr") == ["lumbar-mr"]
    assert tasks("ct") == ["fracture-detect", "fracture-seg", "vertebra-levels"]  # the defaults on a CT
    assert tasks("ct", analyses=("fractures", "keypoints")) == \
        ["fracture-detect", "fracture-seg", "vertebra-pose"]
    with pytest.raises(ValueError, match="no model bundle"):
        tasks("ct", analyses=("lumbar",))  # lumbar MR only: nothing to run on a CT
    with pytest.raises(ValueError, match="unknown analyses"):
        SpineFractureLogic(scene, analyses=("everything",))
