"""YOLOv8 segment / pose / detect models (ultralytics) on a SliceStack: batched, in our own exact pixel frame."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..bundles import Bundle, BundleError, choose_device, first_line
from . import SliceDetections
from ..safe_weights import load_yolo
from .offline_ultralytics import ultralytics_offline


class YoloPredictor:
    def __init__(self, bundle: Bundle, device: str = "auto", weights=None, classes: list[str] | None = None,
                 size: int | None = None):
        """weights, classes, size: one model of a bundle that holds several (default: the bundle's only
        weight file, its classes and input_size)."""
        ultralytics_offline()
        self.bundle = bundle
        self.device = choose_device(device)
        self.classes = list(classes or bundle.classes)
        if weights is None:
            (weights,) = bundle.weight_files()  # safetensors, inside the bundle, sha256 verified
        try:
            model = load_yolo(weights).to(self.device)
        except Exception as err:  # a corrupt or foreign file: say so in one line
            raise BundleError(f"bundle {bundle.name}: {weights.name} is not a loadable YOLO model ({first_line(err)})") from None
        if len(model.names) != len(self.classes):
            raise BundleError(f"bundle {bundle.name}: model has {len(model.names)} classes, "
                              f"manifest lists {len(self.classes)}")
        self.task = getattr(model, "task", "segment")
        if self.task not in ("segment", "pose", "detect"):
            raise BundleError(f"bundle {bundle.name}: a YOLO {self.task} model; expected segment, pose or detect")
        self.half = self.device.type == "cuda"
        self.model = model.half() if self.half else model.float()
        self.size = int(size or bundle.manifest["input_size"])
        t = bundle.thresholds
        self.conf, self.iou = float(t.get("confidence", 0.25)), float(t.get("iou", 0.5))
        self.batch = int(bundle.manifest.get("batch", 16))
        self.forward_seconds = 0.0

    @torch.inference_mode()
    def predict(self, images: np.ndarray, first_index: int = 0) -> list[SliceDetections]:
        """images: [n, S, S] uint8 from a SliceStack; returns one SliceDetections per image."""
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        if images.shape[1:] != (self.size, self.size):
            raise ValueError(f"expected {self.size}x{self.size} slices, got {images.shape[1:]}")
        out: list[SliceDetections] = []
        for b in range(0, len(images), self.batch):
            x = torch.from_numpy(images[b:b + self.batch]).to(self.device)
            x = (x.half() if self.half else x.float()).div_(255).unsqueeze(1).expand(-1, 3, -1, -1)
            started = time.perf_counter()
            preds = self.model(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            self.forward_seconds += time.perf_counter() - started
            # eval output: ((y, protos), extras) in ultralytics 8.4; (y, protos) in older releases
            protos = (preds[0][1] if isinstance(preds[0], tuple) else preds[1]) if self.task == "segment" else None
            dets = non_max_suppression(preds[0], self.conf, self.iou, agnostic=True,
                                       nc=len(self.classes), max_det=100)
            for n, det in enumerate(dets):
                idx = first_index + b + n
                boxes = det[:, :4].float().cpu().numpy()
                classes, scores = det[:, 5].int().cpu().numpy(), det[:, 4].float().cpu().numpy()
                if det.shape[0] == 0:
                    masks = np.zeros((0, self.size, self.size), bool)
                    keypoints = np.zeros((0, 0, 3))
                elif self.task == "segment":
                    masks = ops.process_mask(protos[n], det[:, 6:], det[:, :4], (self.size, self.size),
                                             upsample=True).bool().cpu().numpy()
                    keypoints = None
                elif self.task == "pose":  # decoded (x, y, visibility) per keypoint, in input pixels
                    keypoints = det[:, 6:].float().view(len(det), -1, 3).cpu().numpy()
                    masks = _box_masks(boxes, self.size)
                else:  # detect
                    keypoints, masks = None, _box_masks(boxes, self.size)
                out.append(SliceDetections(idx, boxes, classes, scores, masks, keypoints))
        return out


def _box_masks(boxes: np.ndarray, size: int) -> np.ndarray:
    """Filled boxes stand in for masks where a model gives none (pose), so fusion treats all alike."""
    masks = np.zeros((len(boxes), size, size), bool)
    for m, (x1, y1, x2, y2) in zip(masks, boxes):
        m[int(max(y1, 0)):int(np.ceil(min(y2, size))), int(max(x1, 0)):int(np.ceil(min(x2, size)))] = True
    return masks


def yolo_predictor(bundle, device: str = "auto") -> YoloPredictor:
    """The predictor of a bundle whose manifest says framework "ultralytics" (the default)."""
    family = bundle.manifest.get("framework", "ultralytics")
    if family != "ultralytics":
        raise BundleError(f"bundle {bundle.name}: task {bundle.task!r} runs an ultralytics model, not {family!r}")
    return YoloPredictor(bundle, device)
