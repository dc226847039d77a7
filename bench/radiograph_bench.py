"""Seed 002's evaluation on held-out synthetic lateral radiographs (seeds 95000+, never trained on or used
to choose weights): AUC, accuracy, sensitivity, specificity, F1 and precision of each backbone and of the
soft-voting ensemble on the fractured bodies' crops, the ROC curve (PNG), and the whole pipeline: bodies
found, levels named, fractures found and their age right.

usage: uv run python bench/radiograph_bench.py [--cases 150] [--roc docs/figures/radiograph_roc.png]
                                             [--whole-spine 10]
--whole-spine N adds N whole-spine lateral films (C2-S1, seeds 96000+, 0.8-1.2 mm pixels, 0-2 fractures
of grade 2-3 between T4 and L5): a film taller than the model's input, read in windows.
"""
from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from common import REPO, demo_bundle, emit

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.lumbar_metrics import classification_metrics
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.predictors.ensembles import weighted_average
from SpineFractureAILib.radiograph.drr import radiograph_volume
from SpineFractureAILib.radiograph.frame import default_plane
from SpineFractureAILib.levels import LEVELS
from SpineFractureAILib.radiograph.model_input import crop_resized
from SpineFractureAILib.radiograph.phantom import make_radiograph
from SpineFractureAILib.training.radiograph_data import AGE_CLASSES, render_case

SEED_BASE, WHOLE_SPINE_SEEDS = 95_000, 96_000
PAPER = {"EfficientNet": {"auc": 0.861, "accuracy": 0.830}, "MobileNet": {"auc": 0.852, "accuracy": 0.824},
         "MnasNet": {"auc": 0.865, "accuracy": 0.822}}


def _render(seed):
    args, image8, case = render_case(seed)
    return seed, args, image8, case


def _whole_spine(seed):
    rng = np.random.default_rng([seed, 96])
    levels = rng.choice(LEVELS[LEVELS.index("T4"):LEVELS.index("S1")], int(rng.integers(0, 3)), replace=False)
    fractures = [f"{lv}:{rng.choice(['wedge', 'biconcave', 'crush'])}:{int(rng.integers(2, 4))}:"
                 f"{rng.choice(['fresh', 'old'])}" for lv in levels]
    spacing = float(np.round(rng.uniform(0.8, 1.2), 2))
    case = make_radiograph("C2-S1", fractures, seed=seed, spacing=spacing)
    return seed, {"view": "lateral", "fractures": fractures, "spacing": spacing}, case


