"""Seed 001's multi-label metrics for per-slice vertebra levels: Macro-F1, exact match ratio,
coverage error (the scikit-learn definitions, in numpy so the library needs no scikit-learn)."""
from __future__ import annotations

import numpy as np


def macro_f1(y_true, y_pred) -> float:
    """Mean over labels of F1 = 2TP / (2TP + FP + FN); a label never true nor predicted scores 0,
    as scikit-learn's default (zero_division=0)."""
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = (t & p).sum(0)
    denom = 2 * tp + (~t & p).sum(0) + (t & ~p).sum(0)
    return float(np.mean(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def exact_match_ratio(y_true, y_pred) -> float:
    """Fraction of slices whose whole label set is predicted exactly."""
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return float(np.mean(np.all(t == p, axis=1)))


def coverage_error(y_true, scores) -> float:
    """How far down the ranked labels one must go, on average, to cover every true label."""
    t, s = np.asarray(y_true, bool), np.asarray(scores, float)
    lowest_true = np.where(t, s, np.inf).min(1, keepdims=True)
    covered = (s >= lowest_true).sum(1)
    return float(np.mean(np.where(t.any(1), covered, 0)))
