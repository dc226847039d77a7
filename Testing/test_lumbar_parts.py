"""Seed 004's parts without trained weights: crops, ensembles (padding, grid search, every paper
member builds), metrics against hand-computed examples, disc naming, the phantom training data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from SpineFractureAILib.lumbar import _disc_names
from SpineFractureAILib.lumbar_bodies import SPLIT_STATUS, not_graded, split_run_together
from SpineFractureAILib.lumbar_crops import crop_to_image, gap_box, grow_box, mask_box, seg_target, square_crop
from SpineFractureAILib.lumbar_gaps import missing_discs
from SpineFractureAILib.run_state import Body
from SpineFractureAILib.lumbar_metrics import auc, classification_metrics, segmentation_metrics
from SpineFractureAILib.volume import Volume
from SpineFractureAILib.predictors.ensembles import (PAPER_CLASSIFIERS, Classifier, Segmenter, grid_search_weights,
                                                     weighted_average)


def test_boxes_grow_by_ten_percent_and_crops_map_back():
    np.testing.assert_allclose(grow_box([10, 20, 110, 70]), [5, 17.5, 115, 72.5])
    image = np.zeros((100, 100), np.uint8)
    image[40:50, 30:70] = 200  # a wide bright bar
    crop, affine = square_crop(image, [30, 40, 70, 50], 64)
    assert crop.shape == (64, 64)
    bar = mask_box(crop > 100)
    # square crop: the 40 x 10 bar keeps its 4:1 shape (not stretched to fill the crop)
    assert (bar[2] - bar[0]) / (bar[3] - bar[1]) == pytest.approx(4.0, rel=0.15)
    np.testing.assert_allclose(crop_to_image(bar, affine)[0], [30, 40, 70, 50], atol=1.0)


def test_disc_names_count_up_from_l5_s1():
    assert _disc_names(5) == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert _disc_names(6)[0] == "T12-L1" and _disc_names(1) == ["L5-S1"] and _disc_names(0) == []


def test_seg_target_maps_phantom_labels():
    lab = np.array([[0, 20, 121, 200, 45]])  # L1 body, L2-L3 disc, canal, L5 posterior elements
    np.testing.assert_array_equal(seg_target(lab), [[0, 2, 1, 3, 0]])


@pytest.mark.parametrize("arch", ["Linknet", "FPN", "Unet", "PSPNet", "DeepLabV3Plus"])
def test_segmenters_take_the_papers_400_px_by_padding_not_resizing(arch):
    net = Segmenter(arch, "tu-resnet10t", 4).eval()
    for size in (400, 250):
        x = torch.rand(1, 1, size, size)
        with torch.no_grad():
            out = net(x)
        assert out.shape == (1, 4, size, size)


def test_every_paper_classifier_member_builds_with_two_dense_layers():
    for paper_name, timm_name in PAPER_CLASSIFIERS.items():
        net = Classifier(timm_name, 2).eval()
        dense = [m for m in net.head if isinstance(m, torch.nn.Linear)]
        drop = [m for m in net.head if isinstance(m, torch.nn.Dropout)]
        assert len(dense) == 2 and drop[0].p == 0.2, paper_name
        with torch.no_grad():
            assert net(torch.rand(1, 1, 96, 96)).shape == (1, 2), paper_name


def test_grid_search_finds_the_weights_that_fix_each_others_mistakes():
    truth = np.array([0, 1, 0, 1])
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])  # wrong on sample 2
    b = np.array([[0.4, 0.6], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4]])  # wrong on samples 0 and 3
    weights, score = grid_search_weights([a, b], lambda p: float(np.mean(p.argmax(1) == truth)))
    assert score == 1.0
    assert np.mean(weighted_average([a, b], weights).argmax(1) == truth) == 1.0
    assert 0 < weights[0] < 1  # neither member alone is perfect


def test_classification_metrics_by_hand():
    truth = [1, 1, 0, 0, 1]
    p = [0.9, 0.4, 0.2, 0.6, 0.8]  # TP 2, FN 1, TN 1, FP 1
    m = classification_metrics(truth, p)
    assert m["accuracy"] == pytest.approx(3 / 5) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(1 / 2)
    assert m["f1"] == pytest.approx(2 / 3)
    # AUC: positives (0.9, 0.4, 0.8) vs negatives (0.2, 0.6): 5 of 6 pairs ranked right
    assert auc(truth, p) == pytest.approx(5 / 6)


def test_segmentation_metrics_by_hand():
    truth = np.array([[1, 1, 2, 2], [0, 3, 3, 0]])
    pred = np.array([[1, 0, 2, 2], [0, 3, 0, 0]])
    m = segmentation_metrics(truth, pred, ["background", "disc", "body", "canal"])
    assert m["per_class"]["disc"]["iou"] == pytest.approx(0.5) and m["per_class"]["body"]["iou"] == 1.0
    assert m["per_class"]["canal"]["dice"] == pytest.approx(2 / 3)
    assert m["mIoU"] == pytest.approx((0.5 + 1 + 0.5) / 3)


def test_grid_search_prefers_even_weights_on_ties():
    truth = np.array([0, 1])
    perfect = np.array([[0.9, 0.1], [0.1, 0.9]])
    weights, _ = grid_search_weights([perfect, perfect.copy()], lambda p: float(np.mean(p.argmax(1) == truth)))
    assert weights == [0.5, 0.5]


def test_members_from_local_weights_train_frozen_then_unfrozen(tmp_path):
    from SpineFractureAILib.training.lumbar_train import CLASSIFIER_RECIPE, train_member

    start = Classifier("resnet10t", 2).backbone.state_dict()
    torch.save(start, tmp_path / "init.pt")
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (12, 32, 32), dtype=np.uint8), np.array([0, 1] * 6)
    spec = {"architecture": "resnet10t", "init": str(tmp_path / "init.pt")}

    def backbone_moved(epochs):
        recipe = {**CLASSIFIER_RECIPE, "epochs": epochs, "batch": 4, "frozen_epochs": 1}
        train_member(spec, images, labels, images, labels, tmp_path / f"run{epochs}", recipe, 2,
                     lambda p, y: float(np.mean(p.argmax(1) == y)))
        last = torch.load(tmp_path / f"run{epochs}" / "last.pt", weights_only=False)["model"]  # after the last epoch
        names = [k for k, _ in Classifier("resnet10t", 2).backbone.named_parameters()]
        return any(not torch.equal(last["backbone." + k], start[k]) for k in names)

    assert not backbone_moved(1)  # epoch 1: backbone frozen (lr 1e-3 trains the head only)
    assert backbone_moved(2)  # epoch 2: everything at the fine-tuning lr


def _stacked_bodies(tops_mm, height_mm=28, size=200):
    """Bodies as boxes on a 1 mm grid, S up (array axis 0 = k = S), head first."""
    labels = np.zeros((size, 40, 30), np.int32)
    for n, top in enumerate(tops_mm, start=1):
        labels[top - height_mm:top, 10:35, 5:25] = n
    return Volume(labels.astype(np.int16), np.eye(4), "mr"), labels


def test_two_bodies_run_together_across_a_disc_are_cut_there():
    volume, labels = _stacked_bodies([190, 150, 110])  # three bodies 28 mm high, 12 mm discs
    labels[12:75, 10:35, 5:25] = 4  # the segmenter ran L4 and L5 together (63 mm) across their disc
    discs = [(15.0, 22.0, s) for s in (156.0, 116.0, 78.5, 43.5, 5.0)]  # (R, A, S) centres, head first
    out, cut = split_run_together(volume, labels.copy(), discs)
    assert out.max() == 5 and cut == {4, 5}
    for label, (lo, hi) in ((4, (44, 75)), (5, (12, 44))):  # cut at the disc's plane, S = 43.5
        k = np.nonzero((out == label).any((1, 2)))[0]
        assert abs(k.min() - lo) <= 1 and abs(k.max() + 1 - hi) <= 1, (label, k.min(), k.max())
    assert ((out == 1) == (labels == 1)).all() and ((out == 3) == (labels == 3)).all()
    untouched, none = split_run_together(volume, out.copy(), discs)  # nothing left to cut
    assert none == set() and (untouched == out).all()
    skip = not_graded(["L1", "L2", "L3", "L4", "L5"], cut, ["L2", "L3", "L4", "L5"])
    assert skip[4] == skip[5] == SPLIT_STATUS and skip[1].startswith("unmeasurable: the MR segmenter")
    assert 2 not in skip and 3 not in skip



def test_bodies_run_together_without_a_detected_disc_are_cut_at_their_waist():
    # T11 and T12 above the discs the detector learned, L4 and L5 across a thin dark disc: each pair
    # one piece joined by a 4 mm bridge at the back, and no disc detected inside either piece.
    volume, labels = _stacked_bodies([290, 250, 210, 170, 130, 90, 50], size=300)
    labels[250:262, 10:14, 5:25] = 1  # the bridge over T11-T12 (the gap between the two bodies)
    labels[labels == 2] = 1
    labels[50:62, 31:35, 5:25] = 6  # the bridge over L4-L5
    labels[labels == 7] = 6
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape).astype(np.int32)  # 1..5
    discs = [(15.0, 22.0, s) for s in (196.0, 156.0, 116.0)]  # L1-L2 ... L3-L4 only, in no piece
    out, cut = split_run_together(volume, labels.copy(), discs)
    assert out.max() == 7 and cut == {1, 2, 6, 7}, cut
    for label in range(1, 8):
        top = 290 - 40 * (label - 1)
        k = np.nonzero(out == label)[0]
        assert abs(np.median(k) - (top - 14)) <= 2, (label, np.median(k))  # the body, not the bridge
        assert abs(k.max() + 1 - top) <= 6 and abs(k.min() - (top - 28)) <= 6, (label, k.min(), k.max())


def test_three_bodies_in_one_piece_become_three_and_a_tall_piece_without_a_waist_stays_whole():
    volume, labels = _stacked_bodies([190, 150, 110, 70, 30])
    labels[2:110, 10:35, 5:25] = 3  # L3, L4 and L5 one piece, both discs inside it detected
    discs = [(15.0, 22.0, s) for s in (156.0, 116.0, 76.0, 36.0)]
    out, cut = split_run_together(volume, labels.copy(), discs)
    assert out.max() == 5 and cut == {3, 4, 5}
    for label, s in ((3, 93), (4, 56), (5, 19)):  # cut at the discs, S = 76 and 36
        assert abs(np.median(np.nonzero(out == label)[0]) - s) <= 3, (label, np.median(np.nonzero(out == label)[0]))
    out, none = split_run_together(volume, labels.copy(), [])  # the same piece, no disc and no waist
    assert none == set() and (out == labels).all()


def test_a_disc_between_two_bodies_is_their_gap_not_a_grazed_corner():
    upper, lower = np.zeros((80, 60), bool), np.zeros((80, 60), bool)
    upper[10:30, 10:50] = True  # rows 10-29
    lower[40:70, 10:50] = True  # the disc: rows 30-39
    lower[65:70, 50:52] = True  # the lower body's rounded corner reaches two columns further
    upper[28:30, 50:52] = True  # ... under the upper body's own corner: a 35-row "gap" there
    np.testing.assert_array_equal(gap_box(upper, lower), [10, 30, 50, 40])
    assert gap_box(upper, np.zeros_like(lower)) is None


def test_a_missing_disc_is_looked_for_between_each_pair_of_bodies():
    bodies = [Body(n, "vertebral body", None, 0.0, level=level) for n, level in enumerate(["T12", "L1", "L2"], 1)]
    assert [b.level for b in missing_discs(bodies, ["L1-L2", None, "L2-L3"])] == ["T12"]
    assert missing_discs(bodies, ["T12-L1", "L1-L2"]) == []
