"""A segmenter trained where each pixel knows only the set of classes it may be (a bit per class).

The loss is the negative log of the probability of that set (the marginal likelihood: one-hot
labels make it ordinary cross-entropy) plus a soft Dice per class over the pixels where that class
is known. Exams labelled for bodies only and exams labelled for discs only then train one model
without either teaching the other's structures as background. Checkpoints every epoch; resumes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from .. import atomic
from ..atomic import staged
from ..predictors.ensembles import build_member
from ..safe_weights import load_into, save_state


def set_log_likelihood(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of -log P(class in allowed set); logits [B, C, H, W], allowed [B, H, W] bits."""
    bits = torch.stack([(allowed >> c) & 1 for c in range(logits.shape[1])], 1).bool()
    inside = torch.logsumexp(logits.masked_fill(~bits, -1e4), 1)
    return (torch.logsumexp(logits, 1) - inside).mean()


def known_dice(probs: torch.Tensor, allowed: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per class over the pixels where that class is known (its bit alone, or absent)."""
    losses = []
    for c in range(1, probs.shape[1]):
        bit = 1 << c
        target = (allowed == bit).float()
        known = ((allowed == bit) | ((allowed & bit) == 0)).float()
        if known.sum() == 0 or target.sum() == 0:
            continue
        p = probs[:, c] * known
        losses.append(1 - (2 * (p * target).sum() + eps) / (p.sum() + target.sum() + eps))
    return torch.stack(losses).mean() if losses else probs.sum() * 0


def class_dice(pred: np.ndarray, allowed: np.ndarray, c: int) -> float | None:
    """Dice of class c over the pixels where it is known; None where the class is not labelled."""
    bit = 1 << c
    known = (allowed == bit) | ((allowed & bit) == 0)
    target = allowed == bit
    if not target.any():
        return None
    p = (pred == c) & known
    return float(2 * (p & target).sum() / (p.sum() + target.sum()))


def augment(image: np.ndarray, allowed: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Scale, shift and rotate a little (labels nearest), and a random gamma: scanners differ."""
    size = image.shape[0]
    m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-10, 10), rng.uniform(0.85, 1.2))
    m[:, 2] += rng.uniform(-0.08, 0.08, 2) * size
    image = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    allowed = cv2.warpAffine(allowed, m, (size, size), flags=cv2.INTER_NEAREST, borderValue=int(allowed[0, 0]))
    gamma = np.exp(rng.uniform(-0.4, 0.4))
    image = (255 * (image / 255.0) ** gamma).astype(np.uint8)
    return image, allowed


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).float().div_(255).unsqueeze(1)


def predict_classes(model, images: np.ndarray, batch: int = 16) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(_tensor(images[b:b + batch])).argmax(1).numpy()
                               for b in range(0, len(images), batch)])


def validation_dice(model, images, allowed, n_classes: int) -> dict:
    pred = predict_classes(model, images)
    out = {}
    for c in range(1, n_classes):
        scores = [d for d in (class_dice(p, a, c) for p, a in zip(pred, allowed)) if d is not None]
        if scores:
            out[c] = float(np.mean(scores))
    return out


def train_partial_segmenter(data: dict, spec: dict, out: str | Path, n_classes: int, epochs: int = 25,
                            batch: int = 8, per_epoch: int = 320, lr: float = 3e-3, log=print) -> dict:
    """data: images [N, S, S] uint8, allowed [N, S, S] uint8 bits, split [N] ("train"/"val")."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = build_member(spec, n_classes)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    state = {"epoch": 0, "best": -1.0, "history": []}
    if (out / "last.pt").exists():
        ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"]), optimiser.load_state_dict(ckpt["optimiser"])
        state = json.loads((out / "state.json").read_text())
    train = np.nonzero(data["split"] == "train")[0]
    val = np.nonzero(data["split"] == "val")[0]
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs, last_epoch=state["epoch"] - 1)
    while state["epoch"] < epochs:
        started = time.time()
        rng = np.random.default_rng(1000 + state["epoch"])
        model.train()
        picked = rng.choice(train, min(per_epoch, len(train)), replace=False)
        losses = []
        for b in range(0, len(picked) - 1, batch):
            pairs = [augment(data["images"][i], data["allowed"][i], rng) for i in picked[b:b + batch]]
            x = _tensor(np.stack([p[0] for p in pairs]))
            a = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
            logits = model(x)
            loss = set_log_likelihood(logits, a) + known_dice(torch.softmax(logits, 1), a)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        schedule.step()
        dice = validation_dice(model, data["images"][val], data["allowed"][val], n_classes)
        score = float(np.mean(list(dice.values()))) if dice else 0.0
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "loss": round(float(np.mean(losses)), 4),
                                 "val_dice": {str(k): round(v, 4) for k, v in dice.items()},
                                 "val_score": round(score, 4), "seconds": round(time.time() - started, 1)})
        if score > state["best"]:
            state["best"] = score
            save_state(model.state_dict(), out / "best.safetensors", {"format": "state_dict"})
        with staged(out / "last.pt") as tmp:  # the run's own resume state (optimiser), never a bundle
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict()}, tmp)
        atomic.write_text(out / "state.json", json.dumps(state, indent=1))
        log(json.dumps(state["history"][-1]))
    load_into(model, out / "best.safetensors")
    return {"model": model, "state": state}
