"""DICOM SEG + SR written by `analyze` for DICOM input, read back with highdicom and pydicom."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import slicer
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from SpineFractureAILib.cli import main
from SpineFractureAILib.slicer.logic import SpineFractureLogic
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.slicer.scene import add_volume_node
from SpineFractureAILib.volume import LPS_TO_RAS, read_volume
from SpineFractureAILib.writers.dicom_uids import derived_uid, missing_uids


@pytest.fixture(scope="module")
def analysed_dicom_phantom(tmp_path_factory):
    """A CT phantom with an L1 wedge written as a DICOM series and analysed."""
    root = tmp_path_factory.mktemp("dicom_out")
    assert main(["phantom", str(root / "series"), "--dicom", "--levels", "T11-L3", "--fracture", "L1:wedge:3",
                 "--seed", "7", "--spacing", "1,1,1.5"]) == 0
    assert main(["analyze", str(root / "series"), "--out", str(root / "out")]) == 0
    return root, root / "out" / "series"


def _sources(folder: Path):
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(f) for f in sorted(folder.iterdir()))}


def test_seg_references_the_series_and_matches_the_result_voxel_for_voxel(analysed_dicom_phantom):
    root, case = analysed_dicom_phantom
    sources = _sources(root / "series")
    first = next(iter(sources.values()))
    seg = hd.seg.segread(case / "segmentation.seg.dcm")
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced and referenced <= set(sources)
    assert seg.ContentQualification == "RESEARCH" and "NOT FOR CLINICAL USE" in seg.SeriesDescription

    findings = json.loads((case / "findings.json").read_text())
    names = [s["name"] for s in findings["segments"]]
    assert [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()] == names
    wedge = seg.get_segment_description(names.index("L1 wedge fracture") + 1)
    assert wedge.segmented_property_type == hd.sr.CodedConcept("125605004", "SCT", "Fracture of bone")
    assert wedge.anatomic_regions[0] == codes.SCT.L1Vertebra
    t12 = seg.get_segment_description(names.index("T12 vertebral body") + 1)
    assert t12.segmented_property_type == codes.SCT.T12Vertebra

    # Every frame against the .seg.nrrd of the same run, on the same source image.
    nrrd = read_volume(case / "segmentation.seg.nrrd", modality="labelmap")
    image = read_volume(root / "series")
    lps = LPS_TO_RAS @ image.ijk_to_ras
    checked = 0
    for uid, ds in sources.items():
        k = int(round(np.linalg.solve(lps[:3, :3], np.asarray(ds.ImagePositionPatient, float) - lps[:3, 3])[2]))
        expected = nrrd.voxels[k].astype(int)
        if not expected.any():
            continue
        got = seg.get_pixels_by_source_instance([uid], combine_segments=True, skip_overlap_checks=True)[0]
        assert np.array_equal(got, expected), f"slice {k}"
        checked += 1
    assert checked > 20


def test_sr_holds_one_group_per_measured_vertebra_with_heights_points_and_grade(analysed_dicom_phantom):
    root, case = analysed_dicom_phantom
    findings = json.loads((case / "findings.json").read_text())
    sr = hd.sr.srread(case / "findings.sr.dcm")
    seg = pydicom.dcmread(case / "segmentation.seg.dcm")
    first = next(iter(_sources(root / "series").values()))
    assert sr.StudyInstanceUID == first.StudyInstanceUID
    evidence = {e.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                for s in sr.CurrentRequestedProcedureEvidenceSequence for e in s.ReferencedSeriesSequence}
    assert seg.SOPInstanceUID in evidence

    measured = [v for v in findings["vertebrae"] if v["status"] == "measured"]
    assert len(measured) >= 4
    groups = sr.content.get_image_measurement_groups()
    by_level = {}
    for g in groups:
        if g.finding_type == codes.SCT.Vertebra and g.get_measurements(name=codes.DCM.Height):
            by_level[g.finding_sites[0].value.value] = g
    assert len(by_level) == len(measured)
    for row in measured:
        group = by_level[getattr(codes.SCT, f"{row['level']}Vertebra").value]
        heights = group.get_measurements(name=codes.DCM.Height)
        assert len(heights) == 3
        points = np.asarray(row["keypoints_ras"]) @ LPS_TO_RAS[:3, :3].T
        for n, (name, h) in enumerate(zip(("anterior", "middle", "posterior"), heights)):
            assert h.value == pytest.approx(row["heights_mm"][name], abs=1e-3)
            assert h.unit == codes.UCUM.Millimeter
            coords = h.referenced_coordinates[0]
            assert coords.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID
            assert np.allclose(coords.value, points[[n, n + 3]], atol=1e-3)
        grade = [e for e in group.get_qualitative_evaluations() if e.name.value == "genant-grade"]
        assert grade[0].value.value == f"genant-{row['genant_grade']}"

    # The fracture finding: a volumetric group on its segment in the SEG, with type and confidence.
    wedge = next(f for f in findings["findings"] if f["kind"] == "fracture" and f["level"] == "L1")
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    hit = [g for g in volumetric if g.finding_sites[0].value.value == codes.SCT.L1Vertebra.value]
    assert len(hit) == 1
    ref = hit[0].referenced_segment[0]  # the IMAGE item: the SEG instance and segment number
    assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert ref.ReferencedSOPSequence[0].ReferencedSegmentNumber == wedge["segment_value"]
    assert hit[0].get_measurements(name=codes.DCM.Probability)[0].value == pytest.approx(wedge["confidence"], abs=1e-4)
    types = [e.value.value for e in hit[0].get_qualitative_evaluations(name=codes.SCT.AssociatedMorphology)]
    assert types == ["wedge"]


def test_a_rerun_replaces_rather_than_duplicates(analysed_dicom_phantom, tmp_path):
    root, case = analysed_dicom_phantom
    assert main(["analyze", str(root / "series"), "--out", str(tmp_path)]) == 0
    for name in ("segmentation.seg.dcm", "findings.sr.dcm"):
        a, b = pydicom.dcmread(case / name), pydicom.dcmread(tmp_path / "series" / name)
        assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)
        assert UID(a.SOPInstanceUID).is_valid


def test_series_without_uids_gets_a_warning_and_valid_seg_sr_on_a_reidentified_copy(realdata, tmp_path):
    source = realdata / "totalsegmentator" / "example_ct_dicom"
    originals = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(source.iterdir())]
    assert "SeriesInstanceUID" in missing_uids(originals)
    assert main(["analyze", str(source), "--out", str(tmp_path)]) == 0
    case = tmp_path / "example_ct_dicom"
    findings = json.loads((case / "findings.json").read_text())
    assert any("new UIDs" in w and "source-reidentified" in w for w in findings["warnings"])
    copies = [pydicom.dcmread(f) for f in sorted((case / "source-reidentified").iterdir())]
    assert len(copies) == len(originals) and missing_uids(copies) == []
    assert all(UID(ds.SOPInstanceUID).is_valid and UID(ds.SeriesInstanceUID).is_valid for ds in copies)
    original = {tuple(ds.ImagePositionPatient): ds for ds in (pydicom.dcmread(f) for f in sorted(source.iterdir()))}
    for copy in copies[::7]:  # pixels and position unchanged
        assert np.array_equal(copy.pixel_array, original[tuple(copy.ImagePositionPatient)].pixel_array)
    seg = hd.seg.segread(case / "segmentation.seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == copies[0].SeriesInstanceUID
    assert {uid for *_, uid in seg.get_source_image_uids()} <= {ds.SOPInstanceUID for ds in copies}
    sr = hd.sr.srread(case / "findings.sr.dcm")
    assert sr.StudyInstanceUID == copies[0].StudyInstanceUID
    # The copy is the same on a re-run (UIDs derived from the files' bytes).
    again = tmp_path / "again"
    assert main(["analyze", str(source), "--out", str(again)]) == 0
    assert pydicom.dcmread(sorted((again / "example_ct_dicom" / "source-reidentified").iterdir())[0]).SOPInstanceUID \
        == copies[0].SOPInstanceUID


def test_derived_uids_are_valid_and_stable():
    a, b = derived_uid("x", "seg"), derived_uid("x", "sr")
    assert a == derived_uid("x", "seg") and a != b
    assert UID(a).is_valid and len(a) <= 64 and a.startswith("2.25.")


def test_phantom_dicom_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["phantom", str(tmp_path / "busy"), "--dicom"]) == 2
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    shutil.rmtree(tmp_path / "busy")


def test_slicer_report_of_a_volume_loaded_from_dicom_includes_seg_and_sr(analysed_dicom_phantom, tmp_path):
    """The panel's Save report on a node with Slicer's DICOM.instanceUIDs: SEG + SR reference its series."""
    root, _ = analysed_dicom_phantom
    files = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: str(f) for f in (root / "series").iterdir()}
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, read_volume(root / "series"))
    node.SetAttribute("DICOM.instanceUIDs", " ".join(files))
    logic = SpineFractureLogic(scene, dicom_file_for=files.get)
    _, results = logic.analyze(node)
    paths = logic.save_report(node, results, str(tmp_path))
    seg = hd.seg.segread(paths["dicom_seg"])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(next(iter(files.values()))).SeriesInstanceUID
    assert hd.sr.srread(paths["dicom_sr"]).content.get_image_measurement_groups()
    # A node that did not come from DICOM: no SEG/SR, and nothing pretends otherwise.
    node.RemoveAttribute("DICOM.instanceUIDs")
    plain = logic.save_report(node, results, str(tmp_path / "plain"))
    assert "dicom_seg" not in plain and not (tmp_path / "plain" / results.case / "segmentation.seg.dcm").exists()


def test_nifti_with_its_reference_series_gets_seg_and_sr_and_a_wrong_one_a_warning(tmp_path):
    case = make_phantom("T12-L2", "ct", ["L1:crush:3"], [], seed=61, spacing=(1.5, 1.5, 1.5))
    write_phantom(case, tmp_path / "series", dicom=True)
    write_phantom(case, tmp_path / "converted.nii.gz")
    assert main(["analyze", str(tmp_path / "converted.nii.gz"), "--reference-series", str(tmp_path / "series"),
                 "--out", str(tmp_path / "out")]) == 0
    seg = hd.seg.segread(tmp_path / "out" / "converted" / "segmentation.seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == \
        pydicom.dcmread(next((tmp_path / "series").iterdir())).SeriesInstanceUID
    # A reference series on another grid: no SEG/SR that would point at the wrong images, and a warning.
    other = make_phantom("T12-L2", "ct", [], [], seed=62, spacing=(2.0, 2.0, 2.0))
    write_phantom(other, tmp_path / "other", dicom=True)
    assert main(["analyze", str(tmp_path / "converted.nii.gz"), "--reference-series", str(tmp_path / "other"),
                 "--out", str(tmp_path / "wrong")]) == 0
    findings = json.loads((tmp_path / "wrong" / "converted" / "findings.json").read_text())
    assert any(w.startswith("no DICOM SEG/SR:") for w in findings["warnings"])
    assert not (tmp_path / "wrong" / "converted" / "segmentation.seg.dcm").exists()
