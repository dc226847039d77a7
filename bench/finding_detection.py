"""Finding-level results of `analyze` on held-out phantoms: per fracture, was it found (an ROI of
the right type containing the true body centre), and how many fracture findings were false,
at several confidence thresholds; plus false findings on the real CT.

usage: uv run python bench/finding_detection.py [--phantoms 16] [--seed-base 93000]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import REPO, demo_bundle, emit

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.training.phantom_data import random_case
from SpineFractureAILib.volume import read_volume

THRESHOLDS = (0.3, 0.5, 0.6, 0.7)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", default=str(demo_bundle()))
    p.add_argument("--phantoms", type=int, default=16)
    p.add_argument("--seed-base", type=int, default=93_000)
    p.add_argument("--realdata", default=str(REPO.parent / "shared" / "realdata"))
    args = p.parse_args()
    found = {t: {g: [0, 0] for g in (1, 2, 3)} for t in THRESHOLDS}  # threshold -> grade -> [found, total]
    false = {t: 0 for t in THRESHOLDS}
    typed = {t: [0, 0] for t in THRESHOLDS}
    real = {}
    cases = [random_case(seed, "ct")[0] for seed in range(args.seed_base, args.seed_base + args.phantoms)]
    for t in THRESHOLDS:  # the threshold also decides when morphometry may speak: rerun per threshold
        bundle = load_bundle(args.bundle)
        bundle.manifest["thresholds"]["fracture_confidence"] = t
        analyzer = Analyzer([bundle], "cpu")
        for case in cases:
            findings = analyzer.analyze(case.image).findings
            fractured = [v for v in case.truth["vertebrae"] if v["fracture"]]
            for v in fractured:
                hits = [f for f in findings if f.roi.contains(v["center_ras"])]
                found[t][v["genant_grade"]][0] += bool(hits)
                found[t][v["genant_grade"]][1] += 1
                if hits:
                    typed[t][0] += hits[0].label == v["fracture"]
                    typed[t][1] += 1
            false[t] += sum(1 for f in findings if not any(f.roi.contains(v["center_ras"]) for v in fractured))
        real[t] = len(analyzer.analyze(read_volume(Path(args.realdata) / "totalsegmentator" / "example_ct.nii.gz")).findings)
    emit({"bundle": load_bundle(args.bundle).summary(), "phantoms": args.phantoms, "seed_base": args.seed_base,
          "by_threshold": {str(t): {
              "sensitivity_by_grade": {g: f"{a}/{n}" for g, (a, n) in found[t].items()},
              "type_correct_when_found": f"{typed[t][0]}/{typed[t][1]}",
              "false_findings_on_phantoms": false[t],
              "false_findings_on_real_ct": real[t]} for t in THRESHOLDS}})


if __name__ == "__main__":
    main()
