"""Radiograph files: DICOM CR/DX (modality and VOI LUTs applied, MONOCHROME1 inverted, Pixel Spacing or
Imager Pixel Spacing) and PNG/JPEG/TIFF (spacing unknown). Readers return bone-bright float pixels; the
library's Volume is built by volume.read_volume, which imports this module (so this one imports no Volume)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from ..atomic import staged
from ..writers.dicom_uids import derived_uid
from ..writers.phantom_dicom import phantom_dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PROJECTION_MODALITIES = ("CR", "DX", "RF", "XA", "RG")
MIN_SIDE = 128  # fewer pixels than this across cannot show vertebrae to measure
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


class RadiographError(ValueError):
    """A 2D image that cannot be analysed; one line says why."""


def is_projection_file(path: Path) -> bool:
    """A PNG/JPEG/TIFF, or a DICOM file whose Modality is a projection radiograph's."""
    path = Path(path)
    if path.is_dir():
        return False
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:
        return False
    return str(getattr(ds, "Modality", "")).upper() in PROJECTION_MODALITIES


def read_projection(path: Path) -> tuple[np.ndarray, float | None, dict]:
    """(pixels [rows, cols] float32, bone bright; pixel spacing in mm or None; metadata)."""
    path = Path(path)
    pixels, spacing, meta = (_read_bitmap(path) if path.suffix.lower() in IMAGE_EXTENSIONS else _read_dicom(path))
    rows, cols = pixels.shape
    if min(rows, cols) < MIN_SIDE:
        raise RadiographError(f"{path.name}: {cols}x{rows} pixels is too small to show vertebrae "
                              f"(at least {MIN_SIDE} pixels on each side)")
    if float(pixels.max()) == float(pixels.min()):
        raise RadiographError(f"{path.name}: every pixel is {pixels.flat[0]}: nothing to analyse")
    return pixels.astype(np.float32), spacing, meta


def _read_bitmap(path: Path):
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise RadiographError(f"{path.name}: cannot be read as a PNG, JPEG or TIFF image")
    if pixels.ndim == 3:
        if pixels.shape[2] == 4:
            pixels = pixels[:, :, :3]
        spread = np.abs(pixels.astype(np.int32) - pixels.mean(axis=2, keepdims=True)).mean()
        if spread > 2.0:  # a grey image saved as RGB has equal channels
            raise RadiographError(f"{path.name}: a colour image (mean channel difference {spread:.1f}): "
                                  "a radiograph is greyscale; this looks like a photograph or a screenshot")
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2:
        raise RadiographError(f"{path.name}: a {pixels.ndim}D bitmap: expected a 2D greyscale image")
    return pixels, None, {"format": path.suffix.lower().lstrip("."),
                          "spacing_source": "unknown (a bitmap carries none): 1 mm per pixel assumed"}


def _read_dicom(path: Path):
    try:
        ds = pydicom.dcmread(path)
        raw = ds.pixel_array
    except Exception as err:
        raise RadiographError(f"{path.name}: cannot be read as a DICOM image ({str(err).splitlines()[0]})") from None
    if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
        raise RadiographError(f"{path.name}: a colour DICOM image ({ds.PhotometricInterpretation}): "
                              "a radiograph is greyscale")
    if raw.ndim != 2:
        raise RadiographError(f"{path.name}: {raw.ndim}D pixel data ({getattr(ds, 'NumberOfFrames', 1)} frames): "
                              "expected one projection image")
    pixels = apply_modality_lut(raw, ds)
    voi = "none"
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        pixels = apply_voi_lut(pixels, ds, index=0)
        voi = "VOI LUT" if "VOILUTSequence" in ds else "window"
    pixels = np.asarray(pixels, np.float32)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":  # low values are white: invert so that bone is bright
        pixels = pixels.max() - pixels
    spacing, source = None, "unknown: 1 mm per pixel assumed"
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = getattr(ds, keyword, None)
        if value and len(value) == 2 and float(value[0]) > 0:
            if abs(float(value[0]) - float(value[1])) > 1e-3:
                raise RadiographError(f"{path.name}: non-square pixels ({value[0]} x {value[1]} mm) are not supported")
            spacing, source = float(value[0]), keyword + (" (at the detector: not corrected for magnification)"
                                                          if keyword == "ImagerPixelSpacing" else "")
            break
    meta = {"Modality": str(getattr(ds, "Modality", "")), "photometric": photometric, "voi": voi,
            "spacing_source": source, "ViewPosition": str(getattr(ds, "ViewPosition", "")),
            "StudyInstanceUID": str(getattr(ds, "StudyInstanceUID", "")),
            "SeriesInstanceUID": str(getattr(ds, "SeriesInstanceUID", "")), "dicom_files": [str(path)]}
    return pixels, spacing, meta


def write_png(image: np.ndarray, path: Path) -> None:
    """An 8-bit greyscale PNG (what most exported radiographs are), written atomically."""
    path = Path(path)
    top = float(image.max()) or 1.0
    with staged(path) as tmp:
        if not cv2.imwrite(str(tmp) + ".png", np.round(image.astype(np.float32) / top * 255).astype(np.uint8)):
            raise OSError(f"{path}: could not be written")
        Path(str(tmp) + ".png").replace(tmp)


def write_dx(image: np.ndarray, spacing: float, path: Path, monochrome1: bool = False, key: str = "",
             view: str = "lateral") -> None:
    """A DICOM DX (for presentation), 12 bits stored, bone bright on display; MONOCHROME1 stores the
    inverted values, as many CR/DX systems do."""
    key = key or Path(path).name
    ds = phantom_dataset(DX_STORAGE, derived_uid("phantom", key, "instance"), derived_uid("phantom", key, "study"),
                         derived_uid("phantom", key, "series"), "DX", "SpineFractureAI radiograph phantom (synthetic)")
    ds.PresentationIntentType, ds.ImageType = "FOR PRESENTATION", ["DERIVED", "SECONDARY"]
    ds.ViewPosition = "LL" if view == "lateral" else "AP"
    ds.BodyPartExamined, ds.PatientOrientation = "SPINE", ["P", "F"] if view == "lateral" else ["L", "F"]
    ds.ImagerPixelSpacing = ds.PixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    values = np.clip(np.round(image), 0, 4095).astype(np.uint16)
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    if monochrome1:
        values = (4095 - values).astype(np.uint16)
    ds.SamplesPerPixel, ds.Rows, ds.Columns = 1, values.shape[0], values.shape[1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.WindowCenter, ds.WindowWidth = "2048", "4096"
    ds.PixelData = values.tobytes()
    with staged(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
