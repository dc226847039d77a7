"""UIDs that are the same on every run, and copies of series whose UIDs are missing.

A SEG or SR derived from the same source series by the same bundles gets the same UIDs, so a
re-run replaces the earlier objects in a PACS instead of adding a second copy. UIDs are
2.25.<decimal UUID> (DICOM PS3.5 B.2) of a name-based UUID (RFC 4122 version 5).
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pydicom

from ..atomic import staged

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/SpineFractureAI/uids")
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "FrameOfReferenceUID")


def derived_uid(*parts: str) -> str:
    """A valid DICOM UID that depends only on the parts."""
    return f"2.25.{uuid.uuid5(_NAMESPACE, '|'.join(parts)).int}"


def missing_uids(datasets, frame_of_reference: bool = True) -> list[str]:
    """The identifying UIDs that some dataset of the series lacks (empty counts as missing), or
    that are not shared across the series where they must be. A projection radiograph (DX, CR) has
    no Frame of Reference to need (`frame_of_reference=False`)."""
    required = REQUIRED if frame_of_reference else tuple(k for k in REQUIRED if k != "FrameOfReferenceUID")
    missing = sorted({k for ds in datasets for k in required if not str(ds.get(k, "") or "").strip()})
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        if key in required and key not in missing and len({str(ds.get(key)) for ds in datasets}) > 1:
            missing.append(key)
    if "SOPInstanceUID" not in missing and len({str(ds.SOPInstanceUID) for ds in datasets}) < len(datasets):
        missing.append("SOPInstanceUID")
    return missing


def reidentify(files: list[str], out_dir: Path, frame_of_reference: bool = True) -> list[Path]:
    """Copy a series with new, valid UIDs (the same on every run: derived from the files' bytes)
    into out_dir; pixel data and every other tag unchanged (a projection gets no Frame of Reference
    it did not have). Returns the copies, in the order given."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    key = digest.hexdigest()
    datasets = [pydicom.dcmread(f) for f in files]
    # A UID the whole series shares is kept (the copy stays in its study); the rest are made.
    study, frame = (_shared(datasets, k) or derived_uid(key, k) for k in ("StudyInstanceUID", "FrameOfReferenceUID"))
    series = derived_uid(key, "SeriesInstanceUID")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for n, (f, ds) in enumerate(zip(files, datasets)):
        sop_class = str(ds.get("SOPClassUID", "") or "") or str(ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if not sop_class:
            raise ValueError(f"{f}: no SOP Class UID in the dataset or its file meta: cannot re-identify")
        ds.SOPClassUID = sop_class
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        if frame_of_reference or "FrameOfReferenceUID" in ds:
            ds.FrameOfReferenceUID = frame
        ds.SOPInstanceUID = derived_uid(key, "instance", str(n))
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = out_dir / f"{n + 1:05d}.dcm"
        with staged(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(path)
    return written


def _shared(datasets, key: str) -> str | None:
    values = {str(ds.get(key, "") or "").strip() for ds in datasets}
    return values.pop() if len(values) == 1 and "" not in values else None
