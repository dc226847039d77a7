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


REAL_SUMMARY = "public research lumbar MR exams (see provenance) and synthetic MR phantoms"
REAL_CITATIONS = [
    "Menezes-Reis R et al., Quant Imaging Med Surg 2016, doi 10.21037/qims.2016.08.01 (ivd: T2 discs)",
    "Zukic D et al., Comput Graph Forum 2014, doi 10.1111/cgf.12343 (vb2: T2 TSE bodies T11-L5)",
    "Burian E et al., BMC Musculoskelet Disord 2019, doi 10.1186/s12891-019-2528-x (vb3: T1 FFE bodies L1-L5)",
    "Chu C et al., PLoS ONE 2015, doi 10.1371/journal.pone.0143327 (vb1: held out, never trained on)",
]


def real_provenance(dataset: dict) -> dict:
    cases = dataset["cases"]
    count = {s: sum(c["split"] == s for c in cases) for s in ("train", "val")}
    return {
        "training_data": (f"{count['train']} training + {count['val']} validation real sagittal lumbar MR exams "
                          f"(ivd, vb2, vb3 sets of fastcleverseg's redistribution; {len(dataset['test_exams'])} "
                          "exams and every vb1 exam held out for testing), split by exam; 24 MR phantoms for "
                          "the spinal canal and herniations; herniation positives are real disc crops deformed "
                          "by training/herniation_real.py (no real herniation label exists)"),
        "citations": REAL_CITATIONS,
        "terms": ("images and masks by their original authors (cite them), redistributed by the fastcleverseg "
                  "repository (GPL-3.0); research use"),
        "held_out_exams": dataset["test_exams"],
        "command": "spinefracture train lumbar-mr --real ../shared/realdata/lumbar-mr --data DATA --out RUN "
                   "(see docs/training-runs.md)",
    }


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
    for kind, classes, input_size in (("herniation", HERNIATION_CLASSES, int(dataset.get("crop_size", 64))),
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
        if kind == "herniation":  # phantoms and deformed real crops: no real herniation was seen
            stages[kind]["trained_on_synthetic_herniations"] = True
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
            "training_data": (f"SpineFractureAI lumbar MR phantoms: {dataset.get('slices')} mid-sagittal slices, "
                              f"{dataset.get('crops')} disc crops ({dataset.get('herniated_crops')} herniated) from "
                              f"{len(dataset['cases'])} phantoms (seeds 10000+ train, 20000+ val)"),
            "command": "spinefracture train lumbar-mr (see docs/results.md)",
            "metrics": metrics,
        },
    }
    if "test_exams" in dataset:  # trained on the real exams
        manifest["clinical_use"] = (f"{NOT_CLINICAL}: demo weights trained on {REAL_SUMMARY}; herniation "
                                    "positives are synthetic.")
        manifest["provenance"].update(real_provenance(dataset))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=float))
    return out
