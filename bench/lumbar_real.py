"""Seed 004 on real sagittal lumbar MR: the held-out exams of ../shared/realdata/lumbar-mr (and the two
fastcleverseg copies at 1 mm), scored against their manual masks. Prints JSON.

Bodies (vb2: T11-L5, vb3: L1-L5, vb1: the lowest mask is S1, named upwards from it): found when the
true centroid lies in a reported body's ROI, named right when its level matches; body Dice on the
analysed slices. Discs: the disc masks (ivd), or the gap between consecutive bodies on the
mid-sagittal slice (vb): found and named right when a disc finding of that level holds the centre.
Herniation: share of real discs called herniated (no real herniation labels exist here).
Fractures: fracture findings per exam (a flag = grade >= 2 or a model's call).

    uv run python bench/lumbar_real.py [--bundle PATH] [--exams ivd_11,vb3_01]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from SpineFractureAILib.bundles import builtin_bundles, load_bundle
from SpineFractureAILib.levels import LEVELS
from SpineFractureAILib.lumbar import analysed_mask
from SpineFractureAILib.lumbar_crops import gap_box
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.results import Roi
from SpineFractureAILib.training.lumbar_real import exam_levels, exam_split, list_exams, structures_head_first
from SpineFractureAILib.volume import read_volume

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
FCS = {"fcs_ivd": ("fastcleverseg/fcs_ivd_img.nii.gz", "fastcleverseg/fcs_ivd_lab.nii.gz", "ivd"),
       "fcs_vb2_05": ("fastcleverseg/fcs_vb2_05_img.nii.gz", "fastcleverseg/fcs_vb2_05_vb.nii.gz", "vb2")}


def ras_of(volume, ijk) -> list[float]:
    return volume.ijk_to_ras_points(np.asarray(ijk, float)[None])[0].tolist()


def truth_of(kind: str, labels) -> dict:
    """Named bodies and discs: level, centre (RAS), mask (on the label grid)."""
    lab = labels.voxels
    order = structures_head_first(lab)
    if kind == "vb1":  # its masks run down to S1
        names = LEVELS[LEVELS.index("S1") - len(order) + 1: LEVELS.index("S1") + 1]
    else:
        names = exam_levels(kind + "_00", len(order))
    items = [(n, lab == v) for n, v in zip(names, order)]
    centre = {n: ras_of(labels, np.array(ndimage.center_of_mass(m))[::-1]) for n, m in items}
    if kind == "ivd":
        return {"bodies": [], "discs": [(n, centre[n], m) for n, m in items]}
    bodies = [(n, centre[n], m) for n, m in items if n != "S1"]
    k = int(np.argmax([(lab[s] > 0).sum() for s in range(lab.shape[0])]))  # the mid-sagittal slice
    discs = []
    for (upper, mu), (lower, ml) in zip(items, items[1:]):
        box = gap_box(mu[k], ml[k])
        if box is not None:
            discs.append((f"{upper}-{lower}", ras_of(labels, [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, k]), None))
    return {"bodies": bodies, "discs": discs}


def dice(a: np.ndarray, b: np.ndarray) -> float | None:
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else None


def score_exam(analyzer, name: str, image_path: Path, label_path: Path, kind: str) -> dict:
    image, labels = read_volume(image_path, "mr"), read_volume(label_path, "labelmap")
    started = time.perf_counter()
    results = analyzer.run(image)  # the run state: its bodies as well as what is written
    seconds = time.perf_counter() - started
    truth = truth_of(kind, labels)
    report = results.to_json()
    segment = {s["name"]: s["value"] for s in report["segments"]}
    inside = analysed_mask(image, results.lumbar) if results.lumbar else np.zeros(image.voxels.shape, bool)
    bodies = [f for f in report["vertebrae"] if f.get("level")]
    out = {"exam": name, "set": kind, "seconds": round(seconds, 2), "warnings": results.warnings}
    if truth["bodies"]:
        rows = [r for r in results.bodies]
        hits = []
        for level, centre, _ in truth["bodies"]:
            holder = next((b for b in rows if b.roi.contains(centre, 2.0)), None)
            hits.append({"level": level, "found": holder is not None,
                         "named": holder.level if holder is not None else None})
        out["bodies"] = {"truth": len(hits), "found": sum(h["found"] for h in hits),
                         "named_right": sum(h["named"] == h["level"] for h in hits),
                         "reported": len(bodies), "detail": hits}
        truth_mask = np.logical_or.reduce([m for _, _, m in truth["bodies"]])
        pred = results.labelmap == segment.get("Vertebral body", -1)
        out["body_dice"] = dice(pred & inside, truth_mask & inside)
    discs = [f for f in report["findings"] if f["kind"] == "disc"]
    disc_hits = []
    for level, centre, _ in truth["discs"]:
        match = [d for d in discs if d["level"] == level and Roi(**d["roi"]).contains(centre, 2.0)]
        anywhere = [d for d in discs if Roi(**d["roi"]).contains(centre, 2.0)]
        disc_hits.append({"level": level, "found": bool(anywhere), "named_right": bool(match)})
    out["discs"] = {"truth": len(disc_hits), "found": sum(h["found"] for h in disc_hits),
                    "named_right": sum(h["named_right"] for h in disc_hits), "reported": len(discs),
                    "lumbar_five_named": all(h["named_right"] for h in disc_hits
                                             if h["level"] in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"))
                    and sum(h["level"] in ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1") for h in disc_hits) == 5,
                    "herniated": sum(bool(d.get("herniated")) for d in discs), "detail": disc_hits}
    if kind == "ivd":
        truth_mask = np.logical_or.reduce([m for _, _, m in truth["discs"]])
        pred = results.labelmap == segment.get("Intervertebral disc", -1)
        out["disc_dice"] = dice(pred & inside, truth_mask & inside)
    out["fracture_flags"] = [f"{f['level']} {f['label']} grade {f.get('morphometry', {}).get('genant_grade')}"
                             for f in report["findings"] if f["kind"] == "fracture"]
    return out


def summarise(rows: list[dict]) -> dict:
    def mean(values):
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 4) if values else None

    body_rows = [r for r in rows if "bodies" in r]
    named_sets = [r for r in body_rows]
    volunteer_discs = [r["discs"] for r in rows if r["set"] != "vb1"]
    return {
        "exams": len(rows),
        "bodies_found": f"{sum(r['bodies']['found'] for r in body_rows)}/{sum(r['bodies']['truth'] for r in body_rows)}",
        "bodies_named_right": f"{sum(r['bodies']['named_right'] for r in body_rows)}/"
                              f"{sum(r['bodies']['truth'] for r in body_rows)}",
        "exams_every_body_named_right": f"{sum(r['bodies']['named_right'] == r['bodies']['truth'] for r in named_sets)}/"
                                        f"{len(named_sets)}",
        "body_dice_mean": mean([r.get("body_dice") for r in body_rows]),
        "discs_found": f"{sum(r['discs']['found'] for r in rows)}/{sum(r['discs']['truth'] for r in rows)}",
        "discs_named_right": f"{sum(r['discs']['named_right'] for r in rows)}/{sum(r['discs']['truth'] for r in rows)}",
        "disc_mask_exams_all_five_named": f"{sum(r['discs']['lumbar_five_named'] for r in rows if r['set'] == 'ivd')}/"
                                          f"{sum(r['set'] == 'ivd' for r in rows)}",
        "disc_dice_mean": mean([r.get("disc_dice") for r in rows]),
        "herniated_share_volunteers": round(sum(d["herniated"] for d in volunteer_discs)
                                            / max(1, sum(d["reported"] for d in volunteer_discs)), 4),
        "herniated_share_vb1_patients": round(sum(r["discs"]["herniated"] for r in rows if r["set"] == "vb1")
                                              / max(1, sum(r["discs"]["reported"] for r in rows if r["set"] == "vb1")), 4),
        "fracture_flags_per_exam": {r["exam"]: len(r["fracture_flags"]) for r in rows},
        "exams_with_more_than_one_flag": sum(len(r["fracture_flags"]) > 1 for r in rows),
        "seconds_per_exam_mean": mean([r["seconds"] for r in rows]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="")
    parser.add_argument("--exams", default="", help="comma-separated exam names (default: every held-out exam)")
    parser.add_argument("--realdata", default=str(ROOT))
    args = parser.parse_args(argv)
    root = Path(args.realdata)
    bundle = load_bundle(args.bundle) if args.bundle else next(b for b in builtin_bundles() if b.task == "lumbar-mr")
    analyzer = Analyzer([bundle], "cpu")
    exams = [e for e in list_exams(root / "lumbar-mr") if exam_split(e) == "test"]
    wanted = args.exams.split(",") if args.exams else exams + list(FCS)
    rows = []
    for name in wanted:
        if name in FCS:
            img, lab, kind = FCS[name]
            rows.append(score_exam(analyzer, name, root / img, root / lab, kind))
        else:
            rows.append(score_exam(analyzer, name, root / "lumbar-mr" / f"{name}_img.nii.gz",
                                   root / "lumbar-mr" / f"{name}_lab.nii.gz", name.split("_")[0]))
    print(json.dumps({"bundle": bundle.name, "version": bundle.manifest["version"], "summary": summarise(rows),
                      "exams": rows}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
