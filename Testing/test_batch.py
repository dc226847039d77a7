"""`spinefracture batch` on a real Dask local cluster: 20 phantoms and the real volumes with two
worker processes, one worker killed mid-batch, every case written once, a re-run skips them all."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dask.distributed import Client, LocalCluster

from SpineFractureAILib.batch import collect_inputs, local_specs, run_case
from SpineFractureAILib.phantom import make_phantom, write_phantom

REPO = Path(__file__).resolve().parents[1]
REAL = ["totalsegmentator", "tptbox", "fastcleverseg"]
REAL_IMAGES = {"example_ct", "example_ct_sm", "example_mr_sm", "example_ct_dicom", "sub-ct_label-22_ct",
               "sub-mri_label-6_T2w", "fcs_ivd_img", "fcs_vb2_05_img"}


def _batch(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "SpineFractureAILib.cli", "batch", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                            env={**os.environ, "PYTHONPATH": str(REPO / "SpineFractureAI")}, **kwargs)


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cohort")
    for n in range(20):
        fractures = [f"L1:{('wedge', 'biconcave', 'crush')[n % 3]}:{2 + n % 2}"] if n % 4 == 0 else []
        case = make_phantom("T12-L2", "ct", fractures, [], seed=5000 + n, spacing=(1.5, 1.5, 1.5))
        write_phantom(case, folder / f"phantom{n:02d}.nii.gz")
    return folder


def test_inputs_expand_folders_and_skip_label_files(phantom_folder, realdata):
    found = collect_inputs([str(phantom_folder)] + [str(realdata / r) for r in REAL])
    names = {s["case"] for s in local_specs(found)}
    assert names == {f"phantom{n:02d}" for n in range(20)} | REAL_IMAGES


def test_batch_survives_a_killed_worker_and_a_rerun_skips_everything(phantom_folder, realdata, tmp_path):
    out = tmp_path / "out"
    inputs = [str(phantom_folder)] + [str(realdata / r) for r in REAL]
    run = _batch([*inputs, "--out", str(out), "--workers", "2"])
    # Wait until both workers are up and some cases are written, then kill one worker mid-batch.
    deadline = time.time() + 300
    while time.time() < deadline and (not (out / "workers.json").exists()
                                      or len([p for p in out.iterdir() if (p / "findings.json").exists()]) < 3):
        assert run.poll() is None, run.communicate()[1][-3000:]
        time.sleep(0.5)
    pids = list(json.loads((out / "workers.json").read_text()).values())
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=900)
    assert run.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)["summary"]
    cases = {f"phantom{n:02d}" for n in range(20)} | REAL_IMAGES
    assert summary["cases"] == summary["analysed"] == len(cases) and summary["failed"] == 0
    # Every case once: whole folders, no partial leftovers, each case once in the log.
    for case in cases:
        folder = out / case
        assert {"findings.json", "segmentation.seg.nrrd", "findings.mrk.json", "report.html", "case.json"} <= \
            {p.name for p in folder.iterdir()}, case
        assert json.loads((folder / "findings.json").read_text())["case"] == case
    assert not any((out / ".partial").iterdir()) if (out / ".partial").exists() else True
    log = json.loads((out / "batch.json").read_text())["cases"]
    assert sorted(r["case"] for r in log if r["status"] == "done") == sorted(cases)
    # The killed worker was replaced; each worker process loaded each bundle at most once.
    workers = {r["worker_pid"] for r in log}
    assert workers - set(pids), "no restarted worker took over cases"
    assert summary["weight_loads"] <= 4 * len(workers)

    table = pq.read_table(out / "cohort.parquet").to_pylist()
    assert {r["case"] for r in table} == cases
    fractured = [r for r in table if r["row"] == "vertebra" and r["case"] == "phantom00" and r["level"] == "L1"]
    assert fractured and fractured[0]["genant_grade"] >= 2
    assert (out / "cohort.csv").read_text().splitlines()[0].startswith("case,row,kind,level")
    assert summary["prevalence_grade_2_3"] == pytest.approx(summary["cases_with_grade_2_3_fracture"] / len(cases),
                                                                  abs=1e-4)

    again = _batch([*inputs, "--out", str(out), "--workers", "2"])
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["summary"]["skipped"] == len(cases)


def test_batch_runs_on_an_existing_dask_scheduler(phantom_folder, tmp_path):
    """--scheduler ADDRESS: the same code on a cluster someone else started (here: a LocalCluster)."""
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            worker_pid = set(client.run(os.getpid).values())
        run = _batch([str(phantom_folder / "phantom01.nii.gz"), str(phantom_folder / "phantom02.nii.gz"),
                      "--out", str(out), "--scheduler", cluster.scheduler_address])
        stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)["summary"]
    assert summary["workers"] == cluster.scheduler_address and summary["analysed"] == 2
    log = json.loads((out / "batch.json").read_text())["cases"]
    assert {r["worker_pid"] for r in log} == worker_pid  # the cluster's own worker did the work
    assert summary["weight_loads"] == 3


def test_a_case_written_by_a_worker_killed_before_it_reported_counts_as_done(tmp_path):
    """Dask runs a task again when its worker dies after the case was renamed into place but before
    the result came back: the second run finds the case written. Written by this batch (case.json's
    batch id) it is "done" with the first run's record, not "skipped" (which would say it was there
    before the batch: seen in CI under load); a case from an earlier batch stays "skipped"."""
    folder = tmp_path / "case1"
    folder.mkdir()
    (folder / "findings.json").write_text("{}")
    first = {"case": "case1", "worker_pid": 4242, "batch": "b-now", "status": "done", "seconds": 3.0}
    (folder / "case.json").write_text(json.dumps(first))
    again = run_case({"case": "case1", "path": "unused"}, str(tmp_path), {"batch_id": "b-now"})
    assert again == first
    earlier = run_case({"case": "case1", "path": "unused"}, str(tmp_path), {"batch_id": "b-later"})
    assert earlier["status"] == "skipped" and earlier["worker_pid"] == os.getpid()
