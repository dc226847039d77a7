"""A DICOM folder with two series of equal size: the documented rule picks the anatomy, not the
noise; the choice is recorded in findings.json and warned; --series picks the other."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.volume import read_volume, to_sitk


def write_series(image, folder, series_uid: str, prefix: str) -> None:
    """One file per axial slice, as scanners write them (SimpleITK's DICOM series recipe)."""
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.826.0.1.3680043.8.498.1"),
                           ("0020|000e", series_uid), ("0020|0013", str(k + 1)),
                           ("0008|0018", f"{series_uid}.{k + 1}"),
                           ("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k))))),
                           ("0020|0037", "\\".join(map(str, direction[0:3] + direction[3:6]))),
                           ("0018|0050", str(image.GetSpacing()[2]))):
            piece.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:03d}.dcm"))
        writer.Execute(piece)


def test_two_equal_series_the_rule_the_record_and_the_flag(tmp_path, capsys):
    case = make_phantom("L1-L2", "ct", [], [], seed=3, spacing=(1.5, 1.5, 3.0))
    ct = sitk.Cast(to_sitk(case.image), sitk.sitkInt16)
    noise = sitk.GetImageFromArray(np.random.default_rng(0).integers(-1000, 1500, sitk.GetArrayFromImage(ct).shape)
                                   .astype(np.int16))
    noise.CopyInformation(ct)
    folder = tmp_path / "study"
    folder.mkdir()
    write_series(noise, folder, "1.2.826.0.1.3680043.8.498.2", "a")  # first by name and by UID
    write_series(ct, folder, "1.2.826.0.1.3680043.8.498.3", "b")
    chosen = read_volume(folder)
    assert chosen.metadata["dicom_series"]["series_uid"].endswith(".3")  # the anatomy
    np.testing.assert_array_equal(chosen.voxels, sitk.GetArrayFromImage(ct))
    assert main(["analyze", str(folder), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "study" / "findings.json").read_text())
    assert report["dicom_series"]["series_uid"].endswith(".3") and len(report["dicom_series"]["other_series"]) == 1
    assert any("holds 2 series" in w for w in report["warnings"])
    assert "holds 2 series" in capsys.readouterr().err
    other = read_volume(folder, series="1.2.826.0.1.3680043.8.498.2")
    assert other.metadata["dicom_series"]["rule"] == "chosen with --series"
    assert main(["analyze", str(folder), "--series", "9.9.9", "--out", str(tmp_path / "o2")]) == 2
    assert "no series 9.9.9" in capsys.readouterr().err
