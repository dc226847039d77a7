"""A lumbar MR run (two detectors, two ensembles) -> one "lumbar-mr" bundle: fp16 files, sha256 each,
the grid-searched ensemble weights and every stage's metrics in the manifest."""
from __future__ import annotations

import json
from pathlib import Path

from ..bundles import NOT_CLINICAL, sha256_of
from ..lumbar_crops import HERNIATION_CLASSES, SEG_CLASSES
from .lumbar_data import MR_INTENSITY
from ..safe_weights import load_state, save_state
from .packaging import _last_metrics, fp16_yolo


def package_lumbar_bundle(run: str | Path, data: str | Path, out: str | Path, name: str = "lumbar-mr-demo",
                          version: str = "0.1.0") -> Path:
    run, data, out = Path(run), Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = json.loads((data / "dataset.json").read_text())
    size = int(dataset["size"])
    files, stages, metrics = [], {}, {}
    for stage, cls in (("region", "lumbar spine"), ("discs", "intervertebral disc")):
        dst = fp16_yolo(run / stage / "weights" / "best.safetensors", out / f"{stage}.safetensors")
        files.append(dst)
        stages[stage] = {"file": dst.name, "classes": [cls], "input_size": size,
                         "thresholds": {"confidence": 0.25, "iou": 0.5, "link_iou": 0.3, "min_slices": 2}}
        metrics[stage] = _last_metrics(run / stage)
    for kind, classes, input_size in (("herniation", HERNIATION_CLASSES, int(dataset["crop_size"])),
                                      ("segmentation", SEG_CLASSES, size)):
        summary = json.loads((run / kind / "ensemble.json").read_text())
        members, dropped = [], []
        for n, (spec, weight) in enumerate(zip(summary["members"], summary["weights"])):
            if weight == 0:  # the grid search gave it nothing: not worth its file
                dropped.append({k: spec[k] for k in ("architecture", "encoder") if k in spec})
                continue
            dst = save_state(load_state(run / kind / f"member{n}" / "best.safetensors")[0],
                             out / f"{kind}_{n}.safetensors", {"format": "state_dict"}, half=True)
            files.append(dst)
            members.append({k: spec[k] for k in ("architecture", "encoder", "options") if k in spec}
                           | {"file": dst.name, "weight": weight})
        stages[kind] = {"classes": classes, "input_size": input_size, "members": members,
                        "thresholds": {"herniated": 0.5} if kind == "herniation" else {}}
        metrics[kind] = {"val_score": summary["val_score"], **summary["val_metrics"],
                         "member_val_scores": [m["val_score"] for m in summary["members"]],
                         "grid_search_weights": summary["weights"], "members_weighted_zero": dropped}
        if kind == "segmentation":
            stages[kind]["loss"] = {"dice": 1.0, "focal": summary["recipe"].get("focal_lambda", 1.0)}
    manifest = {
        "name": name, "version": version, "task": "lumbar-mr", "framework": "ensemble",
        "architecture": "YOLOv8 region + discs, WAE classifiers, WAE segmenters",
        "modalities": ["mr"], "plane": "sagittal", "input_size": size, "slice_mm": dataset["slice_mm"],
        "mid_slices": dataset["mid_slices"], "preprocessing": MR_INTENSITY, "classes": SEG_CLASSES,
        "stages": stages,
        "weights": [{"file": f.name, "sha256": sha256_of(f), "precision": "fp16"} for f in files],
        "ensemble": {k: [m["weight"] for m in stages[k]["members"]] for k in ("herniation", "segmentation")},
        "clinical_use": f"{NOT_CLINICAL}: demo weights trained on synthetic lumbar MR phantoms only.",
        "provenance": {
            "paper": "seed 004: two-stage YOLOv8 ROI detection, WAE herniation classifier, WAE segmentation",
            "training_data": (f"SpineFractureAI lumbar MR phantoms: {dataset['slices']} mid-sagittal slices, "
                              f"{dataset['crops']} disc crops ({dataset['herniated_crops']} herniated) from "
                              f"{len(dataset['cases'])} phantoms (seeds 10000+ train, 20000+ val)"),
            "command": "spinefracture train lumbar-mr (see docs/results.md)",
            "metrics": metrics,
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=float))
    return out
