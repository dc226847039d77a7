"""Seed 004's metrics: Table 2 (disc state: accuracy, AUC, specificity, precision, recall, F1) and
Tables 4-5 (segmentation: mIoU, Dice, per-class IoU)."""
from __future__ import annotations

import numpy as np


def classification_metrics(truth, p_positive, threshold: float = 0.5) -> dict:
    truth = np.asarray(truth).astype(bool)
    p = np.asarray(p_positive, float)
    pred = p >= threshold
    tp, tn = int(np.sum(pred & truth)), int(np.sum(~pred & ~truth))
    fp, fn = int(np.sum(pred & ~truth)), int(np.sum(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": (tp + tn) / max(len(truth), 1), "auc": auc(truth, p),
            "specificity": tn / (tn + fp) if tn + fp else 0.0, "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "counts": {"tp": tp, "tn": tn, "fp": fp, "fn": fn}}


def auc(truth, scores) -> float:
    """Area under the ROC curve: the probability that a positive outranks a negative (ties half)."""
    truth = np.asarray(truth).astype(bool)
    pos, neg = np.asarray(scores)[truth], np.asarray(scores)[~truth]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def segmentation_metrics(truth: np.ndarray, pred: np.ndarray, class_names: list[str]) -> dict:
    """Per-class IoU and Dice over all pixels, their means over the foreground classes."""
    per_class = {}
    for c, name in enumerate(class_names):
        if c == 0:
            continue
        t, p = truth == c, pred == c
        inter, union, total = np.sum(t & p), np.sum(t | p), t.sum() + p.sum()
        per_class[name] = {"iou": float(inter / union) if union else float("nan"),
                           "dice": float(2 * inter / total) if total else float("nan")}
    ious = [v["iou"] for v in per_class.values() if not np.isnan(v["iou"])]
    dices = [v["dice"] for v in per_class.values() if not np.isnan(v["dice"])]
    return {"mIoU": float(np.mean(ious)) if ious else float("nan"),
            "dice": float(np.mean(dices)) if dices else float("nan"), "per_class": per_class}
