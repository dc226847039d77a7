"""Seed 000: YOLOv8-seg for vertebral bodies and their fracture types (EVOSG) on sagittal CT."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..safe_weights import build_yolo, save_yolo
from ..slicing import Intensity
from .phantom_data import TRAIN_SEED_BASE, VAL_SEED_BASE, random_case
from .yolo_export import FRACTURE_SEG_CLASSES, write_data_yaml, write_yolo_slices

# Seed 000's recipe (Ultralytics 8.0, YOLOv8n-seg): the defaults of `train fracture-seg`.
PAPER_RECIPE = dict(epochs=300, batch=16, lr0=0.01, lrf=0.01, optimizer="AdamW", weight_decay=5e-5,
                    fliplr=0.5, scale=0.1, degrees=10.0, cls_pw=0.5, imgsz=640)
DEMO_INTENSITY = {"type": "ct_window", "center": 500.0, "width": 1500.0}


def export_phantom_dataset(out_dir: str | Path, n_train: int, n_val: int, size: int = 256,
                           slice_mm: float = 2.0, log=print, randomised: bool = False,
                           seeds: dict | None = None) -> Path:
    """Phantom CT -> YOLO-seg data for the four fracture-seg classes. randomised: domain-randomised
    phantoms (phantom_data.randomised_case_args); seeds: other first seeds per split."""
    out_dir = Path(out_dir)
    intensity = Intensity.from_manifest(DEMO_INTENSITY)
    counts = {"train": 0, "val": 0}
    cases = []
    seeds = seeds or {"train": TRAIN_SEED_BASE, "val": VAL_SEED_BASE}
    for split, base, n in (("train", seeds["train"], n_train), ("val", seeds["val"], n_val)):
        for seed in range(base, base + n):
            case, args = random_case(seed, "ct", randomised=randomised)
            class_of = {}
            for v in case.truth["vertebrae"]:
                if v["has_body"]:
                    kind = v["fracture"]
                    class_of[v["label"]] = FRACTURE_SEG_CLASSES.index(kind) if kind else 0
            rng = np.random.default_rng(seed)
            counts[split] += write_yolo_slices(out_dir, split, f"ph{seed}", case.image, case.labels,
                                               class_of, size, intensity, slice_mm, rng=rng)
            cases.append({"split": split, **{k: v for k, v in args.items() if k != "spacing"},
                          "spacing": list(args["spacing"])})
            log(f"{split} seed {seed}: {counts[split]} images so far")
    return write_data_yaml(out_dir, FRACTURE_SEG_CLASSES,
                           {"source": "SpineFractureAI phantoms" + (" (domain-randomised)" if randomised else ""),
                            "images": counts, "cases": cases,
                            "size": size, "slice_mm": slice_mm, "intensity": DEMO_INTENSITY})


def train_yolo(data_yaml: str | Path, out_dir: str | Path, model: str, recipe: dict, device: str = "cpu",
               resume: bool = False, workers: int = 2, init: str | None = None, **overrides) -> Path:
    """Train an ultralytics model from yaml (no pretrained weights); returns the run directory.

    The run checkpoints every epoch (`weights/last.pt`); `resume=True` continues it. `init`: a
    local checkpoint of another task (e.g. the fracture-seg run) whose matching layers start a yaml model.
    """
    from ..predictors.offline_ultralytics import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    out_dir = Path(out_dir).resolve()
    last = out_dir / "weights" / "last.pt"
    args = {**recipe, **overrides}
    args["close_mosaic"] = max(1, int(round(0.1 * args["epochs"])))  # mosaic off for the last 10 %
    if resume and last.exists():
        resumed = YOLO(str(last))  # our own run's training state, never a bundle
        resumed.add_callback("on_model_save", save_safetensors)
        resumed.train(resume=True, device=device, workers=workers)
        return out_dir
    started = time.time()
    # From yaml: random init. From one of our own .pt checkpoints: continue from its weights
    # (ultralytics drops them when pretrained=False; pointing at the local file downloads nothing).
    start = str(model) if str(model).endswith(".pt") else (str(init) if init else False)
    yolo = YOLO(model)
    yolo.add_callback("on_model_save", save_safetensors)
    yolo.train(data=str(data_yaml), project=str(out_dir.parent), name=out_dir.name, exist_ok=True,
                      pretrained=start, device=device, workers=workers, plots=False, amp=device != "cpu",
                      seed=0, deterministic=False, verbose=False, **args)
    (out_dir / "recipe.json").write_text(json.dumps({"model": model, "data": str(data_yaml), **args,
                                                    **({"init": str(init)} if init else {}),
                                                    "train_seconds": round(time.time() - started, 1)}, indent=1))
    return out_dir


def save_safetensors(trainer) -> None:
    """Every save of a YOLO run also writes weights/last.safetensors (and best, when it is the best):
    the EMA weights with the model config in the header, which is all `bundle` reads."""
    model = trainer.ema.ema if trainer.ema else trainer.model
    names = trainer.data["names"]
    model.names = dict(names) if isinstance(names, dict) else dict(enumerate(names))
    save_yolo(model, trainer.wdir / "last.safetensors", half=False)
    if trainer.best_fitness == trainer.fitness:
        save_yolo(model, trainer.wdir / "best.safetensors", half=False)


def checkpoint_from_bundle(weights: str | Path, out_pt: str | Path, imgsz: int = 256) -> Path:
    """A bundle's YOLO safetensors -> an ultralytics training checkpoint (our own file, in the run
    folder), so a run can continue from a bundle's weights (fine-tuning, a researcher's retraining)."""
    import torch

    from ..predictors.offline_ultralytics import ultralytics_offline

    ultralytics_offline()
    model = build_yolo(weights)
    Path(out_pt).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"task": model.task, "imgsz": imgsz}}, str(out_pt))
    return Path(out_pt)


def train_fracture_seg(data_yaml: str | Path, out_dir: str | Path, model: str = "yolov8n-seg.yaml",
                       device: str = "cpu", resume: bool = False, workers: int = 2, **overrides) -> Path:
    """Seed 000's recipe (overridable) on YOLO-seg data."""
    return train_yolo(data_yaml, out_dir, model, PAPER_RECIPE, device, resume, workers, **overrides)
