"""The analysis worker process: `python -m SpineFractureAILib.worker` (in Slicer: PythonSlicer).

Started by slicer/worker_client.py with spawn semantics (a fresh interpreter, never a fork of a
process holding Qt or torch). It loads the bundles once in a ModelHost and then serves requests
until told to quit or killed, so a model crash (out of memory, a CUDA error) ends this process,
never Slicer's.

The protocol is one JSON object per line. stdin: first the configuration, then requests
    {"cmd": "analyze", "id": 1, "volume": "<dir>"}   {"cmd": "quit"}
stdout (replies only: anything a library prints goes to stderr, the worker's log):
    {"event": "ready", "pid": ...}
    {"event": "progress", "id": 1, "stage": "...", "fraction": 0.4}
    {"event": "done", "id": 1, "results": "<file>", "weight_loads": 2}
    {"event": "failed", "id": 1, "message": "..."}
The volume travels as <dir>/voxels.npy + <dir>/volume.json (geometry, modality, metadata); the
results come back pickled into <dir>/results.pkl, a private folder only this worker and its parent
use (pickle between two processes of ours, like multiprocessing; model weights stay safetensors).
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import traceback
from pathlib import Path

import numpy as np

from . import atomic
from .bundles import analyses_not_run
from .model_host import ModelHost
from .results import Results
from .volume import Volume

VOLUME_FILE, META_FILE, RESULTS_FILE = "voxels.npy", "volume.json", "results.pkl"


def write_request_volume(volume: Volume, folder: str | Path) -> None:
    """The parent's half: a volume as the worker reads it."""
    folder = Path(folder)
    np.save(folder / VOLUME_FILE, np.ascontiguousarray(volume.voxels))
    meta = {"ijk_to_ras": np.asarray(volume.ijk_to_ras, float).tolist(), "modality": volume.modality,
            "name": volume.name, "metadata": volume.metadata}
    atomic.write_text(folder / META_FILE, json.dumps(meta, default=str))


def read_request_volume(folder: str | Path) -> Volume:
    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    return Volume(np.load(folder / VOLUME_FILE), np.asarray(meta["ijk_to_ras"], float), meta["modality"],
                  meta["name"], meta["metadata"])


def read_results(folder: str | Path) -> Results:
    with open(Path(folder) / RESULTS_FILE, "rb") as f:
        return pickle.load(f)


class _Replies:
    def __init__(self, stream):
        self.stream = stream

    def send(self, **message) -> None:
        self.stream.write(json.dumps(message) + "\n")
        self.stream.flush()


def serve(requests, replies: _Replies) -> None:
    """Configuration first, then one request per line until quit or the end of input."""
    config = json.loads(requests.readline() or "{}")
    host = ModelHost(config.get("bundle_paths"), tuple(config["analyses"]) if config.get("analyses") else None,
                     config.get("device", "auto"), config.get("thresholds"))
    replies.send(event="ready", pid=os.getpid())
    for line in requests:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            return
        job = request["id"]
        try:
            volume = read_request_volume(request["volume"])
            analyzer = host.analyzer(volume.modality, volume.name)
            results = analyzer.analyze(volume, lambda stage, fraction: replies.send(
                event="progress", id=job, stage=stage, fraction=round(float(fraction), 4)))
            results.warnings += analyses_not_run(host.analyses, analyzer.bundles, volume.modality)
            with atomic.staged(Path(request["volume"]) / RESULTS_FILE) as tmp, open(tmp, "wb") as f:
                pickle.dump(results, f, protocol=pickle.HIGHEST_PROTOCOL)
            replies.send(event="done", id=job, results=str(Path(request["volume"]) / RESULTS_FILE),
                         weight_loads=host.weight_loads)
        except Exception as err:  # the model failed but the process lives: report, serve the next
            traceback.print_exc(file=sys.stderr)
            replies.send(event="failed", id=job, message=f"{type(err).__name__}: {err}")


def main() -> None:
    replies = _Replies(os.fdopen(os.dup(1), "w", encoding="utf-8"))  # the protocol keeps stdout's pipe
    os.dup2(2, 1)  # whatever else is printed (ultralytics, torch) goes to the log, not the protocol
    sys.stdout = sys.stderr
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
