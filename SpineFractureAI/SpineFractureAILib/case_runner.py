"""Analyse one case (read, run the host's models, write its folder) and a list of them: what
`analyze`, `demo` and every batch worker do."""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from . import atomic
from .bundles import analyses_not_run
from .dicom_series import choose_series
from .files import write_case
from .model_host import ModelHost
from .results import Results
from .volume import case_name, read_volume


def _progress(case: str):
    def report(stage: str, fraction: float) -> None:
        print(f"[{case}] {stage} {fraction:4.0%}", file=sys.stderr, flush=True)
    return report


def case_names(inputs) -> dict[str, str]:
    """One case folder per input: the file stem, plus a short hash of the absolute path where two
    stems clash (the same on every run, so a re-run finds its folders)."""
    stems = {str(p): case_name(p) for p in inputs}
    clash = {s for s in stems.values() if list(stems.values()).count(s) > 1}
    return {p: (f"{s}-{hashlib.sha1(str(Path(p).resolve()).encode()).hexdigest()[:8]}" if s in clash else s)
            for p, s in stems.items()}


def check_writable(out_dir) -> None:
    """--out (or the nearest folder above it that exists) takes a file: checked before any work,
    creating nothing that stays."""
    out = Path(out_dir).absolute()
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write there ({err.strerror or err})") from None


def analyze_one(path, out_dir, host, name: str, modality="auto", mr_sequence: str | None = None,
                series: str | None = None, progress=None, reference_series: str | None = None) -> tuple[dict, Results]:
    """Read, analyse and write one case with the host's models; returns (paths, results).
    reference_series: for a non-DICOM input, the DICOM series folder it was made from (same grid),
    so a DICOM SEG and SR can reference it."""
    started = time.perf_counter()
    volume = read_volume(path, modality, series)
    volume.name = name
    if mr_sequence:
        volume.metadata["mr_sequence"] = mr_sequence
    if reference_series and not volume.metadata.get("dicom_files"):
        volume.metadata["dicom_files"] = choose_series(Path(reference_series))[0]
    load_s = time.perf_counter() - started
    analyzer = host.analyzer(volume.modality, str(path))
    results = analyzer.analyze(volume, progress or _progress(volume.name))
    results.warnings += analyses_not_run(host.analyses, analyzer.bundles, volume.modality)
    results.timing_s["load"] = load_s
    started = time.perf_counter()
    paths = write_case(results, out_dir, volume)
    results.timing_s["write"] = time.perf_counter() - started
    atomic.write_text(paths["findings"], json.dumps(results.to_json(), indent=1))  # with the write time
    return paths, results


def analyze_paths(inputs, out_dir, modality="auto", bundle_paths=None, device="auto", analyses=None,
                  mr_sequence: str | None = None, series: str | None = None,
                  reference_series: str | None = None) -> list[dict]:
    """Analyse each input (file or DICOM folder) and write its case folder."""
    check_writable(out_dir)  # before any work
    host = ModelHost(bundle_paths, analyses, device)
    written = []
    names = case_names(inputs)
    for path in inputs:
        paths, results = analyze_one(path, out_dir, host, names[str(path)], modality, mr_sequence, series,
                                     reference_series=reference_series)
        for f in results.findings:
            print(f"[{results.case}] {f.kind}: {f.label} {f.confidence:.2f} at RAS {f.roi.center_ras}",
                  file=sys.stderr)
        for warning in results.warnings:  # a run that could not analyse something must say so
            print(f"spinefracture: warning: [{results.case}] {warning}", file=sys.stderr)
        written.append(paths)
    return written
