"""The CT path on anatomy nobody here tuned to: every real CT in ../shared/realdata (bodies found and
named against their labels, rows and fractures on non-vertebral structures, the spinal canal) and
whole-spine randomised phantoms (bodies named right, false fractures). Prints JSON.

    uv run python bench/real_ct.py [--phantoms 10] [--seed-base 610000] [--randomised] [--no-real]
                                   [--all-fractured] [--short-ranges] [--ranges C1-C7,C6-L1] [--windows]
                                   [--no-anchor] [--analyses fractures] [--bundle DIR]...

--short-ranges: randomised phantoms of a part of the spine (T11-S1, T6-L2, ...), as most real CTs
are: the count's anchors (sacrum, last rib) are at the scan's edge or absent. --ranges replaces
that list (cervical, chest: the anchors are C2 and the first and last ribs there).
--windows: randomised whole-spine phantoms cut to a random 100-320 mm window along the body, as a
real scan is: the spine runs on beyond both edges and the end bodies are cut by the field of view
(names are scored on bodies whose centre lies 12 mm or more inside; a fracture on a cut one is false).
--no-anchor: the same windows cut inside C3-C7, T3-T11 or L1-L5, where no anchor is in view: the
level classifier and the bodies' sizes name them.
The real part also cuts example_ct from below at five heights between L5's upper part and L3's
centre ("example_ct cut from below"): no sacrum, and mostly no crest, in view; each body 12 mm or
more inside should keep the name the whole scan (sacrum anchor) gives it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from SpineFractureAILib.bundles import bundles_for, parse_analyses
from SpineFractureAILib.levels import TOTALSEG_NAME, VERSE_NAME, level_index, level_range
from SpineFractureAILib.phantom import ORIENTATIONS, make_phantom
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.results import Roi
from SpineFractureAILib.volume import Volume, cut_below, from_sitk, read_volume, slab

GENANT_LEVELS = [f"T{i}" for i in range(4, 13)] + [f"L{i}" for i in range(1, 5)]
# Slice thickness bands (mm) for the found-by-grade figures: thick slices flatten shallow deformities.
SLICE_BANDS = (("1.0-1.8", 1.8), ("1.8-2.4", 2.4), ("2.4-3.0", np.inf))
SHORT_RANGES = ("T11-S1", "T12-S1", "T10-L5", "L1-S1", "T9-L4", "T6-L2")
ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
WINDOW_MM, INSIDE_MM = (100.0, 320.0), 12.0  # windows' lengths; a scored body's centre inside the edges
# Stretches of the spine holding no anchor the count could start from (C2, the first and last ribs,
# the sacrum, the iliac crests): a window inside one is named by the level classifier and the sizes.
NO_ANCHOR_STRETCHES = (("C3", "C7"), ("T3", "T11"), ("L1", "L5"))


def labelled_bodies(labels: np.ndarray, ijk_to_ras, names: dict, first_slice: int = 0) -> dict:
    """level -> (centre RAS, mask) for each vertebra label; first_slice maps a crop by voxel index."""
    out = {}
    for value, level in names.items():
        kk, jj, ii = np.nonzero(labels == value)
        if len(kk):
            ijk = np.array([[ii.mean(), jj.mean(), kk.mean() + first_slice, 1.0]])
            out[level] = (ijk @ ijk_to_ras.T)[0, :3]
    return out


def mostly_out_of_view(labels: np.ndarray, names: dict, share: float = 0.25) -> list[str]:
    """Labelled vertebrae with under `share` of the median labelled vertebra's voxels: at the scan's
    edge only a piece is in view (example_ct's T11: 70 voxels of its spinous process and lamina at the
    top three slices, no body), which no reader names; scored apart from the bodies in view."""
    counts = {level: int((labels == value).sum()) for value, level in names.items()}
    middle = float(np.median([c for c in counts.values() if c]))
    return [level for level, c in counts.items() if 0 < c < share * middle]


def score(results, truth: dict, vertebra_mask=None, volume=None, out_of_view=()) -> dict:
    """out_of_view: labelled levels with no body in the scan (not scored as missed; rows on them are
    reported)."""
    cut = {lv: truth[lv] for lv in out_of_view if lv in truth}
    truth = {lv: c for lv, c in truth.items() if lv not in cut}
    rows = [r for r in results.vertebrae if r.get("roi")]
    found = {lv: [r for r in rows if Roi(**r["roi"]).contains(c, 2.0)] for lv, c in truth.items()}
    off = off_mm = None
    if vertebra_mask is not None:  # rows whose centre is on no labelled vertebra, and how far off
        off, off_mm = 0, []
        away = ndimage.distance_transform_edt(~vertebra_mask, sampling=volume.spacing[::-1])
        for r in rows:
            i, j, k = np.rint(volume.ras_to_ijk_points(np.array([r["roi"]["center_ras"]]))[0]).astype(int)
            inside = all(0 <= a < n for a, n in zip((k, j, i), vertebra_mask.shape))
            if not (inside and vertebra_mask[k, j, i]):
                off += 1
                off_mm.append(round(float(away[k, j, i]), 1) if inside else None)
    return {"labelled": len(truth), "labelled_mostly_out_of_view": sorted(cut),
            "rows_on_those": sum(Roi(**r["roi"]).contains(c, 2.0) for r in rows for c in cut.values()),
            "found": sum(bool(v) for v in found.values()),
            "named_right": sum(any(r["level"] == lv for r in v) for lv, v in found.items()),
            "rows": len(rows), "rows_off_labelled_vertebrae": off,
            "their_distance_mm": off_mm,
            "fractures": [f"{f.level} {f.label}" for f in results.findings if f.kind == "fracture"],
            "spine_prior": results.spine_prior, "warnings": len(results.warnings)}


def graded_in_table(results, centre) -> bool:
    """A vertebra row holding this centre reads Genant grade 1 or more."""
    return any(r.get("roi") and (r.get("genant_grade") or 0) >= 1 and Roi(**r["roi"]).contains(centre, 2.0)
               for r in results.vertebrae)


def real_cases(analyzer) -> dict:
    out = {}
    ct = read_volume(ROOT / "totalsegmentator" / "example_ct.nii.gz")
    seg = read_volume(ROOT / "totalsegmentator" / "example_seg.nii.gz", "labelmap").voxels
    names = {v: TOTALSEG_NAME[v] for v in (30, 31, 32, 33)}  # L2, L1, T12, T11
    truth = labelled_bodies(seg, ct.ijk_to_ras, names, first_slice=82)
    partial = mostly_out_of_view(seg, names)
    for name, volume in (("example_ct", ct),
                         ("example_ct LPS", from_sitk(sitk.DICOMOrient(
                             sitk.ReadImage(str(ROOT / "totalsegmentator" / "example_ct.nii.gz")), "LPS"), "lps"))):
        volume.modality = "ct"
        started = time.perf_counter()
        results = analyzer.analyze(volume)
        out[name] = {**score(results, truth, out_of_view=partial), "seconds": round(time.perf_counter() - started, 2)}
    tp = read_volume(ROOT / "tptbox" / "sub-ct_label-22_ct.nii.gz")
    vert = read_volume(next((ROOT / "tptbox").glob("*seg-vert*msk.nii.gz")), "labelmap").voxels
    truth = labelled_bodies(vert, tp.ijk_to_ras, {v: VERSE_NAME[v] for v in (21, 22, 23)})
    out["tptbox"] = score(analyzer.analyze(tp), truth, vert > 0, tp,
                          mostly_out_of_view(vert, {v: VERSE_NAME[v] for v in (21, 22, 23)}))
    dicom = read_volume(ROOT / "totalsegmentator" / "example_ct_dicom")
    out["example_ct_dicom"] = score(analyzer.analyze(dicom), {})
    out["example_ct cut from below"] = cut_from_below(analyzer, ct)
    return out


def cut_from_below(analyzer, ct: Volume) -> dict:
    """Per crop: its lower edge, the anchor, and the bodies 12 mm or more inside named as the whole
    scan names them (a row is the same body when its centre lies within 8 mm of the whole scan's)."""
    whole = {r["level"]: np.array(r["roi"]["center_ras"]) for r in analyzer.analyze(ct).vertebrae if r.get("roi")}
    low, l4, l3 = whole["L5"][2], whole["L4"][2], whole["L3"][2]
    top = ct.corners_ras()[:, 2].max()
    crops, right, scored = [], 0, 0
    for edge in np.linspace(low + 0.35 * (l4 - low), l3, 5):
        results = analyzer.analyze(cut_below(ct, float(edge)))
        rows = [r for r in results.vertebrae if r.get("roi")]
        named = []
        for row in rows:
            centre = np.array(row["roi"]["center_ras"])
            level = min(whole, key=lambda lv: np.linalg.norm(whole[lv] - centre))
            if np.linalg.norm(whole[level] - centre) <= 8.0 and min(centre[2] - edge, top - centre[2]) >= INSIDE_MM:
                named.append(f"{level}:{row['level']}")
                right, scored = right + (row["level"] == level), scored + 1
        crops.append({"edge_mm_above_L5_centre": round(float(edge - low), 1),
                      "anchor": results.spine_prior.get("level_anchor"), "truth:named": named})
    return {"named_right": f"{right}/{scored}", "crops": crops}


def cut_window(volume: Volume, truth: dict, rng, stretch: tuple[str, str] | None = None) -> tuple[Volume, dict, set]:
    """The volume cut to a random window along the voxel axis nearest head-feet, as a scan's range;
    the truth kept to the vertebrae whose centre lies in it, and the levels far enough inside to be
    scored (INSIDE_MM from both edges). stretch: both edges between these two levels' centres (a
    stretch holding no anchor: no C2, first or last rib, sacrum or crest in view)."""
    axis = int(np.argmax(np.abs(volume.ijk_to_ras[2, :3])))  # i, j or k
    step = float(np.linalg.norm(volume.ijk_to_ras[:3, axis]))
    n = volume.shape_ijk[axis]
    lo, hi = 0, n
    if stretch is not None:
        ends = [volume.ras_to_ijk_points(np.array([v["center_ras"]]))[0][axis]
                for v in truth["vertebrae"] if v["level"] in stretch]
        lo, hi = int(np.ceil(min(ends))), int(max(ends)) + 1
    length = int(min(hi - lo, rng.uniform(*WINDOW_MM) / step))
    start = int(rng.integers(lo, hi - length + 1))
    cut = slab(volume, axis, start, start + length)
    kept, scored = [], set()
    for v in truth["vertebrae"]:
        at = cut.ras_to_ijk_points(np.array([v["center_ras"]]))[0][axis]
        if -0.5 <= at <= length - 0.5:
            kept.append(v)
            if v["has_body"] and min(at, length - 1 - at) * step >= INSIDE_MM:
                scored.add(v["level"])
    return cut, {**truth, "vertebrae": kept}, scored


def slice_band(thickness: float) -> str:
    return next(name for name, top in SLICE_BANDS if thickness <= top)


def phantoms(analyzer, n: int, base: int, randomised: bool = False, all_fractured: bool = False,
             short_ranges: bool = False, ranges=SHORT_RANGES, windows: bool = False, no_anchor: bool = False) -> dict:
    """randomised: the surroundings of a real CT (trunk, table, arms, vessels, bowel, pelvis, a random
    kernel and noise) and a random stored orientation, from the same seeds. all_fractured: two random
    fractures in every phantom (default: in every other one, the rest without any). short_ranges: each
    phantom one of SHORT_RANGES (drawn from the seed), randomised. no_anchor: windows cut inside one
    of NO_ANCHOR_STRETCHES (drawn from the seed)."""
    rng = np.random.default_rng(base)
    rows, graded, typed = [], {1: [0, 0], 2: [0, 0], 3: [0, 0]}, [0, 0]
    # The table's measured grade, apart from the findings (grade 1 is measured and shown, not a
    # finding: morphometry_min_grade 2): fractured bodies graded >= 1, intact bodies graded >= 1.
    in_table, intact_graded = {1: [0, 0], 2: [0, 0], 3: [0, 0]}, [0, 0]
    by_band = {name: {1: [0, 0], 2: [0, 0], 3: [0, 0]} for name, _ in SLICE_BANDS}
    for seed in range(base, base + n):
        fractures = []
        span = str(np.random.default_rng([seed, 9]).choice(ranges)) if short_ranges else "C1-S1"
        genant = [lv for lv in GENANT_LEVELS if lv in level_range(span)]
        if (seed % 2 or all_fractured) and len(genant) >= 3:  # two random fractures, apart, in T4-L4
            levels = rng.choice(genant, size=2, replace=False)
            while abs(genant.index(levels[0]) - genant.index(levels[1])) < 2:
                levels = rng.choice(genant, size=2, replace=False)
            fractures = [f"{lv}:{rng.choice(['wedge', 'biconcave', 'crush'])}:{int(rng.integers(1, 4))}" for lv in levels]
        thickness = float(rng.uniform(1.0, 3.0))
        orientation = str(np.random.default_rng([seed, 5]).choice(ORIENTATIONS)) if randomised else "axial"
        case = make_phantom(span, "ct", fractures, [], seed=seed, spacing=(1.0, 1.0, thickness),
                            orientation=orientation, surroundings=randomised)
        image, case_truth = case.image, case.truth
        scored = {v["level"] for v in case_truth["vertebrae"] if v["has_body"]}
        if windows or no_anchor:
            stretch = NO_ANCHOR_STRETCHES[seed % len(NO_ANCHOR_STRETCHES)] if no_anchor else None
            image, case_truth, scored = cut_window(image, case_truth, np.random.default_rng([seed, 7]), stretch)
        results = analyzer.analyze(image)
        truth = {v["level"]: v["center_ras"] for v in case_truth["vertebrae"] if v["level"] in scored}
        row = score(results, truth)
        true_fx = {v["level"]: v for v in case_truth["vertebrae"] if v["fracture"]}
        for level, v in true_fx.items():
            if level not in scored:  # cut by the window: neither counted found nor missed
                continue
            hits = [f for f in results.findings if f.kind == "fracture" and f.roi.contains(v["center_ras"], 2.0)]
            for tally in (graded, by_band[slice_band(thickness)]):
                tally[v["genant_grade"]][0] += bool(hits)
                tally[v["genant_grade"]][1] += 1
            if hits:
                typed[0] += hits[0].label == v["fracture"]
                typed[1] += 1
            in_table[v["genant_grade"]][0] += graded_in_table(results, v["center_ras"])
            in_table[v["genant_grade"]][1] += 1
        for level in scored - set(true_fx):
            intact_graded[0] += graded_in_table(results, truth[level])
            intact_graded[1] += 1
        row["false_fractures"] = sum(1 for f in results.findings if f.kind == "fracture" and not any(
            f.roi.contains(v["center_ras"], 2.0) for v in true_fx.values()))
        if windows or no_anchor:
            row["window"] = [min(scored, key=level_index, default=None), max(scored, key=level_index, default=None)]
            row["window_mm"] = round(float(np.ptp(image.ijk_to_ras_points(np.array(
                [[0, 0, 0], np.subtract(image.shape_ijk, 1)]))[:, 2])), 1)
        rows.append({"seed": seed, **({"levels": span} if short_ranges else {}), "true_fractures": fractures, "slice_mm": round(thickness, 2),
                     **({"orientation": orientation, "surroundings": case.truth["surroundings"]} if randomised else {}),
                     **row})
    return {"cases": rows,
            "bodies_named_right": f"{sum(r['named_right'] for r in rows)}/{sum(r['labelled'] for r in rows)}",
            "false_fractures": sum(r["false_fractures"] for r in rows),
            "fractures_found_by_grade": {g: f"{a}/{b}" for g, (a, b) in graded.items()},
            "found_by_slice_mm_and_grade": {band: {g: f"{a}/{b}" for g, (a, b) in tally.items()}
                                            for band, tally in by_band.items()},
            "type_right_when_found": f"{typed[0]}/{typed[1]}",
            "fractured_graded_1_plus_in_table_by_grade": {g: f"{a}/{b}" for g, (a, b) in in_table.items()},
            "intact_graded_1_plus_in_table": f"{intact_graded[0]}/{intact_graded[1]}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=10)
    parser.add_argument("--seed-base", type=int, default=610000)
    parser.add_argument("--randomised", action="store_true",
                        help="phantoms with a real CT's surroundings and a random stored orientation")
    parser.add_argument("--no-real", action="store_true", help="phantoms only")
    parser.add_argument("--all-fractured", action="store_true", help="two random fractures in every phantom")
    parser.add_argument("--short-ranges", action="store_true",
                        help="randomised phantoms of part of the spine (T11-S1, T6-L2, ...)")
    parser.add_argument("--ranges", help="with --short-ranges: the ranges to draw from, comma-separated")
    parser.add_argument("--windows", action="store_true",
                        help="randomised whole-spine phantoms cut to a random window along the body")
    parser.add_argument("--no-anchor", action="store_true",
                        help="randomised whole-spine phantoms cut inside C3-C7, T3-T11 or L1-L5 (no anchor in view)")
    parser.add_argument("--analyses", help="as `analyze --analyses` (default: what `analyze` runs on a CT)")
    parser.add_argument("--bundle", action="append", help="as `analyze --bundle` (repeat; default: the built-ins)")
    args = parser.parse_args(argv)
    analyzer = Analyzer(bundles_for("ct", args.bundle, parse_analyses(args.analyses) if args.analyses else None), "cpu")
    report = {} if args.no_real else {"real": real_cases(analyzer)}
    if args.phantoms:
        key = "no_anchor_window_phantoms" if args.no_anchor else "window_randomised_phantoms" if args.windows else \
            "short_range_randomised_phantoms" \
            if args.short_ranges else \
            "whole_spine_randomised_phantoms" if args.randomised else "whole_spine_phantoms"
        report[key] = phantoms(analyzer, args.phantoms, args.seed_base,
                               args.randomised or args.short_ranges or args.windows or args.no_anchor,
                               args.all_fractured, args.short_ranges,
                               tuple(args.ranges.split(",")) if args.ranges else SHORT_RANGES, args.windows,
                               args.no_anchor)
    print(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
