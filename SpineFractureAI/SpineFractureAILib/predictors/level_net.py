"""Seed 001's multi-input level classifier: a GCViT image branch (timm, no pretrained weights)
and a fully connected metadata branch, concatenated, two FC layers, a sigmoid per level."""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..safe_weights import load_into

# Per-slice metadata, in this order: position along the stack (mm), index ratio, slice thickness
# (mm), pixel spacing (mm). The manifest names them; the ablation feeds constants.
METADATA = ("position_mm", "index_ratio", "slice_mm", "pixel_mm")
# Typical magnitudes: raw millimetres (up to several hundred) would swamp the image features and
# kill ReLUs at the start of training, so the network divides by these first.
METADATA_SCALE = (100.0, 1.0, 5.0, 2.0)


class MultiInputLevelNet(nn.Module):
    def __init__(self, n_levels: int, backbone: str = "gcvit_tiny", img_size: int = 224,
                 n_meta: int = len(METADATA), meta_width: int = 64, hidden: int = 256, dropout: float = 0.2,
                 backbone_options: dict | None = None):
        super().__init__()
        if img_size % 32:
            raise ValueError(f"GCViT fixes its input size at creation; {img_size} is not a multiple of 32")
        import timm

        # backbone_options: e.g. {"embed_dim": 32} shrinks gcvit_xxtiny 4x for a CPU-sized demo
        options = dict(backbone_options or {})
        if backbone.startswith(("gcvit", "vit", "swin")):  # these fix their input size at creation
            options["img_size"] = img_size
        self.image = timm.create_model(backbone, pretrained=False, num_classes=0, in_chans=1, **options)
        self.register_buffer("meta_scale", torch.tensor(METADATA_SCALE[:n_meta] + (1.0,) * max(0, n_meta - 4)))
        self.meta = nn.Sequential(nn.Linear(n_meta, meta_width), nn.ReLU(), nn.Linear(meta_width, meta_width), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(self.image.num_features + meta_width, hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_levels))
        self.img_size = img_size

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        """image [B, 1, S, S] in 0..1, meta [B, n_meta] -> logits [B, n_levels] (sigmoid per level)."""
        return self.head(torch.cat([self.image(image), self.meta(meta / self.meta_scale)], 1))


class LevelPredictor:
    """A "vertebra-levels" bundle: per axial slice, the probability that it shows each level."""

    def __init__(self, bundle, device: str = "auto"):
        from ..bundles import BundleError, choose_device, first_line

        self.bundle, self.device = bundle, choose_device(device)
        m = bundle.manifest
        (weights,) = bundle.weight_files()  # sha256 verified before loading
        try:
            self.model = MultiInputLevelNet(len(bundle.classes), m["architecture"], int(m["input_size"]),
                                            n_meta=len(m.get("metadata", METADATA)),
                                            backbone_options=m.get("architecture_options"))
            load_into(self.model, weights)  # safetensors: nothing executes
        except Exception as err:
            raise BundleError(f"bundle {bundle.name}: {weights.name} does not fit a {m['architecture']} level "
                              f"network with {len(bundle.classes)} levels ({first_line(err)})") from None
        self.half = self.device.type == "cuda"
        self.model = (self.model.half() if self.half else self.model.float()).to(self.device).eval()
        self.batch = int(m.get("batch", 32))
        self.forward_seconds = 0.0

    @torch.inference_mode()
    def predict(self, images, meta):
        """images [n, S, S] uint8, meta [n, 4] float32 -> probabilities [n, n_levels] (numpy)."""
        out = []
        for b in range(0, len(images), self.batch):
            x = torch.from_numpy(images[b:b + self.batch]).to(self.device)
            x = (x.half() if self.half else x.float()).div_(255).unsqueeze(1)
            m = torch.from_numpy(meta[b:b + self.batch]).to(self.device, x.dtype)
            started = time.perf_counter()
            out.append(torch.sigmoid(self.model(x, m)).float().cpu().numpy())
            self.forward_seconds += time.perf_counter() - started
        return np.concatenate(out) if out else np.zeros((0, len(self.bundle.classes)), np.float32)
