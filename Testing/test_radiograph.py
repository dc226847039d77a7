"""Radiographs (seed 002): phantom files in two formats, 2D input everywhere a volume goes, bad 2D input
refused, and the demo bundle on held-out phantoms (fresh and old), the same film as MONOCHROME1 DICOM,
an AP view, and a radiograph rendered from a real CT."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pydicom
import pytest

from SpineFractureAILib.bundles import load_bundle
from SpineFractureAILib.cli import main
from SpineFractureAILib.pipeline import Analyzer
from SpineFractureAILib.radiograph.drr import expose, project, radiograph_volume
from SpineFractureAILib.results import Roi
from SpineFractureAILib.spine.canal import find_canal
from SpineFractureAILib.radiograph.chain import level_steps, name_levels, on_chain
from SpineFractureAILib.radiograph.windows import cut_by_window, merge, windows
from SpineFractureAILib.volume import read_volume

from conftest import REPO

BUNDLE = REPO / "Resources" / "Models" / "radiograph-fracture-demo"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, (captured.err.strip().splitlines() or [""])[-1]


def test_png_and_monochrome1_dicom_phantoms_hold_the_same_film(tmp_path, capsys):
    spec = ["--modality", "xr", "--levels", "T11-L2", "--fracture", "L1:crush:2:old", "--seed", "7"]
    assert _run(capsys, "phantom", tmp_path / "x.png", *spec)[0] == 0
    png_truth = json.loads((tmp_path / "x.truth.json").read_text(encoding="utf-8"))
    assert _run(capsys, "phantom", tmp_path / "x.dcm", *spec, "--spacing", "0.8", "--monochrome1")[0] == 0
    dcm_truth = json.loads((tmp_path / "x.truth.json").read_text(encoding="utf-8"))
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    assert (ds.Modality, ds.PhotometricInterpretation, float(ds.PixelSpacing[0])) == ("DX", "MONOCHROME1", 0.8)
    png, dcm = read_volume(tmp_path / "x.png"), read_volume(tmp_path / "x.dcm")
    assert png.modality == dcm.modality == "xr" and png.voxels.shape[0] == 1
    assert png.metadata["pixel_spacing_mm"] is None and dcm.metadata["pixel_spacing_mm"] == 0.8
    # MONOCHROME1 is inverted back: bone is bright in both (the PNG is the 1.0 mm render, the DICOM 0.8 mm)
    l1_png = next(v for v in png_truth["vertebrae"] if v["level"] == "L1")
    l1_dcm = next(v for v in dcm_truth["vertebrae"] if v["level"] == "L1")
    for volume, row in ((png, l1_png), (dcm, l1_dcm)):
        c1, r1, c2, r2 = np.round(row["box_px"]).astype(int)
        body = volume.voxels[0, r1 + 2:r2 - 2, c1 + 2:c2 - 2].mean()
        assert body > np.percentile(volume.voxels, 60), "the vertebral body is not brighter than most of the film"
        # the truth's RAS centre is the box centre in the file's frame (columns posterior, rows inferior)
        ijk = np.linalg.inv(volume.ijk_to_ras) @ [*row["center_ras"], 1]
        assert c1 <= ijk[0] <= c2 and r1 <= ijk[1] <= r2 and abs(ijk[2]) < 1e-6
    assert l1_png["age"] == l1_dcm["age"] == "old" and l1_png["fracture"] == "crush"


@pytest.mark.parametrize("kind,expected", [("colour", "a colour image"), ("tiny", "too small"),
                                           ("flat", "nothing to analyse")])
def test_bad_2d_images_get_one_line(tmp_path, capsys, kind, expected):
    rng = np.random.default_rng(0)
    image = {"colour": rng.integers(0, 255, (300, 300, 3)).astype(np.uint8),
             "tiny": rng.integers(0, 255, (60, 400)).astype(np.uint8),
             "flat": np.full((300, 300), 90, np.uint8)}[kind]
    cv2.imwrite(str(tmp_path / f"{kind}.png"), image)
    code, _, line = _run(capsys, "analyze", tmp_path / f"{kind}.png", "--out", tmp_path / "out", "--bundle", BUNDLE)
    assert code == 2 and line.startswith("spinefracture: error:") and expected in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_levels_follow_the_lowest_rib_bearing_body_or_stay_uncertain():
    names, how = name_levels([True, True, True, False, False, False])
    assert names == ["T10", "T11", "T12", "L1", "L2", "L3"] and "T12" in how
    assert name_levels([True, True, True])[0] == [None] * 3  # no lumbar body in view: no anchor
    assert name_levels([False, False])[0] == [None] * 2
    assert name_levels([True, False, True, False])[0] == [None] * 4  # alternating: not trusted
    # a body missing between L1 and L3 (a gap twice the usual): counted across, not shifted
    assert name_levels([True, True, False, False], [1, 1, 2])[0] == ["T11", "T12", "L1", "L3"]
    # a whole-spine film: above T4 the class names nothing (short upper ribs, a neck the model never
    # saw), and the body counted to S1 is the sacrum's top
    names, how = name_levels([True, False, True, False, False] + [True] * 11 + [False] * 6)
    assert names == ["C4", "C5", "C6", "C7", "T1"] + [f"T{i}" for i in range(2, 13)] + \
        ["L1", "L2", "L3", "L4", "L5", "S1"] and "counted up" in how
    # ... but a body without ribs within the lower thorax is a misread class: uncertain
    assert name_levels([False, True, True, False, False])[0] == [None] * 5
    assert name_levels([True] * 4 + [False] + [True] * 7 + [False] * 3)[0] == [None] * 15


def test_gaps_are_judged_against_their_neighbours_not_the_whole_spine():
    # cervical gaps of 17 px, lumbar of 35 px: a lumbar gap is no missing body; a 70 px one is
    centres = np.concatenate([np.arange(0, 17 * 8, 17), 17 * 7 + np.cumsum([25, 27, 30, 33, 35, 35, 70, 35])])
    boxes = np.stack([np.full(len(centres), 90.0), centres - 8, np.full(len(centres), 126.0), centres + 8], 1)
    assert level_steps(boxes) == [1] * 13 + [2, 1]


def test_a_tall_film_is_read_in_windows_and_a_body_cut_by_a_window_edge_is_left_to_the_next():
    assert windows((300, 280), 320) == [(0, 300, 0, 280)]  # fits: read whole, as before
    parts = windows((705, 343), 320)
    assert parts[0][0] == 0 and parts[-1][1] == 705 and all(r1 - r0 == 320 for r0, r1, _, _ in parts)
    assert all((c0, c1) == (0, 343) for _, _, c0, c1 in parts)
    for (a0, a1, _, _), (b0, _, _, _) in zip(parts, parts[1:]):
        assert a1 - b0 >= 0.4 * 320 - 1  # more than a lumbar body with its discs overlaps
    boxes = np.array([[100, 300, 140, 318], [100, 250, 140, 280]], float)
    assert cut_by_window(boxes, parts[0], (705, 343)).tolist() == [True, False]
    assert cut_by_window(boxes[:1], (0, 320, 0, 343), (320, 343)).tolist() == [False]  # the film's own edge
    kp = np.zeros((1, 6, 3))
    one = (np.array([[100, 250, 140, 280.0]]), np.array([0]), np.array([0.6]), kp)
    same = (np.array([[101, 251, 141, 281.0]]), np.array([1]), np.array([0.9]), kp)
    below = (np.array([[100, 290, 140, 318.0]]), np.array([0]), np.array([0.5]), kp)
    boxes, classes, scores, _ = merge([one, same, below])
    assert scores.tolist() == [0.9, 0.5] and classes.tolist() == [1, 0]


def test_detections_off_the_spine_chain_are_dropped_and_gaps_counted():
    rows = np.array([0, 35, 70, 105, 175, 210], float)  # one body missing between the 4th and 5th
    boxes = np.stack([100 + 0.2 * rows - 18, rows - 14, 100 + 0.2 * rows + 18, rows + 14], 1)
    gas = np.array([[160, 40, 196, 68]], float)  # something round in front of the spine
    both = np.concatenate([boxes, gas])
    order = np.argsort((both[:, 1] + both[:, 3]) / 2)
    keep = on_chain(both[order])
    assert keep.sum() == 6 and not keep[list(order).index(6)]
    assert level_steps(boxes) == [1, 1, 1, 2, 1]


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer([load_bundle(BUNDLE)], "cpu")


def _l1_finding(out_dir, name):
    found = json.loads((out_dir / name / "findings.json").read_text(encoding="utf-8"))
    return found, [f for f in found["findings"] if f["kind"] == "fracture"]


SEEDS = {61: "fresh", 62: "old", 63: "fresh", 64: "old", 65: "fresh", 66: "old", 67: "fresh", 68: "old"}


def test_l1_wedge_is_found_named_and_dated_on_unseen_films(tmp_path, capsys):
    """The issue's check on eight films no training or threshold saw (seeds 61-68), held to what the
    demo bundle measured on them (docs/results.md): the L1 wedge found where it is and named on 7 of 8,
    every body named T10-L3 on 7 of 8, the age right on 5 of 8 (the classifier's ~78 % accuracy), and
    no fracture reported on an intact body."""
    films = []
    for seed, age in SEEDS.items():
        assert _run(capsys, "phantom", tmp_path / f"x{seed}.png", "--modality", "xr", "--levels", "T10-L3",
                    "--fracture", f"L1:wedge:3:{age}", "--seed", seed)[0] == 0
        films.append(tmp_path / f"x{seed}.png")
    assert _run(capsys, "analyze", *films, "--out", tmp_path / "out", "--bundle", BUNDLE)[0] == 0
    found = named = dated = false = 0
    for seed, age in SEEDS.items():
        truth = json.loads((tmp_path / f"x{seed}.truth.json").read_text(encoding="utf-8"))
        l1 = next(v for v in truth["vertebrae"] if v["level"] == "L1")
        result, fractures = _l1_finding(tmp_path / "out", f"x{seed}")
        hit = [f for f in fractures if Roi(**f["roi"]).contains(l1["center_ras"])]
        false += len(fractures) - len(hit)
        found += bool(hit) and hit[0]["level"] == "L1" and hit[0]["label"] == "wedge"
        dated += bool(hit) and hit[0]["age"] == age
        named += [r["level"] for r in result["vertebrae"]] == ["T10", "T11", "T12", "L1", "L2", "L3"]
    assert (found, named) >= (7, 7) and dated >= 5 and false <= 1, (found, named, dated, false)


def test_monochrome1_dicom_gives_the_same_result_as_the_png(tmp_path, capsys):
    spec = ["--modality", "xr", "--levels", "T10-L3", "--fracture", "L1:wedge:3:fresh", "--seed", "65"]
    assert _run(capsys, "phantom", tmp_path / "film.png", *spec)[0] == 0
    assert _run(capsys, "phantom", tmp_path / "film.dcm", *spec, "--monochrome1")[0] == 0
    for name in ("film.png", "film.dcm"):
        assert _run(capsys, "analyze", tmp_path / name, "--out", tmp_path / name.replace(".", "_"), "--bundle", BUNDLE)[0] == 0
    png = json.loads((tmp_path / "film_png" / "film" / "findings.json").read_text(encoding="utf-8"))
    dcm = json.loads((tmp_path / "film_dcm" / "film" / "findings.json").read_text(encoding="utf-8"))
    assert [(f["level"], f["label"], f["age"]) for f in png["findings"]] == \
        [(f["level"], f["label"], f["age"]) for f in dcm["findings"]] == [("L1", "wedge", "fresh")]
    assert [r["level"] for r in png["vertebrae"]] == [r["level"] for r in dcm["vertebrae"]]
    assert dcm["radiograph"]["pixel_spacing_mm"] == 1.0 and png["radiograph"]["pixel_spacing_mm"] is None


def test_a_whole_spine_film_is_read_in_windows_and_named_from_t12(tmp_path, capsys):
    """A C2-S1 lateral film (about 650 px tall, twice the model's input; seed 790, never used before):
    read in windows, the bodies named from the lowest rib-bearing one, the wedge found, the sacrum's
    top not graded. Before the windows, such a film gave "no vertebral body found"."""
    assert _run(capsys, "phantom", tmp_path / "spine.dcm", "--modality", "xr", "--levels", "C2-S1",
                "--fracture", "T9:wedge:3:old", "--seed", 790)[0] == 0
    assert _run(capsys, "analyze", tmp_path / "spine.dcm", "--out", tmp_path / "out", "--bundle", BUNDLE)[0] == 0
    truth = json.loads((tmp_path / "spine.truth.json").read_text(encoding="utf-8"))
    result, fractures = _l1_finding(tmp_path / "out", "spine")
    assert result["radiograph"]["levels"].startswith("anchored"), result["radiograph"]
    rows = result["vertebrae"]
    named = 0
    for v in truth["vertebrae"]:
        if v["has_body"]:
            near = [r for r in rows if np.linalg.norm(np.subtract(r["center_ras"], v["center_ras"])) < 12]
            named += bool(near) and near[0]["level"] == v["level"]
    assert named >= 19, named  # of 23 (C2-L5); the neck was never in the training films
    t9 = next(v for v in truth["vertebrae"] if v["level"] == "T9")
    assert [(f["level"], f["label"]) for f in fractures] == [("T9", "wedge")]
    assert Roi(**fractures[0]["roi"]).contains(t9["center_ras"])
    assert all(r["status"].startswith("not graded") for r in rows if r["level"] in ("C2", "S1"))


def test_an_ap_view_is_refused_with_a_warning(tmp_path, capsys):
    assert _run(capsys, "phantom", tmp_path / "ap.png", "--modality", "xr", "--view", "ap", "--levels", "T10-L3",
                "--seed", "66")[0] == 0
    assert _run(capsys, "analyze", tmp_path / "ap.png", "--out", tmp_path / "out", "--bundle", BUNDLE)[0] == 0
    found = json.loads((tmp_path / "out" / "ap" / "findings.json").read_text(encoding="utf-8"))
    assert any("AP (frontal)" in w for w in found["warnings"]) and not found["findings"] and not found["vertebrae"]


def test_radiograph_of_a_real_ct_finds_bodies_on_the_spine_only(realdata, analyzer):
    ct = read_volume(realdata / "totalsegmentator" / "example_ct.nii.gz")
    canal = find_canal(ct)
    line, plane = project(ct, "lateral", spacing=1.0, beam_mm=1.5)
    film = radiograph_volume(expose(line, None).astype(np.float32), plane, "real_ct_drr", {"pixel_spacing_mm": 1.0})
    results = analyzer.analyze(film)
    assert len(results.vertebrae) >= 3, results.warnings
    low, high = canal.span_s
    for row in results.vertebrae:  # every body sits just in front of the spinal canal at its height
        y, s = row["center_ras"][1], row["center_ras"][2]
        assert low - 30 <= s <= high + 30, f"a body at S {s:.0f}, far from the CT's spinal canal (pelvis?)"
        centre = canal.centre_at(float(np.clip(s, low, high)))  # the canal's end where it was not followed
        assert 8 <= y - centre[1] <= 45, f"a body {y - centre[1]:.0f} mm in front of the canal: not a vertebral body"


def test_slicer_single_slice_node_gets_rois_and_rows_on_the_film(tmp_path, capsys):
    """A radiograph loaded into Slicer is a one-slice volume node: Analyze puts one ROI per finding on it."""
    import slicer

    from SpineFractureAILib.slicer.logic import SpineFractureLogic
    from SpineFractureAILib.slicer.scene import add_volume_node

    assert _run(capsys, "phantom", tmp_path / "s.dcm", "--modality", "xr", "--levels", "T10-L3",
                "--fracture", "L1:wedge:3:old", "--seed", "67", "--spacing", "0.9")[0] == 0
    truth = json.loads((tmp_path / "s.truth.json").read_text(encoding="utf-8"))
    scene = slicer.vtkMRMLScene()
    node = add_volume_node(scene, read_volume(tmp_path / "s.dcm"))
    outputs, results = SpineFractureLogic(scene, [str(BUNDLE)]).analyze(node)
    assert results.modality == "xr" and len(outputs.rois) == len(results.findings) == 1
    centre = next(v["center_ras"] for v in truth["vertebrae"] if v["level"] == "L1")
    roi = outputs.rois[0]
    bounds = [0.0] * 6
    roi.GetRASBounds(bounds)
    assert all(bounds[2 * d] - 0.5 <= centre[d] <= bounds[2 * d + 1] + 0.5 for d in range(3)), (bounds, centre)
    assert results.findings[0].level == "L1" and results.findings[0].label == "wedge"
    assert results.findings[0].extra["age"] in ("fresh", "old")  # dated (how well: the test above)


def test_train_bundle_and_analyze_a_tiny_radiograph_model(tmp_path, capsys):
    """`train radiograph-fracture` (all three stages, one epoch each) -> `bundle` -> `analyze`: the chain
    works end to end and the bundle holds only safetensors with their sha256."""
    data, run, bundle = tmp_path / "data", tmp_path / "run", tmp_path / "bundle"
    code, out, err = _run(capsys, "train", "radiograph-fracture", "--data", data, "--phantoms", "8", "--val-phantoms",
                          "4", "--out", run, "--epochs", "1", "--imgsz", "128", "--batch", "4", "--member-epochs", "1")
    assert code == 0, err
    assert set(json.loads(out.strip().splitlines()[-1])) == {"pose", "age", "keypoints"}
    assert _run(capsys, "bundle", "radiograph-fracture", run, "--data", data, "--out", bundle)[0] == 0
    manifest = load_bundle(bundle).manifest
    assert {w["file"] for w in manifest["weights"]} == {
        "pose.safetensors", "keypoints.safetensors", "age_efficientnet_b0.safetensors",
        "age_mobilenetv2_100.safetensors", "age_mnasnet_100.safetensors"}
    assert "NOT FOR CLINICAL USE" in manifest["clinical_use"] and manifest["modalities"] == ["xr"]
    assert _run(capsys, "phantom", tmp_path / "f.png", "--modality", "xr", "--seed", "69")[0] == 0
    assert _run(capsys, "analyze", tmp_path / "f.png", "--out", tmp_path / "out", "--bundle", bundle)[0] == 0
    found = json.loads((tmp_path / "out" / "f" / "findings.json").read_text(encoding="utf-8"))
    assert found["modality"] == "xr" and found["radiograph"]["pixel_spacing_mm"] is None
    assert found["bundles"][0]["name"] == "radiograph-fracture-demo"
