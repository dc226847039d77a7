"""Weights that cannot run code when loaded: safetensors files (tensors and string metadata only),
the network rebuilt from its architecture config, never unpickled.

A YOLO file carries its ultralytics model config, class names and task in the safetensors header,
so `load_yolo` builds the same network from config and fills in the tensors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SAFE_SUFFIX = ".safetensors"


class WeightError(ValueError):
    """A weight file that is not safe to load or does not fit its network."""


def save_state(state: dict, path: str | Path, metadata: dict | None = None, half: bool = False) -> Path:
    """Tensors to a safetensors file, staged and renamed (never half-written)."""
    path = Path(path)
    tensors = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in state.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.chmod(tmp, 0o644)  # safetensors stages with 0600; a bundle is read by others too
    os.replace(tmp, path)
    return path


def load_state(path: str | Path) -> tuple[dict, dict]:
    """(tensors as float32 where floating, header metadata); a non-safetensors file is refused."""
    path = Path(path)
    if path.suffix != SAFE_SUFFIX:
        raise WeightError(f"{path.name}: only {SAFE_SUFFIX} weights are loaded (a pickle can run code)")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001  (any parse failure: not a safetensors file)
        raise WeightError(f"{path.name}: not a valid safetensors file ({str(err).splitlines()[0][:120]})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, metadata


def load_into(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    state, _ = load_state(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightError(f"{Path(path).name}: does not fit the network ({str(err).splitlines()[0][:160]})") from None
    return model


def save_yolo(model, path: str | Path, half: bool = True) -> Path:
    """An ultralytics model (its EMA for training runs) -> safetensors with its config in the header."""
    meta = {"format": "ultralytics-state", "config": json.dumps(model.yaml), "names": json.dumps(
        {int(k): v for k, v in dict(model.names).items()}), "task": _task_of(model)}
    return save_state(model.state_dict(), path, meta, half=half)


def _task_of(model) -> str:
    name = type(model).__name__
    return {"SegmentationModel": "segment", "PoseModel": "pose"}.get(name, "detect")


def build_yolo(path: str | Path):
    """The network built from the header's config with its tensors loaded, as trained (unfused,
    float): what a training run continues from."""
    from ultralytics.nn.tasks import DetectionModel, PoseModel, SegmentationModel

    state, meta = load_state(path)
    if meta.get("format") != "ultralytics-state":
        raise WeightError(f"{Path(path).name}: no ultralytics config in its header")
    config, names, task = json.loads(meta["config"]), json.loads(meta["names"]), meta.get("task", "detect")
    cls = {"segment": SegmentationModel, "pose": PoseModel, "detect": DetectionModel}.get(task)
    if cls is None:
        raise WeightError(f"{Path(path).name}: unknown YOLO task {task!r}")
    model = cls(cfg=config, ch=int(config.get("channels", 3)), nc=len(names), verbose=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightError(f"{Path(path).name}: does not fit its config ({str(err).splitlines()[0][:160]})") from None
    model.names = {int(k): v for k, v in names.items()}
    model.task = task
    return model.float()


def load_yolo(path: str | Path):
    """The network for inference: build_yolo's, fused, eval."""
    return build_yolo(path).fuse(verbose=False).eval()
