"""DICOM SEG + SR of a radiograph (a DX with no Frame of Reference), read back and checked against
the phantom's truth and the run's own .seg.nrrd."""
from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from SpineFractureAILib.cli import main
from SpineFractureAILib.volume import read_volume
from SpineFractureAILib.writers.dicom_uids import missing_uids

from conftest import REPO

BUNDLE = str(REPO / "Resources" / "Models" / "radiograph-fracture-demo")


@pytest.fixture(scope="module")
def analysed_film(tmp_path_factory):
    """A MONOCHROME1 DX film with an L1 wedge (seed 71, no other test's), analysed."""
    root = tmp_path_factory.mktemp("xr_dicom_out")
    assert main(["phantom", str(root / "film.dcm"), "--modality", "xr", "--levels", "T10-L3", "--fracture",
                 "L1:wedge:3:fresh", "--seed", "71", "--monochrome1"]) == 0
    assert main(["analyze", str(root / "film.dcm"), "--out", str(root / "out"), "--bundle", BUNDLE]) == 0
    return root, root / "out" / "film"


def _frames_by_segment(seg) -> dict[int, np.ndarray]:
    # pydicom decodes the bit-packed frames; highdicom 0.28's reader wants a Slice Thickness that a
    # SEG without a Frame of Reference need not have (PS3.3 C.7.6.16.2.1), so it is not used here.
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    return {int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber): pixels[n]
            for n, f in enumerate(seg.PerFrameFunctionalGroupsSequence)}


def test_radiograph_seg_is_the_result_on_the_one_source_image(analysed_film):
    root, case = analysed_film
    source = pydicom.dcmread(root / "film.dcm")
    findings = json.loads((case / "findings.json").read_text(encoding="utf-8"))
    assert not any("SEG/SR" in w for w in findings["warnings"]), findings["warnings"]
    seg = pydicom.dcmread(case / "segmentation.seg.dcm")
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == source.StudyInstanceUID
    assert "FrameOfReferenceUID" not in source and "FrameOfReferenceUID" not in seg
    assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        image = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert image.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [s["name"] for s in findings["segments"]]

    labels = read_volume(case / "segmentation.seg.nrrd", modality="labelmap").voxels[0]
    frames = _frames_by_segment(seg)
    assert sorted(frames) == [s["value"] for s in findings["segments"]]
    for number, mask in frames.items():
        assert mask.any() and np.array_equal(mask > 0, labels == number), number

    truth = json.loads((root / "film.truth.json").read_text(encoding="utf-8"))
    l1 = next(v for v in truth["vertebrae"] if v["level"] == "L1")
    wedge = next(f for f in findings["findings"] if f["kind"] == "fracture")
    col, row = np.round(np.mean(l1["keypoints_px"], axis=0)).astype(int)
    assert frames[wedge["segment_value"]][row, col], "the fracture's segment misses the true L1 centre"


def test_radiograph_sr_has_heights_as_pixel_polylines_and_the_fracture_on_its_seg_frame(analysed_film):
    root, case = analysed_film
    source = pydicom.dcmread(root / "film.dcm", stop_before_pixels=True)
    spacing = float(source.PixelSpacing[0])
    findings = json.loads((case / "findings.json").read_text(encoding="utf-8"))
    sr = hd.sr.srread(case / "findings.sr.dcm")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR: 2D coordinates only
    assert sr.StudyInstanceUID == source.StudyInstanceUID and UID(sr.SOPInstanceUID).is_valid

    measured = [v for v in findings["vertebrae"] if v["status"] == "measured"]
    assert len(measured) >= 4
    groups = {g.finding_sites[0].value.value: g for g in sr.content.get_image_measurement_groups()
              if g.get_measurements(name=codes.DCM.Height)}
    assert len(groups) == len(measured)
    for row in measured:
        heights = groups[getattr(codes.SCT, f"{row['level']}Vertebra").value].get_measurements(name=codes.DCM.Height)
        # The film's frame: column = -A / spacing, row = -S / spacing; DICOM pixel centres are at +0.5.
        pixels = np.array([[-p[1] / spacing + 0.5, -p[2] / spacing + 0.5] for p in row["keypoints_ras"]])
        for n, (name, height) in enumerate(zip(("anterior", "middle", "posterior"), heights)):
            coords = height.referenced_coordinates[0]
            assert coords.GraphicType == "POLYLINE"
            assert coords.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
            polyline = np.asarray(coords.GraphicData, float).reshape(2, 2)
            assert np.allclose(polyline, pixels[[n, n + 3]], atol=1e-3)
            assert height.value == pytest.approx(row["heights_mm"][name], abs=1e-3)
            assert np.linalg.norm(polyline[0] - polyline[1]) * spacing == pytest.approx(height.value, abs=0.02)

    seg = pydicom.dcmread(case / "segmentation.seg.dcm")
    wedge = next(f for f in findings["findings"] if f["kind"] == "fracture")
    planar = [g for g in sr.content.get_planar_roi_measurement_groups()
              if g.finding_sites[0].value == codes.SCT.L1Vertebra]
    assert len(planar) == 1
    item = planar[0].referenced_segmentation_frame[0].ReferencedSOPSequence[0]
    assert item.ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert item.ReferencedSegmentNumber == wedge["segment_value"]
    frame = seg.PerFrameFunctionalGroupsSequence[int(item.ReferencedFrameNumber) - 1]
    assert frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber == wedge["segment_value"]


def test_radiograph_without_uids_gets_seg_sr_on_a_reidentified_copy_without_a_frame_of_reference(analysed_film,
                                                                                                  tmp_path):
    root, _ = analysed_film
    film = pydicom.dcmread(root / "film.dcm")
    film.SeriesInstanceUID = ""
    film.save_as(tmp_path / "blank.dcm")
    assert missing_uids([film], frame_of_reference=False) == ["SeriesInstanceUID"]
    assert main(["analyze", str(tmp_path / "blank.dcm"), "--out", str(tmp_path / "out"), "--bundle", BUNDLE]) == 0
    case = tmp_path / "out" / "blank"
    findings = json.loads((case / "findings.json").read_text(encoding="utf-8"))
    assert any("new UIDs" in w for w in findings["warnings"])
    copy = pydicom.dcmread(next((case / "source-reidentified").iterdir()))
    assert UID(copy.SeriesInstanceUID).is_valid and "FrameOfReferenceUID" not in copy
    assert np.array_equal(copy.pixel_array, film.pixel_array)
    seg = pydicom.dcmread(case / "segmentation.seg.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == copy.SeriesInstanceUID
