"""Seed 001's multi-input level classifier: a GCViT image branch (timm, no pretrained weights)
and a fully connected metadata branch, concatenated, two FC layers, a sigmoid per level."""
from __future__ import annotations

import torch
from torch import nn

# Per-slice metadata, in this order: position along the stack (mm), index ratio, slice thickness
# (mm), pixel spacing (mm). The manifest names them; the ablation feeds constants.
METADATA = ("position_mm", "index_ratio", "slice_mm", "pixel_mm")


class MultiInputLevelNet(nn.Module):
    def __init__(self, n_levels: int, backbone: str = "gcvit_tiny", img_size: int = 224,
                 n_meta: int = len(METADATA), meta_width: int = 64, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        if img_size % 32:
            raise ValueError(f"GCViT fixes its input size at creation; {img_size} is not a multiple of 32")
        import timm

        self.image = timm.create_model(backbone, pretrained=False, num_classes=0, img_size=img_size, in_chans=1)
        self.meta = nn.Sequential(nn.Linear(n_meta, meta_width), nn.ReLU(), nn.Linear(meta_width, meta_width), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(self.image.num_features + meta_width, hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_levels))
        self.img_size = img_size

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        """image [B, 1, S, S] in 0..1, meta [B, n_meta] -> logits [B, n_levels] (sigmoid per level)."""
        return self.head(torch.cat([self.image(image), self.meta(meta)], 1))
