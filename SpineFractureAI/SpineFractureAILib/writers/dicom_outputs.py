"""DICOM SEG + SR of one case, written into the case's staging folder beside the other files.

Source series whose UIDs are missing or broken (the real example_ct_dicom has empty Study,
Series and SOP Instance UIDs) are never referenced as they are: a copy with new UIDs is written
beside the SEG/SR and they reference that copy, with a warning."""
from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from ..results import Results
from .dicom_seg import DicomReferenceError, build_seg
from .dicom_sr import build_sr
from .dicom_uids import missing_uids, reidentify

SEG_NAME, SR_NAME, COPY_NAME = "segmentation.seg.dcm", "findings.sr.dcm", "source-reidentified"


def write_dicom_outputs(results: Results, files: list[str], folder: Path) -> dict[str, str]:
    """Writes SEG, SR (and the re-identified copy where needed) into `folder`; returns
    {key: name in folder}. What could not be written is said in results.warnings."""
    try:
        sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    except (OSError, pydicom.errors.InvalidDicomError) as err:
        results.warnings.append(f"no DICOM SEG/SR: the source series cannot be read again ({err})")
        return {}
    written = {}
    has_frame = results.modality != "xr"  # a radiograph (DX, CR) has no Frame of Reference to need
    missing = missing_uids(sources, frame_of_reference=has_frame)
    if missing:
        copies = reidentify(files, folder / COPY_NAME, frame_of_reference=has_frame)
        sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in copies]
        written["source_reidentified"] = COPY_NAME
        results.warnings.append(
            f"the DICOM series lacks valid {', '.join(missing)}: the DICOM SEG and SR reference a copy of it with new "
            f"UIDs ({COPY_NAME}/ beside them); store that copy in the PACS with them")
    try:
        seg = build_seg(results, sources)
        seg.save_as(folder / SEG_NAME)
        written["dicom_seg"] = SEG_NAME
        build_sr(results, sources, seg).save_as(folder / SR_NAME)
        written["dicom_sr"] = SR_NAME
    except (DicomReferenceError, ValueError, AttributeError) as err:
        for name in written.values():
            _remove(folder / name)
        results.warnings.append(f"no DICOM SEG/SR: {err}")
        return {}
    return written


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
