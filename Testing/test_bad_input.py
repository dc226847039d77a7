"""Bad input gets a one-line error and a non-zero exit; nothing is written."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SpineFractureAILib.bundles import BundleError, load_bundle, sha256_of
from SpineFractureAILib.cli import main
from SpineFractureAILib.volume import Volume, write_volume


@pytest.fixture()
def fake_bundle(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"not a checkpoint" * 100)
    manifest = {"name": "fake", "version": "0", "task": "fracture-seg", "architecture": "yolov8n-seg",
                "modalities": ["ct"], "plane": "sagittal", "input_size": 64,
                "preprocessing": {"type": "ct_window", "center": 400, "width": 1500},
                "classes": ["vertebral body", "wedge", "biconcave", "crush"],
                "weights": [{"file": "model.safetensors", "sha256": sha256_of(folder / "model.safetensors")}]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _ct(voxels, path):
    write_volume(Volume(voxels, np.diag([1.0, 1.0, 2.0, 1.0]), "ct"), path)
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


BAD = {
    "constant": lambda p: _ct(np.full((8, 8, 8), 40, np.int16), p / "constant.nii.gz"),
    "nan": lambda p: _ct(np.where(np.eye(8, dtype=bool)[None], np.nan, -500.0).repeat(8, 0).astype(np.float32),
                         p / "nan.nrrd"),
    "empty file": lambda p: (p / "empty.nii.gz").write_bytes(b"") or str(p / "empty.nii.gz"),
}


@pytest.mark.parametrize("kind,expected", [("constant", "constant"), ("nan", "NaN"), ("empty file", "cannot be read")])
def test_bad_volumes(tmp_path, capsys, fake_bundle, kind, expected):
    path = BAD[kind](tmp_path)
    code, line = _run(capsys, "analyze", path, "--out", str(tmp_path / "out"), "--bundle", str(fake_bundle),
                      "--modality", "ct")
    assert code == 2 and expected in line and line.startswith("spinefracture: error:")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_4d_and_2d_images_are_refused(tmp_path, capsys, fake_bundle):
    four = sitk.JoinSeries([sitk.GetImageFromArray(np.random.rand(6, 6, 6).astype(np.float32))] * 3)
    sitk.WriteImage(four, str(tmp_path / "four.nii.gz"))
    code, line = _run(capsys, "analyze", str(tmp_path / "four.nii.gz"), "--out", str(tmp_path / "o"),
                      "--bundle", str(fake_bundle))
    assert code == 2 and "4D" in line
    sitk.WriteImage(sitk.GetImageFromArray(np.random.rand(32, 32).astype(np.float32)), str(tmp_path / "xray.nii.gz"))
    code, line = _run(capsys, "analyze", str(tmp_path / "xray.nii.gz"), "--out", str(tmp_path / "o"),
                      "--bundle", str(fake_bundle))
    assert code == 2 and "too small to show vertebrae" in line  # a 2D image is a radiograph now
    assert not (tmp_path / "o").exists()


def test_sha256_mismatch_is_refused_before_unpickling(tmp_path, capsys, fake_bundle, wedge_phantom):
    (fake_bundle / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_bundle(fake_bundle).weight_files()
    image = tmp_path / "ph.nii.gz"
    write_volume(wedge_phantom.image, image)
    code, line = _run(capsys, "analyze", str(image), "--out", str(tmp_path / "out"), "--bundle", str(fake_bundle))
    assert code == 2 and "sha256 mismatch" in line
    assert not (tmp_path / "out" / "ph").exists()


def test_unloadable_weights_with_right_sha_get_a_clear_error(tmp_path, capsys, fake_bundle, wedge_phantom):
    image = tmp_path / "ph.nii.gz"
    write_volume(wedge_phantom.image, image)
    code, line = _run(capsys, "analyze", str(image), "--out", str(tmp_path / "out"), "--bundle", str(fake_bundle))
    assert code == 2 and "not a loadable YOLO model" in line
    assert not (tmp_path / "out" / "ph").exists()


def test_manifest_problems_are_named(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(BundleError, match="lacks version"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no manifest.json"):
        load_bundle(tmp_path / "nowhere")
