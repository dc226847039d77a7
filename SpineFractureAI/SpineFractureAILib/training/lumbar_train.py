"""Seed 004's recipes: two YOLOv8 detectors (lumbar region, then discs), the herniation WAE (timm
members, class weights, early stopping) and the segmentation WAE (smp members, Dice + focal loss),
ensemble weights by grid search on the validation split. Each member checkpoints every epoch."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ..lumbar_crops import SEG_CLASSES
from ..lumbar_metrics import classification_metrics, segmentation_metrics
from ..predictors.ensembles import build_member, grid_search_weights
from ..safe_weights import load_into, save_state
from .fracture_seg import train_yolo

YOLO_RECIPE = dict(epochs=100, batch=8, lr0=0.02, optimizer="SGD", momentum=0.9, imgsz=400, fliplr=0.0)
CLASSIFIER_RECIPE = dict(epochs=35, batch=5, lr=1e-3, finetune_lr=1e-4, patience=10, dropout=0.2,
                         class_weights=(0.702, 1.73))  # not herniated, herniated
SEGMENTER_RECIPE = dict(epochs=30, batch=3, lr=3e-3, patience=10, focal_alpha=0.25, focal_lambda=1.0)


def train_detectors(data_dir: str | Path, out_dir: str | Path, model: str = "yolov8n.yaml", device: str = "cpu",
                    init: str | None = None, **overrides) -> dict:
    """Stage 1 (lumbar region) and stage 2 (discs inside the grown region crop)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    return {stage: train_yolo(data_dir / stage / "data.yaml", out_dir / stage, model, YOLO_RECIPE, device,
                              resume=(out_dir / stage / "weights" / "last.pt").exists(), init=init, **overrides)
            for stage in ("region", "discs")}


def _batches(n: int, batch: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[b:b + batch] for b in range(0, n, batch)]


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255).unsqueeze(1)


def _predict(model, images: np.ndarray, batch: int = 32) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([torch.softmax(model(_to_tensor(images[b:b + batch])), 1).numpy()
                               for b in range(0, len(images), batch)])


def train_member(spec: dict, images, targets, val_images, val_targets, out: Path, recipe: dict,
                 n_classes: int, score) -> dict:
    """One member; early stopping on the validation score; resumes from out/last.pt."""
    import segmentation_models_pytorch as smp

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_member(spec, n_classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    state = {"epoch": 0, "best": -1.0, "stale": 0, "history": []}
    if (out / "last.pt").exists():
        ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"]), optimiser.load_state_dict(ckpt["optimiser"])
        state = ckpt["state"]
    if spec.get("encoder"):  # segmentation: Dice + lambda * focal (seed 004's compound loss)
        dice = smp.losses.DiceLoss("multiclass")
        focal = smp.losses.FocalLoss("multiclass", alpha=recipe["focal_alpha"])
        loss_fn = lambda logits, y: dice(logits, y) + recipe["focal_lambda"] * focal(logits, y)  # noqa: E731
    else:
        weight = torch.tensor(recipe["class_weights"], dtype=torch.float32)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    # The paper's schedule for members that start from weights (supplied locally, never downloaded):
    # backbone frozen at lr, then everything at finetune_lr. From scratch, all layers train.
    frozen = 0
    if spec.get("init") and hasattr(model, "backbone"):
        model.backbone.load_state_dict(torch.load(spec["init"], map_location="cpu", weights_only=True), strict=False)
        frozen = int(recipe.get("frozen_epochs", recipe["epochs"] // 2))
    rng = np.random.default_rng(state["epoch"])
    while state["epoch"] < recipe["epochs"] and state["stale"] < recipe["patience"]:
        started = time.time()
        model.train()
        if frozen:
            for p in model.backbone.parameters():
                p.requires_grad = state["epoch"] >= frozen
            for group in optimiser.param_groups:
                group["lr"] = recipe["lr"] if state["epoch"] < frozen else recipe["finetune_lr"]
        for idx in _batches(len(images), recipe["batch"], rng):
            if len(idx) < 2:  # batch norm needs two samples
                continue
            loss = loss_fn(model(_to_tensor(images[idx])), torch.from_numpy(targets[idx]).long())
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        value = score(_predict(model, val_images), val_targets)
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "loss": float(loss.detach()), "val_score": value,
                                 "seconds": round(time.time() - started, 1)})
        improved = value > state["best"]
        state["best"], state["stale"] = (value, 0) if improved else (state["best"], state["stale"] + 1)
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "state": state}, out / "last.pt")
        if improved:
            save_state(model.state_dict(), out / "best.safetensors", {"format": "state_dict"})
    load_into(model, out / "best.safetensors")
    return {"model": model, "state": state}


def _accuracy(probs, y) -> float:
    return float(np.mean(probs.argmax(1) == y))


def _miou(probs, y) -> float:
    return segmentation_metrics(y, probs.argmax(1), SEG_CLASSES)["mIoU"]


def train_ensemble(kind: str, data_dir: str | Path, out_dir: str | Path, members: list[dict], **overrides) -> dict:
    """kind "herniation" | "segmentation": train each member, grid-search the weights on val."""
    data = np.load(Path(data_dir) / f"{kind}.npz")
    images = data["images"]
    targets = data["labels"] if kind == "herniation" else data["masks"]
    train, val = data["split"] == "train", data["split"] == "val"
    recipe = {**(CLASSIFIER_RECIPE if kind == "herniation" else SEGMENTER_RECIPE), **overrides}
    if kind == "herniation" and recipe.get("class_weights") == "data":  # or computed from the data
        counts = np.bincount(targets[train], minlength=2)
        recipe["class_weights"] = tuple(float(len(targets[train]) / (2 * c)) for c in counts)
    n_classes = 2 if kind == "herniation" else len(SEG_CLASSES)
    score = _accuracy if kind == "herniation" else _miou
    out_dir = Path(out_dir)
    trained, val_probs = [], []
    for n, spec in enumerate(members):
        run = train_member(spec, images[train], targets[train], images[val], targets[val],
                           out_dir / f"member{n}", recipe, n_classes, score)
        trained.append(run)
        val_probs.append(_predict(run["model"], images[val]))
    weights, best = grid_search_weights(val_probs, lambda p: score(p, targets[val]))
    ensemble = sum(w * p for w, p in zip(weights, val_probs))
    if kind == "herniation":
        metrics = classification_metrics(targets[val], ensemble[:, 1])
    else:
        metrics = segmentation_metrics(targets[val], ensemble.argmax(1), SEG_CLASSES)
    summary = {"kind": kind, "recipe": {k: v for k, v in recipe.items()}, "weights": weights, "val_score": best,
               "val_metrics": metrics, "members": [{**spec, "epochs_run": r["state"]["epoch"],
                                                    "val_score": r["state"]["best"]} for spec, r in zip(members, trained)]}
    (out_dir / "ensemble.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
