"""Digitally reconstructed radiographs: a CT's attenuation integrated along one patient axis, and the
detector's response (exposure, scatter, quantum noise, log and window) that turns it into an image.

A projection keeps the CT's RAS frame: the image is one slice of a grid whose third axis is the beam,
placed through the middle of the volume, so a point of the CT lands on the image at its own (A, S) for a
lateral view or (R, S) for an AP view.
"""
from __future__ import annotations

import numpy as np

from ..volume import Volume, to_sitk

MU_WATER = 0.02  # linear attenuation of water per mm at a ~60 keV effective energy
# Grid directions (columns: the RAS direction of i, j and the beam k). Lateral: patient facing the
# viewer's left, columns anterior -> posterior; AP: the patient's right on the viewer's left.
VIEWS = {
    "lateral": np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
    "ap": np.array([[-1.0, 0, 0], [0, 0, -1], [0, -1, 0]]),
}


def hu_to_mu(hu: np.ndarray) -> np.ndarray:
    return np.clip(MU_WATER * (1.0 + hu.astype(np.float32) / 1000.0), 0.0, None)


def _grid_for(volume: Volume, direction: np.ndarray, spacing: float, beam_mm: float):
    """The smallest grid with `direction` covering the volume's corners."""
    q = volume.corners_ras() @ direction
    lo, hi = q.min(0), q.max(0)
    steps = np.array([spacing, spacing, beam_mm])
    size = np.ceil((hi - lo) / steps).astype(int) + 1
    affine = np.eye(4)
    affine[:3, :3] = direction * steps[None, :]
    affine[:3, 3] = direction @ lo
    return size, affine


def project(volume: Volume, view: str = "lateral", spacing: float = 1.0, beam_mm: float = 1.0):
    """Line integrals of attenuation (mu * mm) through a CT volume in HU, as [rows, cols] on the
    projection plane, and that plane's IJK->RAS (k: 1 mm along the beam, through the volume's middle)."""
    import SimpleITK as sitk

    direction = VIEWS[view]
    size, affine = _grid_for(volume, direction, spacing, beam_mm)
    if np.allclose(affine[:3, :3], volume.ijk_to_ras[:3, :3], atol=1e-6) and \
            np.allclose(affine[:3, 3], volume.ijk_to_ras[:3, 3], atol=1e-3):
        hu = volume.voxels
    else:  # resample onto the view's grid (linear; air outside the scan)
        grid = Volume(np.zeros(tuple(size[::-1]), np.int8), affine)
        reference = to_sitk(grid)
        image = sitk.Cast(to_sitk(volume), sitk.sitkFloat32)
        hu = sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, -1000.0))
    line = np.zeros(hu.shape[1:], np.float64)
    for k in range(hu.shape[0]):  # slab by slab: no float copy of the whole volume
        line += hu_to_mu(hu[k])
    line *= beam_mm
    plane = affine.copy()
    plane[:3, 2] = direction[:, 2]  # 1 mm along the beam
    plane[:3, 3] = affine[:3, 3] + direction[:, 2] * beam_mm * (hu.shape[0] - 1) / 2
    return line.astype(np.float32), plane


def expose(line: np.ndarray, rng: np.random.Generator | None = None, photons: float = 1e6,
           scatter: float = 0.4, scatter_mm: float = 25.0, spacing: float = 1.0,
           unsharp: float = 2.0, bits: int = 12) -> np.ndarray:
    """A detector's image of line integrals: primary + blurred scatter, Poisson noise, log, a
    percentile window and optional unsharp masking (as CR/DX processing does); bone is bright,
    values 0 .. 2**bits - 1 (uint16)."""
    from scipy import ndimage

    primary = np.exp(-line.astype(np.float64))
    diffuse = ndimage.gaussian_filter(primary, scatter_mm / spacing) * scatter
    expected = photons * (primary + diffuse)
    counts = rng.poisson(expected) if rng is not None else expected
    density = -np.log(np.maximum(counts, 0.5) / (photons * (1 + scatter)))
    if unsharp > 0:
        # dynamic range compression: the body's slow thickness change is damped, bone edges kept
        density = density + unsharp * (density - ndimage.gaussian_filter(density, 30.0 / spacing))
    body = density[density > 0.35 * np.percentile(density, 99.5)]  # the window is set on the patient, not air
    lo, hi = np.percentile(body if body.size > 100 else density, [1.0, 99.8])
    scaled = np.clip((density - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.round(scaled * (2 ** bits - 1)).astype(np.uint16)


def radiograph_volume(image: np.ndarray, plane: np.ndarray, name: str, metadata: dict | None = None) -> Volume:
    """A 2D image as the one-slice Volume the rest of the library reads ([1, rows, cols])."""
    return Volume(image[None], plane.copy(), "xr", name, dict(metadata or {}))
