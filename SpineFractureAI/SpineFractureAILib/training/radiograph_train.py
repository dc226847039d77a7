"""`train radiograph-fracture` and `bundle radiograph-fracture`: the lateral-view pose model (bodies,
rib-bearing bodies, AP-view bodies; six endplate points) and seed 002's fresh/old ensemble, packaged as
one bundle (fp16 safetensors, sha256 each, the recipes and validation figures in the manifest)."""
from __future__ import annotations

import json
from pathlib import Path

from ..bundles import NOT_CLINICAL, sha256_of
from ..radiograph.phantom import CLASS_NAMES
from ..safe_weights import load_state, save_state
from .fracture_seg import train_yolo
from .packaging import _last_metrics, fp16_yolo
from .radiograph_age import AGE_MEMBERS, train_age_ensemble
from .radiograph_data import AGE_CLASSES, export_radiograph_dataset
from .radiograph_keypoints import train_keypoint_net

# ultralytics' pose defaults beside seed 000's optimiser; mosaic and mild scale so whole films and
# crops of them both look familiar.
XR_POSE_RECIPE = dict(epochs=40, batch=16, lr0=0.01, lrf=0.01, optimizer="AdamW", weight_decay=5e-5,
                      fliplr=0.5, scale=0.25, degrees=5.0, translate=0.1, mosaic=0.5, imgsz=320)
SYNTHETIC_NOTE = ("synthetic lateral radiographs rendered from SpineFractureAI CT phantoms; fracture-age signs "
                  "are drawn from textbook descriptions, not learned from real radiographs with MRI-proven ages: "
                  "the demo says nothing about a real fracture's age")


def train_radiograph(data, out, phantoms: int = 0, val_phantoms: int = 120, stage: str = "all",
                     device: str = "cpu", resume: bool = False, member_epochs: int | None = None,
                     model: str = "yolov8n-pose.yaml", **yolo_overrides) -> dict:
    """model: a yaml (random init) or one of our own runs' .pt checkpoints to continue from."""
    data, out = Path(data), Path(out)
    if not (data / "data.yaml").exists():
        if not phantoms:
            raise ValueError(f"{data}: no data.yaml; pass --phantoms N to render synthetic radiographs there")
        export_radiograph_dataset(data, phantoms, val_phantoms)
    done = {}
    if stage in ("all", "pose"):
        last = out / "pose" / "weights" / "last.pt"
        done["pose"] = str(train_yolo(data / "data.yaml", out / "pose", model, XR_POSE_RECIPE, device,
                                      resume and last.exists(), **yolo_overrides))
    if stage in ("all", "age"):
        extra = {"epochs": member_epochs} if member_epochs else {}
        done["age"] = train_age_ensemble(data, out / "age", **extra)["weights"]
    if stage in ("all", "keypoints"):  # seed 003's second stage on the bodies' crops
        extra = {"epochs": member_epochs} if member_epochs else {}
        done["keypoints"] = train_keypoint_net(data, out / "keypoints", **extra)["val_mean_abs_error_crop_px"]
    return done


def package_radiograph_bundle(run, data, out, name: str = "radiograph-fracture-demo", version: str = "0.1.0") -> Path:
    run, data, out = Path(run), Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    pose_file = fp16_yolo(run / "pose" / "weights" / "best.safetensors", out / "pose.safetensors")
    recipe = json.loads((run / "pose" / "recipe.json").read_text(encoding="utf-8"))
    summary = json.loads((run / "age" / "ensemble.json").read_text(encoding="utf-8"))
    files, members = [pose_file], []
    for n, (spec, weight) in enumerate(zip(summary["members"], summary["weights"])):
        tensors, header = load_state(run / "age" / f"member{n}" / "best.safetensors")
        dst = save_state(tensors, out / f"age_{spec['architecture']}.safetensors", header, half=True)
        files.append(dst)
        members.append({"architecture": spec["architecture"], "paper_name": spec["paper_name"], "file": dst.name,
                        "weight": weight, "val_auc": round(float(spec["val_auc"]), 4), "epochs_run": spec["epochs_run"]})
    stage = None
    if (run / "keypoints" / "best.safetensors").exists():  # seed 003's second stage
        tensors, header = load_state(run / "keypoints" / "best.safetensors")
        dst = save_state(tensors, out / "keypoints.safetensors", header, half=True)
        files.append(dst)
        info = json.loads((run / "keypoints" / "keypoints.json").read_text(encoding="utf-8"))
        stage = {"file": dst.name, "architecture": info["architecture"], "input_size": int(info["recipe"]["input_size"]),
                 "val_mean_abs_error_crop_px": round(float(info["val_mean_abs_error_crop_px"]), 3),
                 "recipe": info["recipe"]}
    counts = {s: sum(c["split"] == s for c in dataset["cases"]) for s in ("train", "val")}
    manifest = {
        "name": name, "version": version, "task": "radiograph-fracture", "framework": "ultralytics+torch",
        "architecture": "yolov8n-pose + soft-voting ensemble (" + ", ".join(m["architecture"] for m in members) + ")",
        "modalities": ["xr"], "view": "lateral", "classes": CLASS_NAMES, "plane": "projection",
        "input_size": int(recipe.get("imgsz", 320)),
        "preprocessing": {"type": "percentile_window", "low": 1.0, "high": 99.8, "pixel_mm": 1.0},
        "pose": {"file": pose_file.name, "classes": CLASS_NAMES, "input_size": int(recipe.get("imgsz", 320)),
                 "keypoints": ["superior anterior", "superior middle", "superior posterior",
                               "inferior anterior", "inferior middle", "inferior posterior"]},
        "age": {"members": members, "classes": AGE_CLASSES, "input_size": int(summary["recipe"]["input_size"])},
        **({"keypoints": stage} if stage else {}),
        "thresholds": {"confidence": 0.35, "iou": 0.5, "fresh": 0.5},
        "weights": [{"file": f.name, "sha256": sha256_of(f), "precision": "fp16"} for f in files],
        "clinical_use": f"{NOT_CLINICAL}: demo weights trained on synthetic radiographs only; the fresh/old "
                        "call has never seen a real radiograph.",
        "provenance": {
            "paper": "seed 002: EfficientNet / MobileNet / MnasNet say whether a compression fracture on a lateral "
                     "radiograph is fresh (Li et al.); pose model after seed 003's six points",
            "training_data": f"{counts['train']} training + {counts['val']} validation {SYNTHETIC_NOTE} "
                             "(seeds 10000+ train, 20000+ val)",
            "command": "spinefracture train radiograph-fracture --data DATA --phantoms "
                       f"{counts['train']} --val-phantoms {counts['val']} --out RUN (see docs/training-runs.md)",
            "pose_recipe": {k: v for k, v in recipe.items() if k not in ("data", "command")},
            "pose_metrics": _last_metrics(run / "pose"),
            "age_recipe": summary["recipe"], "age_val_metrics": summary["val_metrics"],
            "age_weights_chosen_on": "validation split AUC (grid of 0.1)",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=float), encoding="utf-8")
    return out


__all__ = ["train_radiograph", "package_radiograph_bundle", "AGE_MEMBERS"]
