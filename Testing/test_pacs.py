"""`spinefracture batch --dicomweb URL --push` against a real Orthanc: the study is read over
DICOMweb, analysed, and its DICOM SEG and SR are stored back under the same study."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom
import requests

from orthanc_server import orthanc
from SpineFractureAILib.cli import main

REPO = Path(__file__).resolve().parents[1]


def _upload(base: str, auth, folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        response = requests.post(f"{base}/instances", data=path.read_bytes(), auth=auth, timeout=30)
        assert response.ok, response.text


def test_batch_reads_a_study_from_orthanc_and_pushes_seg_and_sr_back(tmp_path):
    series = tmp_path / "series"
    assert main(["phantom", str(series), "--dicom", "--levels", "T12-L2", "--fracture", "L1:wedge:3", "--seed", "31",
                 "--spacing", "1.2,1.2,1.5"]) == 0
    source = pydicom.dcmread(next(series.iterdir()))
    with orthanc(tmp_path) as (base, dicomweb, auth):
        _upload(base, auth, series)
        # The server refuses anyone without the password: auth is really in use.
        assert requests.get(f"{dicomweb}/studies", timeout=5).status_code == 401
        out = tmp_path / "out"
        run = subprocess.run([sys.executable, "-m", "SpineFractureAILib.cli", "batch", "--dicomweb", dicomweb,
                              "--user", auth[0], "--password", auth[1], "--push", "--out", str(out)],
                             capture_output=True, text=True, encoding="utf-8", timeout=600, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO / "SpineFractureAI")})
        assert run.returncode == 0, run.stderr[-3000:]
        case = out / source.StudyInstanceUID
        record = json.loads((case / "case.json").read_text())
        assert record["series"]["series_uid"] == source.SeriesInstanceUID
        assert record["pushed"] == ["segmentation.seg.dcm", "findings.sr.dcm"]

        series_in_study = requests.get(f"{dicomweb}/studies/{source.StudyInstanceUID}/series", auth=auth,
                                       timeout=10).json()
        modalities = sorted(s["00080060"]["Value"][0] for s in series_in_study)
        assert modalities == ["CT", "SEG", "SR"]
        seg_series = next(s for s in series_in_study if s["00080060"]["Value"][0] == "SEG")
        seg_uid = seg_series["0020000E"]["Value"][0]
        instances = requests.get(f"{dicomweb}/studies/{source.StudyInstanceUID}/series/{seg_uid}/instances",
                                 auth=auth, timeout=10).json()
        sop = instances[0]["00080018"]["Value"][0]
        # Read the stored SEG back out of Orthanc and check what it references.
        orthanc_id = requests.post(f"{base}/tools/lookup", data=sop, auth=auth, timeout=10).json()[0]["ID"]
        raw = requests.get(f"{base}/instances/{orthanc_id}/file", auth=auth, timeout=30).content
        stored = tmp_path / "stored-seg.dcm"
        stored.write_bytes(raw)
        seg = hd.seg.segread(stored)
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
        assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert "L1 wedge fracture" in [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()]

        # A second run skips the finished study and stores nothing twice.
        again = subprocess.run([sys.executable, "-m", "SpineFractureAILib.cli", "batch", "--dicomweb", dicomweb,
                                "--user", auth[0], "--password", auth[1], "--push", "--out", str(out)],
                               capture_output=True, text=True, encoding="utf-8", timeout=600, cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO / "SpineFractureAI")})
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads((out / "summary.json").read_text())["skipped"] == 1
        assert len(requests.get(f"{dicomweb}/studies/{source.StudyInstanceUID}/series", auth=auth,
                                timeout=10).json()) == 3
