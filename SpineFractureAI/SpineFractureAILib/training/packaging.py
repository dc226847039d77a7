"""Turn a training run into a model bundle: fp16 weights, sha256, manifest with provenance."""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..bundles import NOT_CLINICAL, sha256_of
from ..safe_weights import load_state, save_state
from .fracture_seg import DEMO_INTENSITY
from .yolo_export import FRACTURE_SEG_CLASSES


def _last_metrics(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "results.csv"))) if (run / "results.csv").exists() else []
    if not rows:
        return {}
    last = {k.strip(): v for k, v in rows[-1].items()}
    keys = {"metrics/mAP50(B)": "val_box_mAP50", "metrics/mAP50-95(B)": "val_box_mAP50-95",
            "metrics/mAP50(M)": "val_mask_mAP50", "metrics/mAP50-95(M)": "val_mask_mAP50-95",
            "metrics/mAP50(P)": "val_pose_mAP50", "metrics/mAP50-95(P)": "val_pose_mAP50-95"}
    return {"epochs_run": len(rows), **{new: round(float(last[old]), 4) for old, new in keys.items() if old in last}}


@contextmanager
def staged_folder(out):
    """A fresh folder beside `out` to write into; on success it replaces `out` (an existing folder
    is moved aside first, then removed), on any failure it is removed and `out` stays as it was."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=out.parent))
    staging.chmod(0o755)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}-old-{os.getpid()}") if out.exists() else None
    if old is not None:
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fp16_yolo(src: Path, dst: Path) -> Path:
    """A run's safetensors YOLO weights (config in the header) -> half precision (no pickle read)."""
    tensors, header = load_state(src)
    return save_state(tensors, dst, header, half=True)


TASKS = {
    "fracture-seg": {"file": "fracture_seg.safetensors", "classes": FRACTURE_SEG_CLASSES, "default": "yolov8n-seg",
                     "paper": "seed 000: YOLOv8n-seg for osteoporotic vertebral fracture types (EVOSG)",
                     "thresholds": {"fracture_confidence": 0.6}},
    "vertebra-pose": {"file": "vertebra_pose.safetensors", "classes": ["vertebral body"], "default": "yolov8n-pose",
                      "paper": "seed 003: six keypoints per vertebra -> heights and Genant grade",
                      "thresholds": {"keypoint_visibility": 0.25}, "run_by_default": False,
                      "keypoints": ["superior anterior", "superior middle", "superior posterior",
                                    "inferior anterior", "inferior middle", "inferior posterior"]},
    "fracture-detect": {"file": "fracture_detect.safetensors", "classes": ["fracture"], "default": "yolov8s",
                        "paper": "seed 001: YOLOv8 fracture detection on cervical CT (one class)",
                        "thresholds": {"fracture_confidence": 0.5},
                        "levels": ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]},
}


def package_fracture_seg(run, out, name: str = "fracture-seg-demo", version: str = "0.1.0") -> Path:
    return package_bundle("fracture-seg", run, out, name, version)


def package_bundle(task: str, run: str | Path, out: str | Path, name: str, version: str = "0.1.0",
                   slice_mm: float = 2.0) -> Path:
    spec = TASKS[task]
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / spec["file"]
    fp16_yolo(run / "weights" / "best.safetensors", weights)
    recipe = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").exists() else {}
    dataset = {}
    data_dir = Path(recipe.get("data", "")).parent
    if (data_dir / "dataset.json").exists():
        dataset = json.loads((data_dir / "dataset.json").read_text())
    manifest = {
        "name": name, "version": version, "task": task, "framework": "ultralytics",
        "architecture": spec["default"] if str(recipe.get("model", "")).endswith(".pt")
        else recipe.get("model", spec["default"]).replace(".yaml", ""),
        "modalities": ["ct"], "plane": "sagittal", "input_size": int(recipe.get("imgsz", 256)),
        "slice_mm": slice_mm, "preprocessing": DEMO_INTENSITY, "classes": spec["classes"],
        "thresholds": {"confidence": 0.25, "iou": 0.5, "link_iou": 0.3, "min_slices": 2,
                       "min_bright_pixels": 20, "bright_level": 110, **spec["thresholds"]},
        "batch": 16,
        "weights": [{"file": weights.name, "sha256": sha256_of(weights), "precision": "fp16"}],
        "ensemble": None,
        "clinical_use": f"{NOT_CLINICAL}: demo weights trained on synthetic spine phantoms only.",
        "provenance": {
            "paper": spec["paper"],
            "training_data": (f"{dataset.get('source', 'SpineFractureAI phantoms')}: {dataset.get('images', {})} sagittal slices "
                              f"from {len(dataset.get('cases', []))} phantoms (seeds 10000+ train, 20000+ val)"),
            "command": recipe.get("command") or (
                f"spinefracture train {task} --data {data_dir.name} --phantoms "
                f"{sum(1 for c in dataset.get('cases', []) if c.get('split') == 'train')} --val-phantoms "
                f"{sum(1 for c in dataset.get('cases', []) if c.get('split') == 'val')} --out {run.name} "
                f"--epochs {recipe.get('epochs')} --imgsz {recipe.get('imgsz')} --batch {recipe.get('batch')}"),
            "recipe": {k: v for k, v in recipe.items() if k not in ("data", "command", "init")},
            "metrics": _last_metrics(run),
        },
    }
    if str(recipe.get("model", "")).endswith(".pt"):  # a fine-tune continues an earlier run
        start = Path(recipe["model"])
        start = f"{start.parents[1].name}/{start.parent.name}/{start.name}"  # RUN/weights/last.pt
        manifest["provenance"]["initialised_from"] = start
        manifest["provenance"]["command"] += f" --model {start}"
    if recipe.get("init"):  # matching layers came from another task's run
        init = Path(recipe["init"])
        manifest["provenance"]["initialised_from"] = f"{init.parents[1].name}/{init.parent.name}/{init.name}"
        manifest["provenance"]["command"] += f" --model {recipe.get('model')} --init {manifest['provenance']['initialised_from']}"
    for key in ("keypoints", "levels"):
        if key in spec:
            manifest[key] = spec[key]
    if "run_by_default" in spec:
        manifest["run_by_default"] = spec["run_by_default"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for extra in ("results.csv",):
        if (run / extra).exists():
            shutil.copyfile(run / extra, out / f"training_{extra}")
    return out
