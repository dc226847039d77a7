"""Volumes: voxels + IJK->RAS, read from files, DICOM folders or (in Slicer) volume nodes.

Voxels are stored as Slicer's ``arrayFromVolume`` gives them: indexed ``[k, j, i]``.
``ijk_to_ras`` maps a column ``(i, j, k, 1)`` to RAS millimetres, as Slicer's
``GetIJKToRASMatrix``. Files on disk are LPS (ITK); the sign flip lives only here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import staged
from .dicom_series import choose_series
from .file_checks import check_image_file
from .radiograph.frame import default_plane
from .radiograph.io import MIN_SIDE, RadiographError, is_projection_file, read_projection

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


MAX_VOXELS = 1024**3


class VolumeError(ValueError):
    """A volume that cannot be analysed; the message names the problem."""


@dataclass
class Volume:
    voxels: np.ndarray  # [k, j, i]
    ijk_to_ras: np.ndarray  # 4x4
    modality: str = "unknown"  # "ct" | "mr" | "unknown"
    name: str = "volume"
    metadata: dict = field(default_factory=dict)

    @property
    def shape_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.voxels.shape
        return i, j, k

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def ras_to_ijk(self) -> np.ndarray:
        return np.linalg.inv(self.ijk_to_ras)

    def ijk_to_ras_points(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float).reshape(-1, 3)
        return ijk @ self.ijk_to_ras[:3, :3].T + self.ijk_to_ras[:3, 3]

    def corners_ras(self) -> np.ndarray:
        """[8, 3] RAS of the eight corner voxels' centres."""
        i, j, k = self.shape_ijk
        return self.ijk_to_ras_points([[a, b, c] for a in (0, i - 1) for b in (0, j - 1) for c in (0, k - 1)])

    def ras_to_ijk_points(self, ras: np.ndarray) -> np.ndarray:
        m = self.ras_to_ijk
        ras = np.asarray(ras, dtype=float).reshape(-1, 3)
        return ras @ m[:3, :3].T + m[:3, 3]


def affine_from_itk(origin, spacing, direction) -> np.ndarray:
    """IJK->RAS from ITK's LPS origin/spacing/direction."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    m = np.eye(4)
    m[:3, :3] = d * np.asarray(spacing, dtype=float)[None, :]
    m[:3, 3] = origin
    return LPS_TO_RAS @ m


def itk_from_affine(ijk_to_ras: np.ndarray):
    """(origin, spacing, direction) in LPS for ITK from an IJK->RAS matrix."""
    m = LPS_TO_RAS @ ijk_to_ras
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    direction = m[:3, :3] / spacing[None, :]
    return tuple(m[:3, 3]), tuple(spacing), tuple(direction.ravel())


def to_sitk(volume: Volume):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.voxels))
    origin, spacing, direction = itk_from_affine(volume.ijk_to_ras)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def from_sitk(image, name: str = "volume", modality: str = "unknown") -> Volume:
    import SimpleITK as sitk

    if image.GetDimension() == 2 and image.GetNumberOfComponentsPerPixel() == 1:
        spacing = image.GetSpacing()
        if abs(spacing[0] - spacing[1]) > 1e-3:
            raise VolumeError(f"a 2D image with non-square pixels ({spacing[0]} x {spacing[1]} mm): not supported")
        return Volume(sitk.GetArrayFromImage(image)[None].astype(np.float32), default_plane(spacing[0]), "xr", name,
                      {"pixel_spacing_mm": spacing[0], "spacing_source": "the image file's spacing"})
    if image.GetDimension() != 3:
        raise VolumeError(f"a {image.GetDimension()}D image: only 3D volumes can be analysed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(
            f"{image.GetNumberOfComponentsPerPixel()} components per voxel (a 4D or colour image):"
            " only single-component 3D volumes can be analysed")
    voxels = sitk.GetArrayFromImage(image)
    affine = affine_from_itk(image.GetOrigin(), image.GetSpacing(), image.GetDirection())
    return Volume(voxels, affine, modality, name)


def case_name(path: str | os.PathLike) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd", ".dcm", ".png", ".jpg", ".jpeg",
                ".tiff", ".tif"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def read_volume(path: str | os.PathLike, modality: str = "auto", series: str | None = None) -> Volume:
    """Read NIfTI / NRRD / MHA / a DICOM file or series folder into a Volume (series: the Series
    Instance UID to read from a folder holding several; default: dicom_series.RULE)."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    metadata: dict = {}
    if is_projection_file(path):  # a radiograph: PNG/JPEG/TIFF or DICOM CR/DX
        try:
            pixels, spacing, metadata = read_projection(path)
        except RadiographError as err:
            raise VolumeError(str(err)) from None
        metadata.update({"pixel_spacing_mm": spacing})
        return Volume(pixels[None], default_plane(spacing or 1.0), "xr" if modality == "auto" else modality,
                      case_name(path), metadata)
    try:
        if path.is_dir():
            image, metadata = _read_dicom_folder(path, series)
        else:
            check_image_file(path, MAX_VOXELS)  # header size, truncation, NaN: before the voxels are read
            image = sitk.ReadImage(str(path))
            if image.GetDimension() == 3 and image.GetSize()[2] == 1:
                image = image[:, :, 0]
            if image.GetDimension() == 4 and image.GetSize()[3] == 1:
                image = image[:, :, :, 0]
            metadata = _dicom_tags(image)
    except RuntimeError as err:
        raise VolumeError(f"{path}: cannot be read as an image ({str(err).strip().splitlines()[-1]})") from None
    volume = from_sitk(image, name=case_name(path))
    volume.metadata.update(metadata)
    volume.modality = detect_modality(volume) if modality == "auto" else modality
    return volume


