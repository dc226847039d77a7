"""Seed 002: fresh vs old compression fracture from a lateral radiograph's crop of the body, with the
paper's three backbones (EfficientNet, MobileNet, MnasNet from timm, pretrained=False) alone and as a
soft-voting ensemble whose weights are chosen on the validation split.

The seed is an abstract without hyperparameters; we use standard transfer-learning settings for small
CNNs (Adam 1e-3, batch 32, cross-entropy, early stopping on validation AUC, flips and intensity
jitter), recorded in the bundle. With no pretrained weights here every member trains from scratch.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..lumbar_metrics import auc, classification_metrics
from ..predictors.ensembles import grid_search_weights
from .lumbar_train import _predict, train_member

AGE_MEMBERS = [{"architecture": "efficientnet_b0", "paper_name": "EfficientNet"},
               {"architecture": "mobilenetv2_100", "paper_name": "MobileNet"},
               {"architecture": "mnasnet_100", "paper_name": "MnasNet"}]
AGE_RECIPE = dict(epochs=30, batch=32, lr=1e-3, finetune_lr=1e-4, patience=8, class_weights=(1.0, 1.0),
                  augment_copies=1, input_size=64)


def augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirrored (a patient facing the other way), slightly rotated and scaled crops with jittered
    contrast, gamma and noise."""
    out = np.empty_like(crops)
    size = crops.shape[-1]
    for n, crop in enumerate(crops):
        img = crop[:, ::-1] if rng.random() < 0.5 else crop
        m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-10, 10), rng.uniform(0.9, 1.1))
        m[:, 2] += rng.uniform(-3, 3, 2)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (size, size), borderMode=cv2.BORDER_REFLECT)
        x = img.astype(np.float32) / 255
        x = np.clip((x - 0.5) * rng.uniform(0.75, 1.3) + 0.5 + rng.uniform(-0.08, 0.08), 0, 1) ** rng.uniform(0.75, 1.35)
        x += rng.normal(0, rng.uniform(0, 0.03), x.shape)
        out[n] = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
    return out


def _load(path, size: int) -> dict:
    """Crops resized to the members' input size exactly as inference resizes them (crop_resized)."""
    data = np.load(path)
    crops = data["crops"]
    if crops.shape[-1] != size:
        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops]) if len(crops) \
            else np.zeros((0, size, size), np.uint8)
    return {"crops": crops, "age": data["age"]}


def _score(probs, y) -> float:
    """Validation AUC; accuracy where the split holds one age only (a tiny run), so a best is kept."""
    value = auc(y, probs[:, 1])
    return value if np.isfinite(value) else float(np.mean(probs.argmax(1) == y))


def train_age_ensemble(data_dir, out_dir, members=None, **overrides) -> dict:
    """Train each member on data_dir/age_train.npz (with augmented copies), grid-search the soft-voting
    weights on age_val.npz; writes out_dir/ensemble.json and each member's best.safetensors."""
    members = members or AGE_MEMBERS
    recipe = {**AGE_RECIPE, **overrides}
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    train, val = _load(data_dir / "age_train.npz", recipe["input_size"]), _load(data_dir / "age_val.npz", recipe["input_size"])
    rng = np.random.default_rng(0)
    images = np.concatenate([train["crops"]] + [augment(train["crops"], rng) for _ in range(recipe["augment_copies"])])
    targets = np.tile(train["age"], recipe["augment_copies"] + 1)
    runs, val_probs = [], []
    for n, spec in enumerate(members):
        run = train_member(spec, images, targets, val["crops"], val["age"], out_dir / f"member{n}", recipe, 2, _score)
        runs.append(run)
        val_probs.append(_predict(run["model"], val["crops"]))
    weights, best = grid_search_weights(val_probs, lambda p: _score(p, val["age"]))
    ensemble = sum(w * p for w, p in zip(weights, val_probs))
    summary = {"recipe": recipe, "weights": weights, "val_auc": best,
               "train_crops": int(len(train["age"])), "val_crops": int(len(val["age"])),
               "val_metrics": {"ensemble": classification_metrics(val["age"], ensemble[:, 1]),
                               **{m["paper_name"]: classification_metrics(val["age"], p[:, 1])
                                  for m, p in zip(members, val_probs)}},
               "members": [{**spec, "epochs_run": r["state"]["epoch"], "val_auc": r["state"]["best"],
                            "history": r["state"]["history"]} for spec, r in zip(members, runs)]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ensemble.json").write_text(json.dumps(summary, indent=1, default=float), encoding="utf-8")
    return summary
