"""Batch throughput on this machine: cases per minute with 1 and 2 Dask workers, weight loads
counted (should equal workers x bundles, never cases x bundles), and the per-case overhead of a
batch over single `analyze` runs of the same cases.

usage: uv run python bench/batch_throughput.py [--cases 12] [--workers 1,2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, emit

from SpineFractureAILib.phantom import make_phantom, write_phantom

ENV = {"PYTHONPATH": str(REPO / "SpineFractureAI")}


def cli(*args) -> tuple[float, dict]:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "SpineFractureAILib.cli", *args], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, **ENV}, check=True)
    return time.perf_counter() - started, json.loads(run.stdout)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=12)
    p.add_argument("--workers", default="1,2")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cases"
        folder.mkdir()
        for n in range(args.cases):  # seeds no training used (training: 10000+, 20000+)
            case = make_phantom("T11-L3", "ct", ["L1:wedge:3"] if n % 3 == 0 else [], [], seed=77_000 + n,
                                spacing=(1.0, 1.0, 1.5))
            write_phantom(case, folder / f"case{n:02d}.nii.gz")
        images = sorted(str(p) for p in folder.glob("case*.nii.gz") if ".labels." not in p.name)
        # Single `analyze` processes, one per case: what a user without batch would run.
        single = [cli("analyze", image, "--out", str(Path(tmp) / "single"))[0] for image in images[:3]]
        result = {"cases": len(images), "cpu_cores": os.cpu_count(),
                  "single_analyze_process_s": round(sum(single) / len(single), 2), "batch": {}}
        for workers in [int(w) for w in args.workers.split(",")]:
            seconds, out = cli("batch", str(folder), "--out", str(Path(tmp) / f"batch{workers}"),
                               "--workers", str(workers))
            summary = out["summary"]
            result["batch"][f"{workers}_workers"] = {
                "seconds": round(seconds, 2), "cases_per_minute": round(60 * len(images) / seconds, 2),
                "weight_loads": summary["weight_loads"], "failed": summary["failed"],
                "per_case_s": round(seconds / len(images), 2),
                "per_case_vs_single_analyze": round(seconds / len(images) / result["single_analyze_process_s"], 3)}
        emit(result)


if __name__ == "__main__":
    main()
