"""Seed 004's weighted-average ensembles (WAE): timm classifiers for herniation, smp segmenters for
disc / vertebral body / spinal canal. Members are built from the manifest, never downloaded."""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..safe_weights import load_into

# The paper's six classifier members, as timm names them.
PAPER_CLASSIFIERS = {"VGG16": "vgg16", "VGG19": "vgg19", "ResNet50": "resnet50", "InceptionV3": "inception_v3",
                     "Xception": "legacy_xception", "DenseNet121": "densenet121"}
# The paper's segmentation members: architecture x encoder (smp names).
PAPER_SEGMENTERS = [("Unet", "resnet34"), ("Unet", "resnet50"), ("Linknet", "resnet34"), ("FPN", "resnet34"),
                    ("PSPNet", "resnet50"), ("DeepLabV3Plus", "resnet50"), ("Unet", "vgg16"), ("FPN", "resnext50_32x4d")]


class Classifier(nn.Module):
    """A timm backbone (no pretrained weights) + two dense layers with 20 % dropout (seed 004)."""

    def __init__(self, architecture: str, n_classes: int = 2, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        import timm

        self.backbone = timm.create_model(architecture, pretrained=False, num_classes=0, in_chans=1)
        # num_classes=0 leaves pooled features; VGG's pre-logits MLP widens them (head_hidden_size)
        width = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class Segmenter(nn.Module):
    """An smp model (encoder_weights=None). Inputs of any size: padded to a multiple of 32 (LinkNet
    and FPN reject others) and cropped back, never resized."""

    def __init__(self, architecture: str, encoder: str, n_classes: int = 4, **kwargs):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.net = smp.create_model(architecture, encoder_name=encoder, encoder_weights=None, in_channels=1,
                                    classes=n_classes, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        return self.net(x)[..., :h, :w]


def build_member(spec: dict, n_classes: int) -> nn.Module:
    if spec.get("encoder"):
        return Segmenter(spec["architecture"], spec["encoder"], n_classes, **spec.get("options", {}))
    return Classifier(spec["architecture"], n_classes)


def weighted_average(member_probs: list[np.ndarray], weights) -> np.ndarray:
    """The WAE prediction: sum of weight x member probabilities (weights sum to 1)."""
    w = np.asarray(weights, float)
    return sum(wi * p for wi, p in zip(w / w.sum(), member_probs))


def grid_search_weights(member_probs: list[np.ndarray], score, step: float = 0.1) -> tuple[list[float], float]:
    """Every weight vector on a grid of `step` that sums to 1; the one whose ensemble scores best
    on the validation split (score(probabilities) -> higher is better). Among equal scores the most
    even weights win: an ensemble leans on one member only when the data say so."""
    n = len(member_probs)
    ticks = int(round(1 / step))
    best, best_score = None, -np.inf
    for combo in itertools.product(range(ticks + 1), repeat=n):
        if sum(combo) != ticks:
            continue
        w = [c / ticks for c in combo]
        s = score(weighted_average(member_probs, w))
        if s > best_score + 1e-12 or (abs(s - best_score) <= 1e-12 and max(w) < max(best)):
            best, best_score = w, s
    return best, float(best_score)


class Ensemble:
    """Loaded members + weights from a manifest stage: {"members": [{"architecture", "encoder"?,
    "file", "weight"}], "classes": [...], "input_size": N}."""

    def __init__(self, stage: dict, weight_path, device, half: bool):
        """weight_path: file name -> its checked path (Bundle.weight_path)."""
        self.members, self.weights = [], []
        for spec in stage["members"]:
            model = load_into(build_member(spec, len(stage["classes"])), weight_path(spec["file"]))
            model = (model.half() if half else model.float()).to(device).eval()
            self.members.append(model)
            self.weights.append(float(spec.get("weight", 1.0)))
        self.device, self.half = device, half
        self.forward_seconds = 0.0

    @torch.inference_mode()
    def predict(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        """images [n, H, W] uint8 -> ensemble softmax [n, C] (classifier) or [n, C, H, W] (segmenter)."""
        out = []
        for b in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[b:b + batch])).to(self.device)
            x = (x.half() if self.half else x.float()).div_(255).unsqueeze(1)
            started = time.perf_counter()
            probs = [torch.softmax(m(x).float(), 1).cpu().numpy() for m in self.members]
            self.forward_seconds += time.perf_counter() - started
            out.append(weighted_average(probs, self.weights))
        return np.concatenate(out)