def _pipeline_scores(analyzer, seed, args, case) -> dict:
    volume = radiograph_volume(case.image.astype(np.float32), default_plane(case.spacing), f"xr{seed}",
                               {"pixel_spacing_mm": case.spacing})
    results = analyzer.analyze(volume)
    truth = [v for v in case.truth["vertebrae"] if v.get("center_ras") and v["has_body"]]
    rows = results.vertebrae
    found = named = wrong = 0
    for v in truth:
        near = [r for r in rows if np.linalg.norm(np.subtract(r["center_ras"], v["center_ras"])) < 12]
        found += bool(near)
        named += bool(near) and near[0]["level"] == v["level"]
        wrong += bool(near) and near[0]["level"] is not None and near[0]["level"] != v["level"]
    fractures = [v for v in truth if v["fracture"] and v["genant_grade"] >= 2]
    hit = age_right = 0
    for v in fractures:
        f = next((f for f in results.findings if f.roi.contains(v["center_ras"], 2.0)), None)
        hit += f is not None
        age_right += f is not None and f.extra.get("age") == v["age"]
    false = sum(1 for f in results.findings if not any(f.roi.contains(v["center_ras"], 2.0)
                                                       for v in truth if v["fracture"]))
    return {"view": args["view"], "bodies": len(truth), "found": found, "named": named, "named_wrong": wrong,
            "anchor": bool(results.radiograph and str(results.radiograph.get("levels", "")).startswith("anchored")),
            "fractures_g2": len(fractures), "fractures_found": hit, "age_right": age_right, "false_findings": false,
            "ap_refused": any("AP (frontal)" in w for w in results.warnings)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=150)
    p.add_argument("--bundle", default=str(demo_bundle("radiograph-fracture-demo")))
    p.add_argument("--roc", default=str(REPO / "docs" / "figures" / "radiograph_roc.png"))
    p.add_argument("--whole-spine", type=int, default=0, help="whole-spine films to add (seeds 96000+)")
    args = p.parse_args()
    bundle = load_bundle(args.bundle)
    analyzer = Analyzer([bundle], "cpu")
    predictor = analyzer.predictor(bundle)
    crops, ages, cases = [], [], []
    with Pool(2) as pool:
        rendered = pool.map(_render, range(SEED_BASE, SEED_BASE + args.cases), chunksize=4)
    for seed, rargs, image8, case in rendered:
        by_level = {o["level"]: o for o in case.objects}
        for v in case.truth["vertebrae"]:
            # the classifier is judged on the films it is meant for (radiograph sharpness, as it was trained)
            if v["age"] and rargs["view"] == "lateral" and rargs["blur_mm"] <= 1.0 and v["level"] in by_level:
                crops.append(crop_resized(image8, by_level[v["level"]]["box"], predictor.age_size))
                ages.append(AGE_CLASSES.index(v["age"]))
        cases.append(_pipeline_scores(analyzer, seed, rargs, case))
    x, y = np.stack(crops), np.array(ages)
    member_probs = [np.concatenate([_member(m, x[b:b + 32], predictor) for b in range(0, len(x), 32)])
                    for m in predictor.age.members]
    names = [m["paper_name"] for m in bundle.manifest["age"]["members"]]
    table = {n: _metrics(y, p[:, 1]) for n, p in zip(names, member_probs)}
    table["ensemble"] = _metrics(y, weighted_average(member_probs, predictor.age.weights)[:, 1])
    _roc_png(y, {**{n: p[:, 1] for n, p in zip(names, member_probs)},
                 "ensemble": weighted_average(member_probs, predictor.age.weights)[:, 1]}, args.roc)
    lateral = [c for c in cases if c["view"] == "lateral"]
    total = lambda k, films=lateral: sum(c[k] for c in films)  # noqa: E731
    whole = []
    if args.whole_spine:
        with Pool(2) as pool:
            films = pool.map(_whole_spine, range(WHOLE_SPINE_SEEDS, WHOLE_SPINE_SEEDS + args.whole_spine))
        whole = [_pipeline_scores(analyzer, seed, fargs, case) for seed, fargs, case in films]
    emit({"held_out_seeds": [SEED_BASE, SEED_BASE + args.cases - 1], "fracture_crops": int(len(y)),
          "fresh": int(y.sum()), "age_classifier": table, "paper_seed_002": PAPER, "roc_png": args.roc,
          "pipeline": {"lateral_images": len(lateral), "bodies": total("bodies"), "found": total("found"),
                       "named_right": total("named"), "named_wrong": total("named_wrong"),
                       "films_with_the_t12_anchor": total("anchor"), "fractures_grade2plus": total("fractures_g2"),
                       "found_fractures": total("fractures_found"), "age_right": total("age_right"),
                       "false_findings": total("false_findings"),
                       "ap_images": len(cases) - len(lateral),
                       "ap_refused": sum(c["ap_refused"] for c in cases if c["view"] == "ap")},
          **({"whole_spine": {"films": len(whole), "seeds": [WHOLE_SPINE_SEEDS, WHOLE_SPINE_SEEDS + len(whole) - 1],
                              **{k: total(k, whole) for k in ("bodies", "found", "named", "named_wrong", "anchor",
                                                              "fractures_g2", "fractures_found", "age_right",
                                                              "false_findings")},
                              "films_every_body_named_right": sum(c["named"] == c["bodies"] for c in whole)}}
             if whole else {})})


def _member(model, x, predictor):
    import torch

    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255).unsqueeze(1)
        return torch.softmax(model(t).float(), 1).numpy()


def _metrics(y, p) -> dict:
    m = classification_metrics(y, p)
    return {"auc": round(m["auc"], 4), "accuracy": round(m["accuracy"], 4), "sensitivity": round(m["recall"], 4),
            "specificity": round(m["specificity"], 4), "f1": round(m["f1"], 4), "precision": round(m["precision"], 4)}


def _roc_png(y, scores: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in scores.items():
        order = np.argsort(-p)
        tp = np.cumsum(y[order] == 1) / max(1, (y == 1).sum())
        fp = np.cumsum(y[order] == 0) / max(1, (y == 0).sum())
        ax.plot(np.r_[0, fp], np.r_[0, tp], label=f"{name} (AUC {_metrics(y, p)['auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("1 - specificity (old called fresh)")
    ax.set_ylabel("sensitivity (fresh called fresh)")
    ax.set_title("Fresh vs old, held-out synthetic radiographs")
    ax.legend(loc="lower right", fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
