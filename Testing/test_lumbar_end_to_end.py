"""Seed 004 end to end with the shipped lumbar MR demo bundle: a phantom with a known herniation and
the real fastcleverseg lumbar MR (outputs on its grid, segments on the analysed slices only)."""
from __future__ import annotations

import json

import numpy as np
import slicer

from SpineFractureAILib.bundles import builtin_bundles, load_bundle
from SpineFractureAILib.cli import main
from SpineFractureAILib.lumbar import analysed_mask
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.results import Roi
from SpineFractureAILib.volume import read_volume


def test_lumbar_bundle_is_small_fp16_and_not_clinical():
    bundle = next(b for b in builtin_bundles() if b.task == "lumbar-mr")
    files = bundle.weight_files()  # every stage's file, sha256 checked
    assert len(files) == 2 + len(bundle.manifest["stages"]["herniation"]["members"]) \
        + len(bundle.manifest["stages"]["segmentation"]["members"])
    assert all(f.stat().st_size < 20 * 2**20 for f in files)
    assert "NOT FOR CLINICAL USE" in bundle.manifest["clinical_use"]
    for kind in ("herniation", "segmentation"):  # grid-searched weights, summing to 1
        weights = [m["weight"] for m in bundle.manifest["stages"][kind]["members"]]
        assert abs(sum(weights) - 1) < 1e-6


def test_mr_phantom_discs_named_and_l4_l5_herniated(tmp_path, capsys):
    case = make_phantom("T12-S1", "mr", [], ["L4-L5"], seed=4242, orientation="sagittal", spacing=(3.0, 0.8, 0.8))
    paths = write_phantom(case, tmp_path / "mr.nii.gz")
    assert main(["analyze", paths["image"], "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "mr" / "findings.json").read_text())
    assert report["modality"] == "mr"
    discs = {f["level"]: f for f in report["findings"] if f["kind"] == "disc"}
    for truth in case.truth["discs"]:
        if truth["level"] == "T12-L1" and truth["level"] not in discs:
            continue  # may be reported too
        found = discs[truth["level"]]
        assert Roi(**found["roi"]).contains(truth["center_ras"]), truth["level"]
        assert found["herniated"] == (truth["level"] == "L4-L5"), (truth["level"], found)
        assert 0 <= found["probability"] <= 1
    markups = json.loads((tmp_path / "out" / "mr" / "findings.mrk.json").read_text())
    names = [m["name"] for m in markups["markups"]]
    assert any(n.startswith("L4-L5 herniated ") for n in names), names


def test_real_lumbar_mr_outputs_on_its_grid_and_only_on_analysed_slices(tmp_path, realdata):
    src = realdata / "fastcleverseg" / "fcs_ivd_img.nii.gz"
    bundle = next(b for b in builtin_bundles() if b.task == "lumbar-mr")
    assert main(["analyze", str(src), "--modality", "mr", "--bundle", str(bundle.path), "--out", str(tmp_path)]) == 0
    image = read_volume(src)
    seg = read_volume(tmp_path / "fcs_ivd_img" / "segmentation.seg.nrrd")
    np.testing.assert_allclose(seg.ijk_to_ras, image.ijk_to_ras, atol=1e-5)
    assert seg.voxels.shape == image.voxels.shape
    report = json.loads((tmp_path / "fcs_ivd_img" / "findings.json").read_text())
    assert [s["name"] for s in report["segments"]] == ["Intervertebral disc", "Vertebral body", "Spinal canal"]
    image.modality = "mr"
    inside = analysed_mask(image, report["lumbar"])
    assert seg.voxels[~inside].max() == 0  # nothing smeared beyond the analysed slices
    assert (seg.voxels[inside] > 0).any()
    assert len(report["lumbar"]["analysed_slices"]) == load_bundle(bundle.path).manifest["mid_slices"]


def test_mr_results_in_a_slicer_scene():
    from SpineFractureAILib.slicer.scene import add_volume_node, write_results_to_scene
    from SpineFractureAILib.terminology import terminology_entry

    case = make_phantom("L1-S1", "mr", [], ["L3-L4"], seed=777, orientation="sagittal", spacing=(3.0, 0.9, 0.9))
    bundle = next(b for b in builtin_bundles() if b.task == "lumbar-mr")
    results = Analyzer([bundle], "cpu").analyze(case.image)
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume_node(scene, case.image)
    out = write_results_to_scene(scene, volume_node, results)
    segmentation = out.segmentation.GetSegmentation()
    import vtk

    disc = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("Intervertebral disc"))
    tag = vtk.reference("")
    assert disc.GetTag("TerminologyEntry", tag)
    assert str(tag) == terminology_entry(results.segments[0])
    assert "SCT^360499006^Intervertebral disc" in str(tag)
    names = [out.rois[n].GetName() for n in range(len(out.rois))]
    assert any(n.startswith("L3-L4 herniated") for n in names), names
