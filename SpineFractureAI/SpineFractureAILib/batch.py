"""`spinefracture batch`: many studies on Dask distributed — an embedded local cluster by default
(`--workers N`, one process per worker) or an existing one (`--scheduler ADDRESS`), same code.

Each worker process keeps one ModelHost, so weights load once per worker, not per case. Each
case is analysed into a private folder and renamed into place when complete: a case folder is
either whole or absent, a re-run skips whole ones, and a case whose worker died is run again by
the scheduler (on the restarted or another worker). A failed case is recorded with its error and
the batch goes on; it is tried again on the next run."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import dask
from dask.distributed import Client, LocalCluster, as_completed

from . import atomic, dicomweb
from .bundles import first_line
from .case_runner import analyze_one, case_names, check_writable
from .cohort import summarise, write_cohort
from .model_host import ModelHost

SKIPPED_NAMES = (".labels.", ".seg.", "_seg", "_msk", "_lab.", "_vb.", ".truth.")  # label files beside images
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
# A worker process restarted after a crash imports torch and the library again before it registers:
# 20-40 s on a busy 2-core machine. The local cluster closes a lost worker's nanny after
# `lost-worker-timeout` (15 s by default), so the replacement would be killed before it took a case.
LOST_WORKER_TIMEOUT = "300s"
_HOSTS: dict = {}  # one per worker process and option set


def collect_inputs(items: list[str], list_file: str | None = None) -> list[str]:
    """Files, DICOM series folders, folders of those (label files skipped), and a text file of paths."""
    items = list(items)
    if list_file:
        items += [line.strip() for line in Path(list_file).read_text(encoding="utf-8").splitlines()
                  if line.strip() and not line.startswith("#")]
    found = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise ValueError(f"{item}: no such file or folder")
        found += _expand(path)
    return found


def _expand(path: Path) -> list[str]:
    if path.is_file() or any(p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in (".json", ".txt")
                             and not p.name.lower().endswith(IMAGE_SUFFIXES) for p in path.iterdir()):
        return [str(path)]  # a file, or a folder of DICOM files
    found = []
    for child in sorted(path.iterdir()):
        if child.name.startswith(".") or any(s in child.name for s in SKIPPED_NAMES):
            continue
        if child.is_dir() or child.name.lower().endswith(IMAGE_SUFFIXES):
            found += _expand(child)
    return found


def _host(options: dict) -> ModelHost:
    key = json.dumps(options, sort_keys=True)
    if key not in _HOSTS:
        import torch  # noqa: PLC0415  (torch is heavy; only worker processes need it)

        torch.set_num_threads(max(1, int(options.get("threads", 1))))  # workers must not fight over the cores
        _HOSTS[key] = ModelHost(options.get("bundles"), options.get("analyses"), options.get("device", "auto"))
    return _HOSTS[key]


def run_case(spec: dict, out_dir: str, options: dict) -> dict:
    """One case, in a worker: analysed into out/.partial/..., then renamed to out/<case>."""
    started = time.perf_counter()
    out = Path(out_dir)
    final = out / spec["case"]
    record = {"case": spec["case"], "input": spec.get("path") or spec.get("study_uid"), "worker_pid": os.getpid(),
              "batch": options.get("batch_id")}
    if (final / "findings.json").exists():
        return _finished_earlier(final, record)
    partial = out / ".partial" / f"{spec['case']}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        host = _host(options)
        path = spec.get("path")
        if "study_uid" in spec:  # DICOMweb: choose the series, fetch it, analyse it
            client = dicomweb.connect(**options["dicomweb"])
            record["series"] = dicomweb.choose_series(client, spec["study_uid"])
            path = partial / "source"
            dicomweb.fetch_series(client, spec["study_uid"], record["series"]["series_uid"], path)
        paths, results = analyze_one(path, partial, host, spec["case"], options.get("modality", "auto"),
                                     progress=lambda stage, fraction: None)
        record.update(status="done", seconds=round(time.perf_counter() - started, 3), weight_loads=host.weight_loads,
                      findings=len(results.findings), warnings=len(results.warnings))
        if options.get("push") and "study_uid" in spec:
            dicom = [paths[k] for k in ("dicom_seg", "dicom_sr") if k in paths]
            if not dicom:
                raise dicomweb.DicomwebError("no DICOM SEG/SR to push: " + "; ".join(results.warnings[-1:]))
            dicomweb.push(client, dicom, spec["study_uid"])
            record["pushed"] = [Path(p).name for p in dicom]
        atomic.write_text(partial / spec["case"] / "case.json", json.dumps(record, indent=1))
        try:
            os.replace(partial / spec["case"], final)  # the case appears whole, or not at all
        except OSError:
            if not (final / "findings.json").exists():
                raise
            return _finished_earlier(final, record)  # another attempt of the same case finished first
        return record
    except Exception as err:  # noqa: BLE001  (one bad case never stops the batch)
        return {**record, "status": "failed", "error": first_line(err)}
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _finished_earlier(final: Path, record: dict) -> dict:
    """A case already written: "done" with its own record where this batch wrote it (a worker killed
    after the rename but before it reported: dask runs the case again elsewhere), else "skipped"."""
    try:
        written = json.loads((final / "case.json").read_text())
    except (OSError, ValueError):
        written = {}
    if record.get("batch") and written.get("batch") == record["batch"] and written.get("status") == "done":
        return written
    return {**record, "status": "skipped"}


def _bar(done: int, total: int, failed: int, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} cases, {failed} failed, "
          f"{time.perf_counter() - started:.0f} s", end="", file=sys.stderr, flush=True)


def run_batch(specs: list[dict], out_dir: str | Path, options: dict, workers: int = 1,
              scheduler: str | None = None) -> dict:
    """Runs every case not yet written; writes batch.json, the cohort table and summary.json."""
    out = Path(out_dir)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / ".partial", ignore_errors=True)  # left by a killed earlier run
    todo = [s for s in specs if not (out / s["case"] / "findings.json").exists()]
    options = {**options, "threads": options.get("threads") or max(1, (os.cpu_count() or 1) // max(1, workers)),
               "batch_id": uuid.uuid4().hex}
    started, log = time.perf_counter(), []
    if todo:
        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      dashboard_address=None)
        with dask.config.set({"distributed.deploy.lost-worker-timeout": LOST_WORKER_TIMEOUT}), \
                Client(scheduler or cluster) as client:
            atomic.write_text(out / "workers.json", json.dumps(client.run(os.getpid), indent=1))
            futures = [client.submit(run_case, s, str(out), options, key=f"case-{s['case']}-{uuid.uuid4().hex[:6]}",
                                     pure=False) for s in todo]
            failed = 0
            for n, future in enumerate(as_completed(futures), start=1):
                try:
                    record = future.result()
                except Exception as err:  # noqa: BLE001  (a case whose workers kept dying)
                    record = {"case": "?", "status": "failed", "error": first_line(err)}
                failed += record["status"] == "failed"
                log.append(record)
                _bar(n, len(todo), failed, started)
            print(file=sys.stderr)
        if cluster is not None:
            cluster.close()
    log += [{"case": s["case"], "status": "skipped"} for s in specs if s not in todo]
    failures = {r["case"]: r["error"] for r in log if r["status"] == "failed"}
    rows, summary = summarise(out, [s["case"] for s in specs], failures)
    summary.update(seconds=round(time.perf_counter() - started, 2), workers=workers if not scheduler else scheduler,
                   weight_loads=_weight_loads(log), skipped=sum(r["status"] == "skipped" for r in log))
    paths = write_cohort(out, rows, summary)
    atomic.write_text(out / "batch.json", json.dumps({"summary": summary, "cases": log}, indent=1))
    return {"summary": summary, "files": {**paths, "log": str(out / "batch.json")}}


def _weight_loads(log: list[dict]) -> int:
    """Bundles loaded over the batch: the highest count each worker process reported."""
    per_worker: dict = {}
    for r in log:
        if "weight_loads" in r:
            per_worker[r["worker_pid"]] = max(per_worker.get(r["worker_pid"], 0), r["weight_loads"])
    return sum(per_worker.values())


def local_specs(inputs: list[str]) -> list[dict]:
    names = case_names(inputs)
    return [{"case": names[str(p)], "path": str(p)} for p in inputs]


def dicomweb_specs(client, studies: list[str] | None) -> list[dict]:
    return [{"case": uid, "study_uid": uid} for uid in dicomweb.study_uids(client, studies)]
