"""A Volume written as a DICOM image series (one file per slice, CT or MR Image Storage), with
proper UIDs: phantoms in the form a PACS holds, for the DICOM SEG/SR and PACS round trips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import CTImageStorage, MRImageStorage

from ..atomic import staged
from ..volume import LPS_TO_RAS, Volume
from .dicom_uids import derived_uid
from .phantom_dicom import phantom_dataset

_SOP_CLASS = {"ct": CTImageStorage, "mr": MRImageStorage}


def write_dicom_series(volume: Volume, folder: str | Path, patient_id: str = "PHANTOM", key: str = "") -> list[Path]:
    """Slices k = 0.. as files 00001.dcm...; UIDs derived from `key` (default: the volume's name)
    so the same phantom gets the same UIDs. CT voxels are stored as int16 HU (intercept 0)."""
    modality = volume.modality if volume.modality in _SOP_CLASS else "ct"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = key or volume.name
    study, series, frame = (derived_uid("phantom", key, k) for k in ("study", "series", "frame"))
    lps = LPS_TO_RAS @ volume.ijk_to_ras  # DICOM patient coordinates are LPS
    spacing = volume.spacing
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    voxels = volume.voxels
    if modality == "ct":
        pixels = np.clip(np.rint(voxels), -32768, 32767).astype(np.int16)
        slope, intercept = 1.0, 0.0
    else:  # MR: scale into uint16 and say how
        low, high = float(voxels.min()), float(voxels.max())
        slope = (high - low) / 65535 if high > low else 1.0
        intercept = low
        pixels = np.rint((voxels - low) / slope).astype(np.uint16)
    written = []
    for k in range(voxels.shape[0]):
        ds = phantom_dataset(_SOP_CLASS[modality], derived_uid("phantom", key, "instance", str(k)), study, series,
                             modality.upper(), f"SpineFractureAI phantom {volume.name} (synthetic)", k + 1, patient_id)
        ds.FrameOfReferenceUID = frame
        ds.ManufacturerModelName = "phantom generator"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [round(float(v), 6) for v in lps[:3, :3] @ [0, 0, k] + lps[:3, 3]]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [round(float(spacing[1]), 6), round(float(spacing[0]), 6)]  # row, column spacing
        ds.SliceThickness = round(float(spacing[2]), 6)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[2]
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        if modality == "ct":
            ds.RescaleType, ds.KVP = "HU", "120"
        ds.PixelData = np.ascontiguousarray(pixels[k]).tobytes()
        path = folder / f"{k + 1:05d}.dcm"
        with staged(path) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        written.append(path)
    return written
