"""Bundles cannot run code: no pickle is ever loaded from one, weight paths stay inside it, and the
safetensors YOLO format rebuilds the same network from its config."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from SpineFractureAILib.bundles import BundleError, builtin_bundle_dir, load_bundle, sha256_of
from SpineFractureAILib.cli import main
from SpineFractureAILib.predictors.offline_ultralytics import ultralytics_offline
from SpineFractureAILib.safe_weights import WeightError, load_yolo, save_yolo
from SpineFractureAILib.volume import write_volume


class Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bundle_with(tmp_path, source: str, weight_file: str, payload_file) -> object:
    """A copy of a built-in bundle whose weight entry points at `weight_file` (sha256 updated)."""
    folder = tmp_path / "evil"
    shutil.copytree(builtin_bundle_dir() / source, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    target = (folder / weight_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Payload(tmp_path / "PWNED")}, payload_file)
    if payload_file != target:
        shutil.copyfile(payload_file, target)
    old = manifest["weights"][0]["file"]
    manifest["weights"][0].update(file=weight_file, sha256=sha256_of(target))
    for stage in manifest.get("stages", {}).values():
        if stage.get("file") == old:
            stage["file"] = weight_file
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("source,weight_file", [
    ("fracture-seg-demo", "fracture_seg.pt"),  # a pickle under its own name
    ("fracture-seg-demo", "fracture_seg.safetensors"),  # a pickle dressed as safetensors
    ("lumbar-mr-demo", "region.pt"),  # the lumbar region detector
])
def test_pickle_payload_never_runs(tmp_path, capsys, wedge_phantom, source, weight_file):
    folder = _bundle_with(tmp_path, source, weight_file, tmp_path / "payload.pt")
    image = tmp_path / "ph.nii.gz"
    write_volume(wedge_phantom.image, image)
    modality = "mr" if source.startswith("lumbar") else "ct"
    code = main(["analyze", str(image), "--out", str(tmp_path / "out"), "--bundle", str(folder),
                 "--modality", modality])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("spinefracture: error:")
    assert ("refusing" in err[-1]) or ("not a valid safetensors" in err[-1]) or ("not a loadable" in err[-1])
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out" / "ph").exists()


@pytest.mark.parametrize("where", ["../outside.safetensors", "ABSOLUTE"])
def test_weight_paths_outside_the_bundle_are_refused(tmp_path, where):
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(builtin_bundle_dir() / "fracture-seg-demo" / "fracture_seg.safetensors", outside)
    folder = tmp_path / "b"
    shutil.copytree(builtin_bundle_dir() / "fracture-seg-demo", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["weights"][0].update(file=str(outside) if where == "ABSOLUTE" else where, sha256=sha256_of(outside))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle folder"):
        load_bundle(folder).weight_files()


def test_every_builtin_bundle_is_safetensors_only():
    for manifest in builtin_bundle_dir().glob("*/manifest.json"):
        bundle = load_bundle(manifest.parent)
        files = bundle.weight_files()  # checks suffix, folder and sha256
        assert files and all(f.suffix == ".safetensors" for f in files)
        assert not list(manifest.parent.glob("*.pt"))


def test_yolo_safetensors_round_trip(tmp_path):
    ultralytics_offline()
    from ultralytics.nn.tasks import SegmentationModel

    torch.manual_seed(0)
    model = SegmentationModel("yolov8n-seg.yaml", ch=3, nc=2, verbose=False).eval()
    model.names = {0: "a", 1: "b"}
    path = save_yolo(model, tmp_path / "m.safetensors", half=False)
    loaded = load_yolo(path)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        expected = model.fuse(verbose=False)(x)[0]
        got = loaded(x)[0]
    expected = expected[0] if isinstance(expected, tuple) else expected
    got = got[0] if isinstance(got, tuple) else got
    assert loaded.names == {0: "a", 1: "b"} and loaded.task == "segment"
    assert torch.allclose(expected, got, atol=1e-5)
    (tmp_path / "bad.safetensors").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(WeightError, match="not a valid safetensors"):
        load_yolo(tmp_path / "bad.safetensors")
