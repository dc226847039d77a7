"""Groundwork for levels (issue 5): seed 001's metrics against hand-computed examples, the network."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from SpineFractureAILib.level_metrics import coverage_error, exact_match_ratio, macro_f1
from SpineFractureAILib.predictors.level_net import METADATA, MultiInputLevelNet
from SpineFractureAILib.safe_weights import load_state

TRUE = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]])
PRED = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 1, 1]])


def test_macro_f1_by_hand():
    # label 0: TP 2, FP 0, FN 0 -> 1; label 1: TP 1, FP 1, FN 1 -> 2/4; label 2: TP 2, FP 0, FN 0 -> 1
    assert macro_f1(TRUE, PRED) == pytest.approx((1 + 0.5 + 1) / 3)


def test_exact_match_ratio_by_hand():
    assert exact_match_ratio(TRUE, PRED) == 0.5  # rows 0 and 2 match exactly


def test_coverage_error_by_hand():
    scores = np.array([[0.9, 0.2, 0.1],   # true {0}: rank 1
                       [0.8, 0.1, 0.5],   # true {0,1}: label 1 is ranked 3rd -> 3
                       [0.1, 0.7, 0.6],   # true {1,2}: 2
                       [0.3, 0.9, 0.2]])  # true {2}: lowest -> 3
    assert coverage_error(TRUE, scores) == pytest.approx((1 + 3 + 2 + 3) / 4)


def test_level_net_shapes_and_size_rule():
    net = MultiInputLevelNet(n_levels=7, backbone="gcvit_xxtiny", img_size=64).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 1, 64, 64), torch.rand(2, len(METADATA)))
    assert out.shape == (2, 7)
    with pytest.raises(ValueError, match="multiple of 32"):
        MultiInputLevelNet(7, "gcvit_xxtiny", img_size=100)


def test_axial_targets_and_metadata_from_a_phantom():
    from SpineFractureAILib.phantom import make_phantom
    from SpineFractureAILib.slicing import Intensity, make_stack
    from SpineFractureAILib.training.level_data import axial_level_targets, axial_metadata

    case = make_phantom("C2-C6", "ct", [], [], seed=3, orientation="oblique")
    stack = make_stack(case.image, "axial", 64, Intensity(), slice_mm=2.0)
    names = ["C1", "C2", "C3", "C4", "C5", "C6", "C7"]
    targets = axial_level_targets(case.labels, stack, names)
    for v in case.truth["vertebrae"]:
        s = int(round(stack.from_ras([v["center_ras"]])[0][2]))
        assert targets[s, names.index(v["level"])] == 1, v["level"]  # the slice through its centre shows it
    assert targets[:, names.index("C1")].sum() == 0 and targets[:, names.index("C7")].sum() == 0
    # slice 0 is the most superior: the first level to appear is C2, the last C6
    first = [int(np.argmax(targets[:, c])) for c in range(1, 6)]
    assert first == sorted(first)
    meta = axial_metadata(stack)
    assert meta.shape == (len(stack), 4) and meta[1, 0] == pytest.approx(2.0) and meta[-1, 1] == pytest.approx(1.0)
    # bodies by default: a slice through C4's body centre shows C4 alone; counting the posterior
    # elements too, C3's spinous process reaching down adds C3 on some of C4's body slices
    whole = axial_level_targets(case.labels, stack, names, parts="whole")
    c4 = next(v for v in case.truth["vertebrae"] if v["level"] == "C4")
    s = int(round(stack.from_ras([c4["center_ras"]])[0][2]))
    assert targets[s].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert (whole >= targets).all() and whole.sum() > targets.sum()


def test_level_classifier_trains_checkpoints_and_resumes(tmp_path):
    from SpineFractureAILib.training.level_classifier import evaluate, export_axial, train_level_classifier

    levels = ["T10", "T11", "T12", "L1", "L2", "L3"]
    data = export_axial(2, 1, levels, size=64, slice_mm=4.0, regions="thoracolumbar")
    images, meta, targets = data["train"]
    assert images.shape[1:] == (64, 64) and meta.shape[1] == 4 and targets.shape[1] == len(levels)
    run = train_level_classifier(data, levels, tmp_path / "run", backbone="gcvit_xxtiny", img_size=64, epochs=1,
                                 batch=16)
    history = json.loads((run / "history.json").read_text())
    assert history["epoch"] == 1 and {"macro_f1", "exact_match_ratio", "coverage_error"} <= set(history["history"][0])
    train_level_classifier(data, levels, run, backbone="gcvit_xxtiny", img_size=64, epochs=2, batch=16, resume=True)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history["history"]] == [1, 2]  # resumed, not restarted
    tensors, header = load_state(run / "best.safetensors")
    assert json.loads(header["levels"]) == levels and int(header["img_size"]) == 64
    net = MultiInputLevelNet(len(levels), "gcvit_xxtiny", 64)
    net.load_state_dict(tensors)
    scores = evaluate(net, *data["val"])
    assert 0.0 <= scores["macro_f1"] <= 1.0 and 0.0 <= scores["coverage_error"] <= len(levels)


def test_level_training_entry_point(tmp_path):
    from SpineFractureAILib.cli import main

    assert main(["train", "vertebra-levels", "--levels", "C2-C7", "--data", str(tmp_path / "unused"),
                 "--phantoms", "1", "--val-phantoms", "1", "--imgsz", "64", "--model", "gcvit_xxtiny",
                 "--epochs", "1", "--batch", "16", "--out", str(tmp_path / "levels")]) == 0
    _, header = load_state(tmp_path / "levels" / "best.safetensors")
    assert json.loads(header["levels"]) == ["C2", "C3", "C4", "C5", "C6", "C7"]


def test_randomised_axial_export_is_cached_per_phantom(tmp_path):
    """One file per phantom: a second export (a resumed or a parallel one) reads it instead of
    rebuilding the phantom, and gets the same arrays; a randomised case's targets name its levels."""
    from SpineFractureAILib.levels import level_range
    from SpineFractureAILib.training.level_classifier import axial_case
    from SpineFractureAILib.training.phantom_data import randomised_case_args

    levels = level_range("C1-S1")
    first = axial_case(10_002, levels, 64, 4.0, "all", 3.5, True, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npz")] == [
        "randomised_C1-S1_64px_4.0mm_3.5mm/10002.npz"]
    other = axial_case(10_002, levels, 48, 4.0, "all", 3.5, True, tmp_path)  # other settings: its own file
    assert other[0].shape[1:] == (48, 48) and len(list(tmp_path.rglob("*.npz"))) == 2
    again = axial_case(10_002, levels, 64, 4.0, "all", 3.5, True, tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    shown = {levels[c] for c in np.nonzero(first[2].any(0))[0]}
    case_levels = randomised_case_args(10_002)["levels"]
    assert shown <= set(case_levels) and len(shown) >= len(case_levels) - 2
