"""The spine prior on real CT: the spinal canal found without a model lies on TotalSegmentator's
spinal cord label, whatever the file's stored orientation, and objects off the canal chain (spinous
processes, pelvis, arms, table) never become bodies or fractures."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from SpineFractureAILib.cli import main
from SpineFractureAILib.spine.canal import CanalChain, find_canal
from SpineFractureAILib.spine.prior import off_chain
from SpineFractureAILib.volume import from_sitk, read_volume

CROP_FIRST_SLICE = 82  # example_seg is slices 82-111 of example_ct, with the full CT's origin


def _cord_centres(realdata, ct):
    seg = read_volume(realdata / "totalsegmentator" / "example_seg.nii.gz", "labelmap").voxels
    centres = []
    for k in range(seg.shape[0]):
        jj, ii = np.nonzero(seg[k] == 79)
        if len(ii):
            centres.append(ct.ijk_to_ras_points(np.array([[ii.mean(), jj.mean(), k + CROP_FIRST_SLICE]]))[0])
    return np.array(centres)


def test_canal_lies_on_the_spinal_cord_in_any_stored_orientation(realdata):
    path = realdata / "totalsegmentator" / "example_ct.nii.gz"
    ct = read_volume(path)
    cord = _cord_centres(realdata, ct)
    assert len(cord) >= 20
    chains = [find_canal(ct), find_canal(from_sitk(sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")))]
    for chain in chains:
        assert chain is not None and len(chain) >= 20
        lo, hi = chain.span_s
        covered = [c for c in cord if lo <= c[2] <= hi]
        assert len(covered) >= 10  # the chain runs through the labelled T11-L2 stretch
        errors = [np.linalg.norm(chain.centre_at(c[2])[:2] - c[:2]) for c in covered]
        assert max(errors) < 7.5 and np.mean(errors) < 4.0, errors  # inside the canal (about 15 mm across)
    np.testing.assert_allclose(chains[0].centres_ras, chains[1].centres_ras, atol=1.6)


def test_off_chain_rules():
    chain = CanalChain(np.array([[0.0, -40.0, s] for s in np.arange(0, 100, 4.0)]), 4.0)
    centres = [[0, -15, 50],  # 25 mm in front of the canal: a body
               [0, -70, 50],  # behind it: a spinous process
               [90, -15, 50],  # far to the side: pelvis or arm
               [0, -15, -120],  # below the chain, in line: cannot say more than "in line"
               [120, -15, -120]]  # below the chain, far to the side: not this spine
    assert off_chain(centres, chain) == [False, True, True, False, True]
    assert off_chain(centres, None) == [None] * 5


def test_no_rows_or_fractures_off_the_spine_on_real_ct(tmp_path, realdata, capsys):
    for src in (realdata / "totalsegmentator" / "example_ct_dicom", realdata / "tptbox" / "sub-ct_label-22_ct.nii.gz"):
        assert main(["analyze", str(src), "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    for case in ("example_ct_dicom", "sub-ct_label-22_ct"):
        report = json.loads((tmp_path / case / "findings.json").read_text())
        assert report["spine_prior"]["spinal_canal"] == "found"
        volume = read_volume(realdata / ("totalsegmentator/example_ct_dicom" if case == "example_ct_dicom"
                                         else "tptbox/sub-ct_label-22_ct.nii.gz"))
        chain = find_canal(volume)
        centres = [r["roi"]["center_ras"] for r in report["vertebrae"] if r.get("roi")]
        assert not any(off_chain(centres, chain)), centres
        assert not [f for f in report["findings"] if f["kind"] == "fracture"]  # no fracture in either scan


def test_a_ct_without_a_spine_names_nothing(tmp_path, capsys):
    from SpineFractureAILib.volume import Volume, write_volume

    rng = np.random.default_rng(0)
    noise = Volume((rng.random((100, 160, 160)) * 2500 - 1000).astype(np.int16), np.diag([1.0, 1.0, 2.0, 1.0]), "ct")
    write_volume(noise, tmp_path / "noise.nii.gz")
    assert main(["analyze", str(tmp_path / "noise.nii.gz"), "--out", str(tmp_path / "out")]) == 0
    assert "no spine found" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "noise" / "findings.json").read_text())
    assert report["vertebrae"] == [] and report["findings"] == [] and report["spine_prior"]["spinal_canal"] == "not found"
    assert any(w.startswith("no spine found") for w in report["warnings"])
    assert "no spine found" in (tmp_path / "out" / "noise" / "report.html").read_text(encoding="utf-8")