# DICOM tags kept with a volume: identity, and what says whether an MR series is fluid-sensitive.
TAGS = {"0008|0060": "Modality", "0020|000d": "StudyInstanceUID", "0020|000e": "SeriesInstanceUID",
        "0008|103e": "SeriesDescription", "0018|0024": "SequenceName", "0018|0022": "ScanOptions"}


def _dicom_tags(image) -> dict:
    return {name: image.GetMetaData(t).strip() for t, name in TAGS.items() if image.HasMetaDataKey(t)}


def _read_dicom_folder(folder: Path, series: str | None = None):
    import SimpleITK as sitk

    files, choice = choose_series(folder, series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOn()
    image = reader.Execute()
    if len(files) == 1:
        image = image[:, :, 0]
    tags = {}
    for tag, name in TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            tags[name] = reader.GetMetaData(0, tag).strip()
    if choice is not None:
        tags["dicom_series"] = choice
    tags["dicom_files"] = list(files)  # slice k's file: the DICOM SEG/SR reference them
    return image, tags


def detect_modality(volume: Volume) -> str:
    """CT or MR from the DICOM tag, else from intensities (CT has air near -1000 HU)."""
    tag = str(volume.metadata.get("Modality", "")).upper()
    if tag in ("CT", "MR"):
        return tag.lower()
    if tag in ("CR", "DX", "MG", "RF", "XA") or volume.voxels.shape[0] == 1:
        return "xr"
    sample = volume.voxels[::4, ::4, ::4].astype(np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return "unknown"
    low, high = np.percentile(sample, [1, 99])
    if low < -150 and sample.max() > 0:  # fat or air in HU; MR magnitudes barely dip below zero
        return "ct"
    return "mr" if high > 0 else "unknown"


def _percentiles(volume: Volume, q) -> np.ndarray:
    sample = volume.voxels[::4, ::4, ::4].astype(np.float32)
    return np.percentile(sample[np.isfinite(sample)], q)


def check_modality(volume: Volume) -> list[str]:
    """The intensities against the modality: a "CT" without Hounsfield units (no fat or air below
    -150, no bone above +150) is refused; an "MR" with them is warned about."""
    if volume.modality == "xr":
        return []
    low, high = _percentiles(volume, [1, 99.9])
    hounsfield = low < -150 and high > 150
    if volume.modality == "ct" and not hounsfield:
        raise VolumeError(f"analysed as CT, but its values are not Hounsfield units (1st percentile {low:.0f}, "
                          f"99.9th {high:.0f}; a CT has fat or air below -150 and bone above +150): refusing "
                          "(pass --modality mr if it is an MR)")
    if volume.modality == "mr" and hounsfield:
        return [f"analysed as MR, but its values look like CT Hounsfield units (1st percentile {low:.0f}): "
                "the MR models' findings are not meaningful on a CT"]
    return []


def validate_volume(volume: Volume, max_voxels: int = MAX_VOXELS) -> None:
    """Refuse what cannot be analysed, with a one-line reason."""
    v = volume.voxels
    if v.ndim != 3:
        raise VolumeError(f"expected a 3D volume, got {v.ndim} dimensions")
    if v.size == 0:
        raise VolumeError("the volume is empty (no voxels)")
    if volume.modality == "xr" and v.shape[0] != 1:
        raise VolumeError(f"analysed as a radiograph (xr), but it has {v.shape[0]} slices: pass --modality ct or mr")
    if volume.modality == "xr" and min(v.shape[1:]) < MIN_SIDE:
        raise VolumeError(f"a {v.shape[2]}x{v.shape[1]} pixel image is too small to show vertebrae "
                          f"(at least {MIN_SIDE} pixels on each side)")
    if volume.modality != "xr" and min(v.shape) < 2 and max(v.shape) > 1:
        raise VolumeError(f"a 2D image (one slice) analysed as {volume.modality}: a radiograph is analysed as "
                          "xr (--modality xr); the CT and MR models need a volume")
    if v.size > max_voxels:
        raise VolumeError(f"the volume is too large ({v.size} voxels; at most {max_voxels})")
    if not np.all(np.isfinite(volume.ijk_to_ras)) or abs(np.linalg.det(volume.ijk_to_ras[:3, :3])) < 1e-9:
        raise VolumeError("the volume's geometry (IJK to RAS) is degenerate or not finite")
    if np.issubdtype(v.dtype, np.floating):
        finite = np.isfinite(v)
        if not finite.all():
            raise VolumeError(f"the volume has {int((~finite).sum())} NaN or infinite voxels")
    if v.max() == v.min():
        raise VolumeError(f"the volume is constant (every voxel is {v.flat[0]}): nothing to analyse")


def slab(volume: Volume, axis: int, start: int, stop: int) -> Volume:
    """Voxels start..stop-1 along voxel axis `axis` (0 = i, 1 = j, 2 = k), placed where they were."""
    index = [slice(None)] * 3
    index[2 - axis] = slice(start, stop)  # voxels are [k, j, i]
    affine = volume.ijk_to_ras.copy()
    affine[:3, 3] += start * affine[:3, axis]
    return Volume(np.ascontiguousarray(volume.voxels[tuple(index)]), affine, volume.modality, volume.name + "_cut")


def cut_below(volume: Volume, z_mm: float) -> Volume:
    """The volume from height z_mm up (RAS S), as a scan whose range stops there (benchmarks and
    tests of scans that end above the sacrum)."""
    axis = int(np.argmax(np.abs(volume.ijk_to_ras[2, :3])))
    z = volume.ijk_to_ras_points(np.outer(np.arange(volume.shape_ijk[axis]), np.eye(3)[axis]))[:, 2]
    keep = np.flatnonzero(z >= z_mm)
    return slab(volume, axis, int(keep.min()), int(keep.max()) + 1)


def write_volume(volume: Volume, path: str | os.PathLike) -> None:
    """Write atomically: a half-written file never replaces a good one."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged(path) as tmp:
        sitk.WriteImage(to_sitk(volume), str(tmp), useCompression=True)
