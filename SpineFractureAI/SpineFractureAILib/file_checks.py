"""Checks on an image file before its voxels are read: the size its header declares, a compressed
stream that ends early or fails its CRC, and NaN / infinite voxels in NIfTI (whose reader in ITK
turns them into 0, so they could not be found afterwards)."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

CHUNK = 1 << 22
NIFTI_FLOATS = {16: np.float32, 64: np.float64}


class FileCheckError(ValueError):
    """The file cannot be analysed; the message says why in one line."""


def declared_voxels(path: Path) -> int:
    """Voxels x components per the header alone (SimpleITK reads no voxel data for this)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise FileCheckError(f"{path}: cannot be read as an image ({str(err).strip().splitlines()[-1]})") from None
    return int(np.prod(reader.GetSize(), dtype=np.int64)) * int(reader.GetNumberOfComponents())


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _nifti1_layout(header: bytes):
    """(numpy dtype of the voxels or None, byte offset of the data, voxel count) of a NIfTI-1 header."""
    for order in "<>":
        if struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            datatype = struct.unpack(order + "h", header[70:72])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            count = int(np.prod([max(d, 1) for d in dims[1:dims[0] + 1]], dtype=np.int64))
            dtype = NIFTI_FLOATS.get(datatype)
            return (np.dtype(dtype).newbyteorder(order) if dtype else None), offset, count
    return None


def scan_stream(path: Path) -> int:
    """Read the whole (decompressed) file once: a truncated or corrupt stream raises; returns the
    number of non-finite voxels of a floating-point NIfTI-1 file (0 otherwise)."""
    bad = 0
    try:
        with _open(path) as f:
            header = f.read(352)
            layout = _nifti1_layout(header) if path.name.lower().endswith((".nii", ".nii.gz")) else None
            if layout is None or layout[0] is None:
                while f.read(CHUNK):
                    pass
                return 0
            dtype, offset, count = layout
            f.read(max(0, offset - len(header)))
            left = count * dtype.itemsize
            while left > 0:
                block = f.read(min(CHUNK - CHUNK % dtype.itemsize, left))
                if not block:
                    raise FileCheckError(f"{path}: the file ends before its last voxel (truncated)")
                left -= len(block)
                values = np.frombuffer(block[: len(block) - len(block) % dtype.itemsize], dtype)
                bad += int((~np.isfinite(values)).sum())
            while f.read(CHUNK):  # the rest: the gzip CRC is checked at the end of the stream
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise FileCheckError(f"{path}: truncated or corrupt compressed file ({err})") from None
    return bad


def check_image_file(path: str | Path, max_voxels: int) -> None:
    """Refuse a file that is too large by its header, truncated, corrupt, or holds NaN / inf."""
    path = Path(path)
    declared = declared_voxels(path)
    if declared > max_voxels:
        raise FileCheckError(f"{path}: the header declares {declared} voxels (at most {max_voxels}); "
                             "nothing was read")
    bad = scan_stream(path)
    if bad:
        raise FileCheckError(f"{path}: the volume has {bad} NaN or infinite voxels")
