"""The correction loop: an (edited) segmentation + its volume -> YOLO training labels, appended to a
dataset folder that `spinefracture train fracture-seg --data DIR` reads directly, its boxes to
DIR/fracture-detect (`train fracture-detect`) and the morphometry points to DIR/vertebra-pose
(`train vertebra-pose`)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..slicing import Intensity, make_stack, sample_labels
from ..volume import Volume
from .fracture_seg import DEMO_INTENSITY
from .yolo_export import FRACTURE_SEG_CLASSES, write_data_yaml, write_yolo_slices

SEGMENT_CLASS = {"vertebral body": "vertebral body", "wedge fracture": "wedge",
                 "biconcave fracture": "biconcave", "crush fracture": "crush",
                 "fracture": "fracture"}  # a detector's fracture of unknown type (detector labels only)


def segment_class(name: str) -> str | None:
    """'Wedge fracture', 'L1 wedge fracture', 'C3 vertebral body' -> the class (level names dropped)."""
    from ..levels import LEVELS

    words = name.strip().split()
    if words and words[0].upper() in LEVELS:
        words = words[1:]
    return SEGMENT_CLASS.get(" ".join(words).lower())


def instances_from_segments(labelmap: np.ndarray, names: dict[int, str],
                            classes: list[str] = FRACTURE_SEG_CLASSES) -> tuple[np.ndarray, dict[int, int]]:
    """Split each class segment into 3D connected bodies: (instance map, {instance: index in classes})."""
    instances = np.zeros(labelmap.shape, np.uint16)
    class_of: dict[int, int] = {}
    for value, name in names.items():
        cls = segment_class(name)
        if cls not in classes:
            continue
        parts, n = ndimage.label(labelmap == value)
        for part in range(1, n + 1):
            instance = len(class_of) + 1
            instances[parts == part] = instance
            class_of[instance] = classes.index(cls)
    return instances, class_of


def export_keypoints(out_dir: Path, name: str, volume: Volume, instances: np.ndarray, keypoints: list,
                     size: int, intensity: Intensity, slice_mm: float) -> int:
    """Seed 003's pose format (box + six endplate points per body) from the (moved) morphometry
    points, each set matched to the body its points surround; returns the images written."""
    import cv2

    from .vertebra_pose import FLIP_IDX, POSE_CLASSES, pose_lines

    vertebrae = []
    for points in keypoints:
        ijk = np.rint(volume.ras_to_ijk_points(np.mean(points, 0, keepdims=True))[0]).astype(int)
        inside = np.all((ijk >= 0) & (ijk < volume.shape_ijk))
        label = int(instances[ijk[2], ijk[1], ijk[0]]) if inside else 0
        if label:
            vertebrae.append({"has_body": True, "label": label, "keypoints_ras": np.asarray(points).tolist()})
    if not vertebrae:
        return 0
    stack = make_stack(volume, "sagittal", size, intensity, slice_mm=slice_mm)
    labels = sample_labels(Volume(instances, volume.ijk_to_ras), stack)
    written = 0
    for s in range(len(stack)):
        rows = pose_lines(vertebrae, stack, labels, s)
        if not rows:
            continue
        split = "val" if written % 5 == 4 else "train"
        for part in ("images", "labels"):
            (out_dir / part / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out_dir / "images" / split / f"{name}_s{s:03d}.png"), stack.images[s])
        (out_dir / "labels" / split / f"{name}_s{s:03d}.txt").write_text("\n".join(rows) + "\n")
        written += 1
    if not (out_dir / "data.yaml").exists():
        with open(write_data_yaml(out_dir, POSE_CLASSES), "a") as f:
            f.write(f"kpt_shape: [6, 3]\nflip_idx: {FLIP_IDX}\n")
    return written


def export_training_labels(volume: Volume, labelmap: np.ndarray, names: dict[int, str], out_dir: str | Path,
                           review: dict | None = None, size: int = 256, slice_mm: float = 2.0,
                           intensity: dict | None = None, keypoints: list | None = None) -> dict:
    """Append one volume's labels (every 5th slice to val) and a manifest entry; returns the entry."""
    out_dir = Path(out_dir)
    # One instance map for every model: the detector also learns from fractures of unknown type,
    # which the fracture model (typed classes only) leaves out.
    detect_classes = FRACTURE_SEG_CLASSES + ["fracture"]
    instances, every_class = instances_from_segments(labelmap, names, detect_classes)
    class_of = {i: c for i, c in every_class.items() if c < len(FRACTURE_SEG_CLASSES)}
    if not class_of:
        raise ValueError("no segment named Vertebral body / Wedge / Biconcave / Crush fracture to export")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    name = f"{volume.name}_{stamp}"
    labels = Volume(instances, volume.ijk_to_ras, name=name)
    pixels = Intensity.from_manifest(intensity or DEMO_INTENSITY)
    count = write_yolo_slices(out_dir, "train", name, volume, labels, class_of, size, pixels, slice_mm,
                              empty_fraction=0.0, val_every=5)
    if not (out_dir / "data.yaml").exists():
        write_data_yaml(out_dir, FRACTURE_SEG_CLASSES)
    # The detector's format: one class, every fractured body (typed or not); intact bodies keep
    # their slices as negatives.
    detect_images = write_yolo_slices(out_dir / "fracture-detect", "train", name, volume, labels,
                                      {i: (-1 if c == 0 else 0) for i, c in every_class.items()}, size, pixels,
                                      slice_mm, empty_fraction=0.0, val_every=5, drop_class=-1)
    if not (out_dir / "fracture-detect" / "data.yaml").exists():
        write_data_yaml(out_dir / "fracture-detect", ["fracture"])
    pose_images = export_keypoints(out_dir / "vertebra-pose", name, volume, instances, keypoints or [], size,
                                   pixels, slice_mm)
    entry = {"source_volume": volume.name, "time": stamp, "images": count, "detect_images": detect_images,
             "pose_images": pose_images,
             "instances": len(class_of),
             "classes": {FRACTURE_SEG_CLASSES[c]: sum(1 for v in class_of.values() if v == c) for c in set(class_of.values())},
             "size": size, "slice_mm": slice_mm, **(review or {})}
    manifest = out_dir / "corrections.json"
    entries = json.loads(manifest.read_text()) if manifest.exists() else []
    manifest.write_text(json.dumps(entries + [entry], indent=1))
    return entry
