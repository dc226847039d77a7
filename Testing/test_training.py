"""A tiny YOLOv8-seg trains on exported phantom slices, packages as a bundle and analyses a volume."""
from __future__ import annotations

import json

import numpy as np

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.training.fracture_seg import export_phantom_dataset
from SpineFractureAILib.training.packaging import package_fracture_seg
from SpineFractureAILib.volume import read_volume


def test_export_train_package_analyze(tmp_path):
    data = export_phantom_dataset(tmp_path / "data", n_train=2, n_val=1, size=128, log=lambda *_: None)
    labels = list((tmp_path / "data" / "labels" / "train").glob("*.txt"))
    assert labels and any(f.read_text().strip() for f in labels)
    for line in (ln for f in labels for ln in f.read_text().splitlines()):
        cls, *xy = line.split()
        assert int(cls) in range(4) and len(xy) % 2 == 0 and all(0 <= float(v) <= 1 for v in xy)
    assert main(["train", "fracture-seg", "--data", str(data.parent), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--imgsz", "128", "--batch", "8"]) == 0
    assert (tmp_path / "run" / "weights" / "last.pt").exists()
    bundle_dir = package_fracture_seg(tmp_path / "run", tmp_path / "bundle")
    bundle = load_bundle(bundle_dir)
    assert bundle.manifest["weights"][0]["precision"] == "fp16" and "NOT FOR CLINICAL USE" in bundle.manifest["clinical_use"]
    assert bundle.manifest["input_size"] == 128

    case = make_phantom("L1-L3", "ct", [], [], seed=555, orientation="oblique", spacing=(1.3, 1.3, 1.6))
    image = write_phantom(case, tmp_path / "case.nii.gz")["image"]
    assert main(["analyze", image, "--out", str(tmp_path / "out"), "--bundle", str(bundle_dir), "--device", "cpu"]) == 0
    seg = read_volume(tmp_path / "out" / "case" / "segmentation.seg.nrrd")
    np.testing.assert_allclose(seg.ijk_to_ras, case.image.ijk_to_ras, atol=1e-5)
    assert seg.voxels.shape == case.image.voxels.shape
    report = json.loads((tmp_path / "out" / "case" / "findings.json").read_text())
    assert set(report["timing_s"]) >= {"load", "slice", "model_forward", "fusion", "write"}
    assert report["bundles"][0]["name"] == "fracture-seg-demo"
