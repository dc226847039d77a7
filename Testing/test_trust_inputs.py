"""Inputs that cannot silently corrupt a result, outputs that are never half-written: truncated and
corrupt files, NaN in NIfTI, a header that declares a huge volume, clashing case names, an --out
that is a file, and a `bundle` that fails over an existing bundle."""
from __future__ import annotations

import gzip
import json
import shutil
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SpineFractureAILib.bundles import builtin_bundle_dir, load_bundle, sha256_of
from SpineFractureAILib.case_runner import case_names
from SpineFractureAILib.cli import main
from SpineFractureAILib.volume import Volume, write_volume


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, [line for line in err if line.startswith("spinefracture: error:")]


def _ct(path, shape=(40, 40, 40), dtype=np.int16):
    rng = np.random.default_rng(0)
    write_volume(Volume((rng.random(shape) * 1500 - 1000).astype(dtype), np.diag([1.0, 1.0, 2.0, 1.0]), "ct"), path)
    return path


def test_truncated_gzip_is_refused(tmp_path, capsys):
    good = _ct(tmp_path / "good.nii.gz")
    data = good.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    code, errors = _run(capsys, "analyze", str(bad), "--out", str(tmp_path / "out"), "--modality", "ct")
    assert code == 2 and len(errors) == 1 and "truncated or corrupt" in errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_nan_in_nifti_is_found(tmp_path, capsys):
    voxels = np.random.default_rng(1).random((20, 20, 20)).astype(np.float32) * 1000
    voxels[3, 4, 5] = np.nan
    voxels[6, 7, 8] = np.inf
    sitk.WriteImage(sitk.GetImageFromArray(voxels), str(tmp_path / "nan.nii.gz"))
    assert not np.isnan(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "nan.nii.gz")))).any()  # ITK hides it
    code, errors = _run(capsys, "analyze", str(tmp_path / "nan.nii.gz"), "--out", str(tmp_path / "out"))
    assert code == 2 and "2 NaN or infinite voxels" in errors[0]


def test_a_header_declaring_a_huge_volume_is_refused_unread(tmp_path, capsys):
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, 2000, 2000, 2000, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # int16
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)
    header[344:348] = b"n+1\0"
    path = tmp_path / "bomb.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes(header) + bytes(1000))
    code, errors = _run(capsys, "analyze", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "header declares 8000000000 voxels" in errors[0]


def test_out_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    image = _ct(tmp_path / "ct.nii.gz")
    (tmp_path / "taken").write_text("x")
    code, errors = _run(capsys, "analyze", str(image), "--out", str(tmp_path / "taken"))
    assert code == 2 and "is a file" in errors[0]
    assert (tmp_path / "taken").read_text() == "x"


def test_clashing_case_names_get_stable_distinct_folders(tmp_path):
    a, b = tmp_path / "a" / "scan.nii.gz", tmp_path / "b" / "scan.nii.gz"
    names = case_names([str(a), str(b), str(tmp_path / "other.nii.gz")])
    assert len(set(names.values())) == 3 and names[str(tmp_path / "other.nii.gz")] == "other"
    assert all(n.startswith("scan-") for n in (names[str(a)], names[str(b)]))
    assert case_names([str(b), str(a)]) == {str(b): names[str(b)], str(a): names[str(a)]}  # order-free


def test_failed_bundle_leaves_the_existing_bundle_untouched(tmp_path, capsys):
    existing = tmp_path / "bundle"
    shutil.copytree(builtin_bundle_dir() / "fracture-seg-demo", existing)
    before = {p.name: sha256_of(p) for p in existing.iterdir()}
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.safetensors").write_bytes(b"not weights")  # packaging fails on it
    code, errors = _run(capsys, "bundle", "fracture-seg", str(run), "--out", str(existing))
    assert code == 2 and errors
    assert {p.name: sha256_of(p) for p in existing.iterdir()} == before
    load_bundle(existing).weight_files()  # still passes its own checks
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


@pytest.mark.parametrize("argv,expected", [
    (["phantom", "P.nii.gz", "--spacing", "0"], "each from 0.05 to 20 mm"),
    (["phantom", "P.nii.gz", "--spacing", "1,1"], "one value or three"),
    (["analyze", "CT", "--out", "OUT", "--device", "gpu0"], "not a device name"),
    (["analyze", "CT", "--out", "OUT", "--device", "mps"], "MPS is not available"),
])
def test_bad_flags_get_one_line_errors(tmp_path, capsys, argv, expected):
    image = _ct(tmp_path / "ct.nii.gz")
    argv = [str(image) if a == "CT" else str(tmp_path / a) if a in ("OUT", "P.nii.gz") else a for a in argv]
    code, errors = _run(capsys, *argv)
    assert code == 2 and len(errors) == 1 and expected in errors[0]
    assert not (tmp_path / "P.nii.gz").exists()


def test_a_forced_wrong_modality_is_refused_or_warned(tmp_path, capsys, realdata):
    mr = realdata / "fastcleverseg" / "fcs_ivd_img.nii.gz"
    code, errors = _run(capsys, "analyze", str(mr), "--modality", "ct", "--out", str(tmp_path / "out"))
    assert code == 2 and "not Hounsfield units" in errors[0]
    from SpineFractureAILib.volume import check_modality, read_volume

    ct = read_volume(realdata / "tptbox" / "sub-ct_label-22_ct.nii.gz", "mr")
    assert "look like CT Hounsfield units" in check_modality(ct)[0]
    ct.modality = "ct"
    assert check_modality(ct) == []  # a tight crop with no air still has fat and bone


def test_an_mr_without_a_spine_says_no_spine_found(tmp_path, capsys):
    """A brain-like blob analysed as MR: no vertebra named, no finding, and the reason on stderr."""
    rng = np.random.default_rng(0)
    k, j, i = np.indices((40, 200, 200))
    blob = (((i - 100) / 70.0) ** 2 + ((j - 100) / 85.0) ** 2 + ((k - 20) / 18.0) ** 2 < 1) * 600.0
    voxels = ndimage.gaussian_filter(blob + rng.normal(0, 40, blob.shape), 1.5) + 50
    write_volume(Volume(voxels.astype(np.float32), np.diag([1.0, 1.0, 4.0, 1.0]), "mr"), tmp_path / "blob.nii.gz")
    assert main(["analyze", str(tmp_path / "blob.nii.gz"), "--out", str(tmp_path / "out"), "--modality", "mr"]) == 0
    assert "no spine found" in capsys.readouterr().err
    found = json.loads((tmp_path / "out" / "blob" / "findings.json").read_text(encoding="utf-8"))
    assert not found["findings"] and not found["vertebrae"]
    assert any(w.startswith("no spine found") for w in found["warnings"])
