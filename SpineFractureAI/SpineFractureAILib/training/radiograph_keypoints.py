"""Seed 003's second stage on radiographs: six endplate points regressed from a crop of each body.

The pose model finds and names bodies well but, its keypoint loss being tolerant by design (OKS), draws
a collapsed body nearly square; a small CNN that sees only the body and learns its six points with an
L1 loss measures the collapse. Crops are taken round jittered boxes, as the detector gives them."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..predictors.keypoint_net import KEYPOINT_ARCH, build_keypoint_net, to_crop
from ..radiograph.model_input import crop_resized
from ..safe_weights import save_state
from .radiograph_data import FLIP_IDX

KEYPOINT_RECIPE = dict(epochs=12, batch=64, lr=2e-3, input_size=64, jitter=0.06, copies=2)


def export_keypoint_crops(data_dir, split: str, size: int, jitter: float, copies: int, seed: int = 0):
    """Every lateral body with visible points in data_dir's YOLO-pose labels -> crops and targets."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    crops, targets = [], []
    for label in sorted((data_dir / "labels" / split).glob("*.txt")):
        image = cv2.imread(str(data_dir / "images" / split / (label.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        rows, cols = image.shape
        for line in label.read_text().splitlines():
            v = np.array(line.split(), float)
            if not len(v) or int(v[0]) == 2 or v[7] == 0:
                continue
            cx, cy, w, h = v[1] * cols, v[2] * rows, v[3] * cols, v[4] * rows
            points = v[5:].reshape(6, 3)[:, :2] * [cols, rows]
            for n in range(copies):
                d = rng.normal(0, jitter, 4) * [w, h, w, h] if n else np.zeros(4)
                box = [cx - w / 2 + d[0], cy - h / 2 + d[1], cx + w / 2 + d[2], cy + h / 2 + d[3]]
                crops.append(crop_resized(image, box, size))
                targets.append(to_crop(points, box, size))
    return np.array(crops, np.uint8), np.array(targets, np.float32)


def _batch(crops, targets, idx, rng, augment: bool):
    x = crops[idx].astype(np.float32) / 255
    y = targets[idx].copy()
    if augment:
        flip = rng.random(len(idx)) < 0.5  # a patient facing the other way: anterior and posterior swap
        x[flip] = x[flip][:, :, ::-1]
        y[flip] = y[flip][:, FLIP_IDX]
        y[flip, :, 0] = 1 - y[flip, :, 0]
        x = np.clip((x - 0.5) * rng.uniform(0.8, 1.25, (len(idx), 1, 1)) + 0.5, 0, 1)
    return (torch.from_numpy(np.ascontiguousarray(x, np.float32)).unsqueeze(1),
            torch.from_numpy(np.ascontiguousarray(y.reshape(len(idx), 12), np.float32)))


def train_keypoint_net(data_dir, out_dir, **overrides) -> dict:
    recipe = {**KEYPOINT_RECIPE, **overrides}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = recipe["input_size"]
    train = export_keypoint_crops(data_dir, "train", size, recipe["jitter"], recipe["copies"])
    val = export_keypoint_crops(data_dir, "val", size, recipe["jitter"], 2, seed=1)
    torch.manual_seed(0)
    model = build_keypoint_net()
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=1e-4)
    steps = recipe["epochs"] * int(np.ceil(len(train[0]) / recipe["batch"]))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe["lr"], total_steps=steps)
    rng, best, history = np.random.default_rng(0), np.inf, []
    for epoch in range(recipe["epochs"]):
        started = time.time()
        model.train()
        for b in np.array_split(rng.permutation(len(train[0])), max(1, len(train[0]) // recipe["batch"])):
            x, y = _batch(*train, b, rng, True)
            loss = torch.nn.functional.smooth_l1_loss(model(x), y, beta=0.01)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            pred = np.concatenate([model(_batch(*val, b, rng, False)[0]).numpy()
                                   for b in np.array_split(np.arange(len(val[0])), max(1, len(val[0]) // 256))])
        err = float(np.mean(np.abs(pred - val[1].reshape(len(val[1]), 12)))) * size  # crop pixels
        history.append({"epoch": epoch + 1, "val_mean_abs_error_crop_px": round(err, 3),
                        "seconds": round(time.time() - started, 1)})
        if err < best:
            best = err
            save_state(model.state_dict(), out_dir / "best.safetensors", {"format": "state_dict"})
    summary = {"architecture": KEYPOINT_ARCH, "recipe": recipe, "train_crops": len(train[0]),
               "val_crops": len(val[0]), "val_mean_abs_error_crop_px": best, "history": history}
    (out_dir / "keypoints.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary
