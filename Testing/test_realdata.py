"""Real scans from ../shared/realdata load with the geometry SimpleITK reports (RAS = flipped LPS)."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from SpineFractureAILib.volume import read_volume

TOTALSEG = ["example_ct.nii.gz", "example_ct_sm.nii.gz", "example_mr_sm.nii.gz", "example_seg.nii.gz",
            "example_seg_mr.nii.gz", "example_ct_dicom"]


def _sitk_ras_affine(image):
    d = np.array(image.GetDirection()).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = d * np.array(image.GetSpacing())
    m[:3, 3] = image.GetOrigin()
    return np.diag([-1, -1, 1, 1]) @ m


def _sitk_read(path):
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


@pytest.mark.parametrize("name", TOTALSEG)
def test_totalsegmentator_files_load_with_sitk_geometry(realdata, name):
    path = realdata / "totalsegmentator" / name
    volume = read_volume(path)
    image = _sitk_read(path)
    np.testing.assert_allclose(volume.ijk_to_ras, _sitk_ras_affine(image), atol=1e-4)
    assert volume.shape_ijk == image.GetSize()
    np.testing.assert_array_equal(volume.voxels, sitk.GetArrayFromImage(image))


def test_dicom_series_is_a_ct_with_its_tags(realdata):
    volume = read_volume(realdata / "totalsegmentator" / "example_ct_dicom")
    assert volume.shape_ijk == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing, [0.98, 0.98, 2.0], atol=0.01)
    assert volume.modality == "ct" and volume.metadata["Modality"] == "CT"
    assert "StudyInstanceUID" in volume.metadata  # present (blank in this anonymised series)


@pytest.mark.parametrize("rel,modality", [("totalsegmentator/example_ct.nii.gz", "ct"),
                                          ("totalsegmentator/example_mr_sm.nii.gz", "mr"),
                                          ("tptbox/sub-ct_label-22_ct.nii.gz", "ct"),
                                          ("fastcleverseg/fcs_ivd_img.nii.gz", "mr")])
def test_modality_is_detected_from_intensities(realdata, rel, modality):
    assert read_volume(realdata / rel).modality == modality


def test_example_ct_is_ras_stored(realdata):
    """README: direction diag(-1,-1,1) in LPS terms, i.e. i runs towards R... check our sign flip."""
    volume = read_volume(realdata / "totalsegmentator" / "example_ct.nii.gz")
    np.testing.assert_allclose(volume.ijk_to_ras[:3, :3], np.diag([3.0, 3.0, 3.0]), atol=1e-3)
