"""A tiny YOLOv8-seg trains on exported phantom slices, packages as a bundle and analyses a volume."""
from __future__ import annotations

import json

import numpy as np
import torch

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.cli import main
from SpineFractureAILib.phantom import make_phantom, write_phantom
from SpineFractureAILib.paths import resource
from SpineFractureAILib.safe_weights import load_state
from SpineFractureAILib.training.fracture_detect import export_detect_dataset, randomised_detect_args
from SpineFractureAILib.training.fracture_seg import checkpoint_from_bundle, export_phantom_dataset, train_fracture_seg
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
    # a run started from our own checkpoint continues from its weights (no download): with a zero
    # learning rate and no warm-up they come out unchanged
    start = tmp_path / "run" / "weights" / "last.pt"
    train_fracture_seg(data, tmp_path / "run2", model=str(start), epochs=1, imgsz=128, batch=8, lr0=0.0,
                       warmup_epochs=0)
    weights = [torch.load(p, map_location="cpu", weights_only=False)["model"].float().state_dict()
               for p in (start, tmp_path / "run2" / "weights" / "last.pt")]
    conv = next(k for k in weights[0] if k.endswith("conv.weight"))
    assert torch.allclose(weights[0][conv], weights[1][conv], atol=1e-3)
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


def test_pose_export_train_package_analyze(tmp_path):
    """Seed 003's keypoint model: labels hold the truth points; a tiny model trains and runs."""
    from SpineFractureAILib.slicing import Intensity, make_stack
    from SpineFractureAILib.training.fracture_seg import DEMO_INTENSITY
    from SpineFractureAILib.training.phantom_data import TRAIN_SEED_BASE, random_case
    from SpineFractureAILib.training.vertebra_pose import export_pose_dataset

    data = export_pose_dataset(tmp_path / "pose", n_train=1, n_val=1, size=128, log=lambda *_: None)
    assert "kpt_shape: [6, 3]" in data.read_text()
    case, _ = random_case(TRAIN_SEED_BASE, "ct")
    stack = make_stack(case.image, "sagittal", 128, Intensity.from_manifest(DEMO_INTENSITY), slice_mm=2.0)
    truth_px = [stack.from_ras(np.array(v["keypoints_ras"]))[:, :2] * 1 for v in case.truth["vertebrae"] if v["has_body"]]
    visible_rows = [line.split() for f in (tmp_path / "pose" / "labels" / "train").glob("*.txt")
                    for line in f.read_text().splitlines() if line.split()[7] == "2"]
    assert visible_rows
    for row in visible_rows:  # each labelled point set is one vertebra's truth, in pixels
        pts = np.array([[float(row[5 + 3 * k]), float(row[6 + 3 * k])] for k in range(6)]) * 128
        assert min(np.abs(pts - t).max() for t in truth_px) < 1e-2 * 128
    assert main(["train", "vertebra-pose", "--data", str(tmp_path / "pose"), "--out", str(tmp_path / "run"),
                 "--epochs", "1", "--imgsz", "128", "--batch", "8"]) == 0
    assert main(["bundle", "vertebra-pose", str(tmp_path / "run"), "--out", str(tmp_path / "bundle")]) == 0
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.task == "vertebra-pose" and len(bundle.manifest["keypoints"]) == 6
    image = write_phantom(make_phantom("L1-L3", "ct", [], [], seed=556), tmp_path / "c.nii.gz")["image"]
    assert main(["analyze", image, "--out", str(tmp_path / "out"), "--bundle", str(tmp_path / "bundle")]) == 0
    report = json.loads((tmp_path / "out" / "c" / "findings.json").read_text())
    assert all(r["method"] == "keypoints" and len(r["keypoints_ras"]) == 6 for r in report["vertebrae"])


def test_a_run_continues_from_a_bundle_on_domain_randomised_phantoms(tmp_path):
    """Fine-tuning as the demo bundle was retrained: randomised phantoms (a CT's surroundings) are
    exported, the bundle's safetensors become the run's starting weights (nothing downloaded), and
    with a zero learning rate they come out of an epoch unchanged."""
    data = export_phantom_dataset(tmp_path / "data", n_train=1, n_val=1, size=128, log=lambda *_: None,
                                  randomised=True, seeds={"train": 10_000, "val": 20_000})
    described = json.loads((tmp_path / "data" / "dataset.json").read_text(encoding="utf-8"))
    assert "domain-randomised" in described["source"] and described["cases"][0]["surroundings"] is True
    weights = resource("Models", "fracture-seg-demo", "fracture_seg.safetensors")
    start = checkpoint_from_bundle(weights, tmp_path / "init.pt", imgsz=128)
    train_fracture_seg(data, tmp_path / "run", model=str(start), epochs=1, imgsz=128, batch=8, lr0=0.0,
                       warmup_epochs=0)
    bundle_state, _ = load_state(weights)
    trained = torch.load(tmp_path / "run" / "weights" / "last.pt", map_location="cpu", weights_only=False)
    trained = trained["model"].float().state_dict()
    conv = next(k for k in bundle_state if k.endswith("conv.weight"))
    assert torch.allclose(bundle_state[conv].float(), trained[conv], atol=2e-3)


def test_the_cervical_detectors_randomised_data_holds_a_neck_in_a_trunk_with_its_fracture_boxed(tmp_path):
    """fracture-detect-demo 0.2.0's data: seed 10002 is a C1-C7 neck in a CT's surroundings (coronal,
    3.9 mm) with a C3 fracture. Only the slices through C3 carry a box, one per slice, inside the
    image; slices with intact bodies only are kept as negatives."""
    args = randomised_detect_args(10002)
    assert args["levels"][0] == "C1" and args["surroundings"] and [f.split(":")[0] for f in args["fractures"]] == ["C3"]
    export_detect_dataset(tmp_path, 1, 0, size=128, randomised=True, seeds={"train": 10002, "val": 20000},
                          log=lambda *_: None)
    described = json.loads((tmp_path / "dataset.json").read_text(encoding="utf-8"))
    assert "domain-randomised" in described["source"] and described["cases"][0]["levels"][0] == "C1"
    labels = sorted((tmp_path / "labels" / "train").glob("*.txt"))
    boxed = [f for f in labels if f.read_text(encoding="utf-8").strip()]
    assert 2 <= len(boxed) < len(labels)  # C3 on a few slices; the rest negatives
    for f in boxed:
        (line,) = f.read_text(encoding="utf-8").strip().splitlines()
        values = np.array(line.split()[1:], float)
        assert line.split()[0] == "0" and ((values >= 0) & (values <= 1)).all()
