"""The partial-label segmenter: the set likelihood is cross-entropy when a pixel's class is known and
never penalises an unlabelled class; a tiny model trains, checkpoints and resumes."""
from __future__ import annotations

import json

import numpy as np
import torch

from SpineFractureAILib.training.partial_labels import (class_dice, known_dice, set_log_likelihood,
                                                         train_partial_segmenter)


def test_set_likelihood_is_cross_entropy_for_known_pixels_and_free_for_unknown():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 5)
    target = torch.randint(0, 4, (2, 5, 5))
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(set_log_likelihood(logits, (1 << target)), ce, atol=1e-5)
    anything = torch.full((2, 5, 5), 0b1111)
    assert float(set_log_likelihood(logits, anything)) < 1e-5  # "any class": nothing to learn


def test_dice_only_where_a_class_is_known():
    allowed = np.full((4, 4), 0b1011, np.uint8)  # "not body" (bit 2 absent): body is known, absent
    allowed[1:3, 1:3] = 0b0100  # body here
    pred = np.zeros((4, 4), int)
    pred[1:3, 1:3] = 2
    assert class_dice(pred, allowed, 2) == 1.0
    assert class_dice(pred, allowed, 1) is None  # discs are not labelled in this slice
    probs = torch.zeros(1, 4, 4, 4)
    probs[0, 2, 1:3, 1:3] = 1
    probs[0, 0] = 1 - probs[0, 2]
    assert float(known_dice(probs, torch.from_numpy(allowed.astype(np.int64))[None])) < 1e-6


def test_tiny_segmenter_trains_checkpoints_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    images = np.zeros((6, 64, 64), np.uint8)
    allowed = np.full((6, 64, 64), 0b1011, np.uint8)
    for n in range(6):
        y, x = rng.integers(10, 40, 2)
        images[n, y:y + 16, x:x + 16] = 200
        allowed[n, y:y + 16, x:x + 16] = 0b0100
    data = {"images": images, "allowed": allowed, "split": np.array(["train"] * 4 + ["val"] * 2)}
    spec = {"architecture": "Unet", "encoder": "tu-resnet10t"}
    train_partial_segmenter(data, spec, tmp_path / "run", 4, epochs=1, batch=2, per_epoch=4, log=lambda *_: None)
    run = train_partial_segmenter(data, spec, tmp_path / "run", 4, epochs=2, batch=2, per_epoch=4,
                                  log=lambda *_: None)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2] and run["state"]["epoch"] == 2  # resumed
    assert (tmp_path / "run" / "best.safetensors").is_file() and "2" in state["history"][-1]["val_dice"]
