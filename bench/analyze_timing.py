"""Time `analyze` per volume, split by stage, with slices/s, pipeline/forward ratio and peak memory.

usage: uv run python bench/analyze_timing.py [--bundle DIR]... [--analyses fractures,levels] [--large]
       [--realdata ../shared/realdata]   (default: the CT bundles `analyze` runs by default)
--large adds a 512x512x400 CT (a phantom embedded in a full-size grid) for the <= 20 s target;
--whole-spine makes that phantom C1-S1 at 0.7 x 0.7 x 1.6 mm (the spine fills the 400 slices).
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from common import REPO, emit

from SpineFractureAILib.bundles import bundles_for, parse_analyses
from SpineFractureAILib.files import write_case
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.volume import Volume, read_volume


def large_ct(seed: int = 90_500, whole_spine: bool = False) -> Volume:
    """A phantom at 0.7 x 0.7 x 0.8 mm (whole spine: C1-S1 at 1.6 mm slices) embedded in a
    512 x 512 x 400 air/soft-tissue grid."""
    levels, spacing = ("C1-S1", (0.7, 0.7, 1.6)) if whole_spine else ("T8-L5", (0.7, 0.7, 0.8))
    case = make_phantom(levels, "ct", ["L1:wedge:3"], [], seed=seed, spacing=spacing)
    small = case.image
    big = np.full((400, 512, 512), -1000, np.int16)
    k, j, i = (min(a, b) for a, b in zip(small.voxels.shape, big.shape))
    ok, oj, oi = [(b - a) // 2 for a, b in zip((k, j, i), big.shape)]
    big[ok:ok + k, oj:oj + j, oi:oi + i] = small.voxels[:k, :j, :i]
    affine = small.ijk_to_ras.copy()
    affine[:3, 3] = small.ijk_to_ras_points([[-oi, -oj, -ok]])[0]
    return Volume(big, affine, "ct", "whole_spine_ct_512x512x400" if whole_spine else "large_ct_512x512x400")


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def large_ct_file(out: Path, whole_spine: bool = False) -> Path:
    """Written once by a child process, so making it does not count in this process's peak."""
    path = out / f"{'whole_spine' if whole_spine else 'large'}_ct_512x512x400.nii.gz"
    if not path.exists():
        import subprocess
        import sys

        out.mkdir(parents=True, exist_ok=True)
        code = ("import sys; sys.path[:0] = [%r, %r]; from analyze_timing import large_ct; "
                "from SpineFractureAILib.volume import write_volume; write_volume(large_ct(whole_spine=%r), %r)"
                % (str(Path(__file__).parent), str(REPO / "SpineFractureAI"), whole_spine, str(path)))
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


def time_case(analyzer: Analyzer, volume: Volume, out: Path, load_s: float) -> dict:
    started = time.perf_counter()
    results = analyzer.analyze(volume)
    analyze_s = time.perf_counter() - started
    t0 = time.perf_counter()
    write_case(results, out)
    write_s = time.perf_counter() - t0
    t = results.timing_s
    total = load_s + analyze_s + write_s
    return {"case": volume.name, "shape_ijk": list(volume.shape_ijk), "spacing_mm": volume.spacing.round(3).tolist(),
            "stages_s": {"load": round(load_s, 3), "slice": round(t.get("slice", 0), 3),
                         "model_forward": round(t.get("model_forward", 0), 3),
                         "model_postprocess": round(t.get("model_postprocess", 0), 3),
                         "fusion": round(t.get("fusion", 0), 3), "spine_prior": round(t.get("spine_prior", 0), 3),
                         "write": round(write_s, 3)},
            "total_s": round(total, 3), "slices": int(t.get("slices", 0)),
            "slices_per_s": round(t.get("slices", 0) / max(t.get("model_forward", 1e-9), 1e-9), 1),
            "pipeline_over_forward": round(total / max(t.get("model_forward", 1e-9), 1e-9), 3),
            "findings": [(f.label, round(f.confidence, 3)) for f in results.findings],
            "volume_MiB": round(volume.voxels.nbytes / 2**20, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", action="append", help="default: what `analyze` runs on a CT")
    p.add_argument("--analyses", help="e.g. fractures,levels (as `analyze --analyses`)")
    p.add_argument("--large", action="store_true")
    p.add_argument("--whole-spine", action="store_true", help="with --large: a C1-S1 phantom in the big grid")
    p.add_argument("--realdata", default=str(REPO.parent / "shared" / "realdata"))
    p.add_argument("--out", default=str(REPO / "bench" / "out"))
    args = p.parse_args()
    bundles = bundles_for("ct", args.bundle, parse_analyses(args.analyses) if args.analyses else None)
    analyzer = Analyzer(bundles, "cpu")
    t0 = time.perf_counter()
    for bundle in bundles:
        analyzer.predictor(bundle)
    model_load_s = time.perf_counter() - t0
    model_MiB = sum(f.stat().st_size for b in bundles for f in b.weight_files()) / 2**20
    cases = []
    phantom = make_phantom("T10-L3", "ct", ["L1:wedge:3"], [], seed=90_001).image
    cases.append(time_case(analyzer, phantom, Path(args.out), 0.0))
    t0 = time.perf_counter()
    real = read_volume(Path(args.realdata) / "totalsegmentator" / "example_ct.nii.gz")
    cases.append(time_case(analyzer, real, Path(args.out), time.perf_counter() - t0))
    memory = None
    if args.large:
        path = large_ct_file(Path(args.out), args.whole_spine)
        baseline = rss_mib()  # interpreter, torch, the loaded model and the warm-up cases
        t0 = time.perf_counter()
        large = read_volume(path)
        case = time_case(analyzer, large, Path(args.out), time.perf_counter() - t0)
        cases.append(case)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory = {"baseline_rss_MiB": round(baseline, 1), "peak_rss_MiB": round(peak, 1),
                  "peak_increase_MiB": round(peak - baseline, 1), "volume_MiB": case["volume_MiB"],
                  "increase_over_volume": round((peak - baseline) / case["volume_MiB"], 2),
                  "model_file_MiB": round(model_MiB, 1)}
    emit({"bundles": [b.summary() for b in bundles], "device": "cpu", "model_load_s": round(model_load_s, 3), "cases": cases,
          "memory": memory, "targets": {"large_ct_total_s": 20.0, "pipeline_over_forward": 1.5,
                                        "increase_over_volume": 3.0}})


if __name__ == "__main__":
    main()
