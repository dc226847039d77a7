"""Synthetic spine phantoms with exact truth: the test bed and the demo training data."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..levels import LEVELS, VERSE_ID, disc_name, level_range
from .. import atomic
from ..volume import Volume, case_name, write_volume
from ..writers.dicom_image_series import write_dicom_series
from .anatomy import FRACTURE_TYPES, Vertebra, build_spine, canal_size
from .surroundings import BLOOD, Surroundings, field_half_width, scanner
from .surroundings import draw as draw_surroundings
from .render import AIR, CANCELLOUS, CORTICAL, INTENSITY, LABEL_CANAL, LABEL_RIBS, arch_label, body_label, render

ORIENTATIONS = ("axial", "sagittal", "coronal", "oblique")
_DIRECTIONS = {  # columns: the RAS direction of i, j, k
    "axial": np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]]),
    "sagittal": np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]),  # i A->P, j S->I, k L->R
    "coronal": np.array([[-1.0, 0, 0], [0, 0, -1], [0, -1, 0]]),
}


@dataclass
class PhantomCase:
    image: Volume
    labels: Volume
    truth: dict
    spine: list = None  # the Vertebra objects (local frames, sizes): radiographs draw on them


def parse_fracture(spec: str) -> tuple[str, str, int]:
    """'L1:wedge:3' -> ('L1', 'wedge', 3)."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0].upper() not in LEVELS or parts[1] not in FRACTURE_TYPES \
            or parts[2] not in ("1", "2", "3"):
        raise ValueError(f"not a fracture: {spec!r} (expected LEVEL:wedge|biconcave|crush:1|2|3)")
    return parts[0].upper(), parts[1], int(parts[2])


def random_rotation(rng: np.random.Generator, min_deg=8.0, max_deg=25.0) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(min_deg, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _extent_points(spine: list[Vertebra], half_width_mm: float | None = None,
                   field: Surroundings | None = None) -> np.ndarray:
    """The field of view: the spine (and, with surroundings, the trunk, the table and the hips)."""
    pts = []
    half_x = half_width_mm or max(v.width for v in spine) / 2 + 35
    for v in spine:
        ap = canal_size(v.index)[0]
        back = v.depth / 2 + ap + (18 if v.index < 7 else 28) + (95 if field else 35)
        below = v.height / 2 + (75 if v.level == "S1" else 12) + (70 if field and v.level == "S1" else 0)
        front = 2 * field.trunk_ry - v.depth / 2 - 55 if field else v.depth / 2 + 25
        for a in (-front, back):
            for z in (-below, v.height / 2 + 12):
                for x in (-half_x, half_x):
                    pts.append(v.to_ras(x, a, z))
    return np.array(pts)


def make_grid(spine, spacing, direction: np.ndarray, half_width_mm: float | None = None,
              field: Surroundings | None = None):
    """Smallest grid with this spacing/direction that covers the phantom's field of view."""
    spacing = np.asarray(spacing, dtype=float)
    q = _extent_points(spine, half_width_mm, field) @ direction  # coordinates along the grid axes
    qmin, qmax = q.min(0), q.max(0)
    size = np.ceil((qmax - qmin) / spacing).astype(int) + 1
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = direction @ qmin
    return tuple(int(s) for s in size[::-1]), affine


def make_phantom(levels="T10-L3", modality="ct", fractures=(), herniations=(), seed=0,
                 spacing=(1.0, 1.0, 1.0), orientation="axial", direction=None,
                 curvature=None, rib_pairs: int = 12, half_width_mm: float | None = None,
                 surroundings: bool | Surroundings = False, lumbar_vertebrae: int = 5) -> PhantomCase:
    """A phantom volume, its labelmap and truth; deterministic for a seed. rib_pairs: 11 or 13 for
    transitional anatomy; half_width_mm: the field beside the spine (default: just past the
    transverse processes; ~100 takes in the ribs' posterior arcs); surroundings (CT): the trunk,
    table, arms, vessels, kidneys, bowel, pelvis and a random scanner, drawn from the seed too (or
    given: a Surroundings, to set the kernel or the contrast);
    lumbar_vertebrae=6: a sixth lumbar vertebra (L6, VerSe label 25) below L5."""
    if modality not in INTENSITY:
        raise ValueError(f"modality must be ct or mr, not {modality!r}")
    if surroundings and modality != "ct":
        raise ValueError("surroundings are drawn on CT phantoms only")
    field = surroundings if isinstance(surroundings, Surroundings) else \
        Surroundings.draw(np.random.default_rng([seed, 2026])) if surroundings else None
    if field:
        half_width_mm = max(half_width_mm or 0.0, field_half_width(field))
    names = level_range(levels) if isinstance(levels, str) else list(levels)
    if lumbar_vertebrae not in (5, 6) or (lumbar_vertebrae == 6 and "L5" not in names):
        raise ValueError("lumbar_vertebrae: 5, or 6 with L5 in the levels (L6 follows L5)")
    if lumbar_vertebrae == 6:
        names.insert(names.index("L5") + 1, "L6")
    rng = np.random.default_rng(seed)
    frac = {}
    for spec in fractures:
        level, kind, grade = parse_fracture(spec) if isinstance(spec, str) else spec
        if level not in names or level in ("C1", "S1"):
            raise ValueError(f"fracture at {level}: not a vertebral body in {names[0]}-{names[-1]}")
        frac[level] = (kind, grade)
    herniated = set()
    for spec in herniations:
        upper = spec.upper().split("-")[0]
        if upper not in names[:-1] or disc_name(upper) != spec.upper():
            raise ValueError(f"herniation {spec!r}: not a disc between the phantom's levels")
        herniated.add(upper)
    curvature = rng.uniform(0.6, 1.4) if curvature is None else curvature
    spine = build_spine(names, rng, curvature, frac)
    offset = rng.uniform(-80, 80, size=3)
    for v in spine:
        v.center = v.center + offset
    if direction is None:
        direction = random_rotation(rng) @ _DIRECTIONS["axial"] if orientation == "oblique" \
            else _DIRECTIONS[orientation]
    shape, affine = make_grid(spine, spacing, np.asarray(direction, dtype=float), half_width_mm, field)
    field_rng = np.random.default_rng([seed, 2027])
    underlay = (lambda cv: draw_surroundings(cv, spine, field, field_rng)) if field else None
    canvas, disc_centers = render(spine, shape, affine, herniated, rib_pairs, underlay)
    voxels = _intensities(canvas, spine, affine, modality, rng, np.asarray(spacing, float), field, field_rng)
    name = f"phantom_{modality}_{names[0]}-{names[-1]}_s{seed}"
    image = Volume(voxels, affine, modality, name, {"phantom": True})
    labels = Volume(canvas.labels, affine.copy(), modality, name + "_labels")
    truth = _truth(spine, disc_centers, herniated, seed, modality, curvature, image)
    truth["rib_pairs"] = rib_pairs  # the last rib-bearing vertebra is T12 only with 12
    truth["lumbar_vertebrae"] = lumbar_vertebrae
    if field:
        truth["surroundings"] = {"arms": field.arms, "kernel": field.kernel, "noise_hu": round(field.noise_hu, 1),
                                 "contrast_blood_hu": round(field.hu[BLOOD]), "trunk_half_width_mm": round(field.trunk_rx)}
    return PhantomCase(image, labels, truth, spine)


def _intensities(canvas, spine, affine, modality, rng, spacing, field=None, field_rng=None):
    table = dict(INTENSITY[modality])
    if modality == "ct":
        table[CANCELLOUS] = rng.uniform(110, 240)  # bone density varies between patients
    if field:
        table.update(field.hu)
    lut = np.array([table[t] for t in range(len(table))], np.float32)
    vox = lut[canvas.tissue]
    edge = np.isfinite(canvas.bone_fraction)
    f = canvas.bone_fraction[edge]
    vox[edge] = f * lut[CORTICAL] + (1 - f) * lut[canvas.outside[edge]]
    if field:  # the trunk drew its own skin; the kernel and noise are the scanner's
        return np.clip(np.round(scanner(vox, spacing[::-1], field, field_rng)), -1024, 3071).astype(np.int16)
    # Air behind the back: a skin plane posterior to the spinous processes.
    kk, jj, ii = np.indices(vox.shape, sparse=True)
    y = affine[1, 0] * ii + affine[1, 1] * jj + affine[1, 2] * kk + affine[1, 3]
    skin_y = min((v.center + (v.depth / 2 + canal_size(v.index)[0] + 48) * v.e_ap)[1] for v in spine)
    outside = (y < skin_y) & (canvas.labels == 0)
    vox[np.broadcast_to(outside, vox.shape)] = table[AIR]
    vox = ndimage.gaussian_filter(vox, sigma=0.5 / spacing[::-1])  # partial volume
    noise = 18.0 if modality == "ct" else 22.0
    vox += rng.normal(0, noise, vox.shape).astype(np.float32)
    if modality == "ct":
        return np.clip(np.round(vox), -1024, 3071).astype(np.int16)
    bias = 1 + 0.15 * (np.asarray(y, np.float32) - y.mean()) / (np.ptp(y) + 1e-6)
    return np.clip(np.round(vox * bias), 0, 4095).astype(np.uint16)


def _truth(spine, disc_centers, herniated, seed, modality, curvature, image) -> dict:
    labels = {}
    vertebrae = []
    for v in spine:
        labels[body_label(v)] = v.level if v.has_body else ("C1 (atlas)" if v.level == "C1" else "sacrum")
        if v.has_body:
            labels[arch_label(v)] = f"{v.level} posterior elements"
        vertebrae.append({
            "level": v.level, "label": body_label(v), "has_body": v.has_body,
            "center_ras": np.round(v.center, 3).tolist(),
            "fracture": v.fracture, "genant_grade": v.grade, "height_loss": round(v.loss, 4),
            "keypoints_ras": np.round(v.keypoints_ras(), 3).tolist() if v.has_body else [],
            "heights_mm": {k: round(h, 3) for k, h in v.heights_mm().items()} if v.has_body else None,
            "superior_axis_ras": np.round(v.e_si, 5).tolist(),
        })
    discs = []
    below = {a.level: b.level for a, b in zip(spine, spine[1:])}  # L5-L6 where there is an L6
    for upper, center in disc_centers.items():
        labels[100 + VERSE_ID[upper]] = f"{upper}-{below[upper]} disc"
        discs.append({"level": f"{upper}-{below[upper]}", "label": 100 + VERSE_ID[upper],
                      "center_ras": np.round(center, 3).tolist(), "herniated": upper in herniated})
    labels[LABEL_CANAL] = "spinal canal"
    if any(7 <= v.index <= 18 for v in spine):
        labels[LABEL_RIBS] = "ribs"
    return {"seed": seed, "modality": modality, "curvature": round(float(curvature), 4),
            "levels": [v.level for v in spine], "vertebrae": vertebrae, "discs": discs,
            "labels": {str(k): n for k, n in sorted(labels.items())},
            "geometry": {"ijk_to_ras": image.ijk_to_ras.round(6).tolist(),
                         "shape_ijk": list(image.shape_ijk)}}


def write_phantom(case: PhantomCase, out: str | os.PathLike, dicom: bool = False) -> dict:
    """OUT.nii.gz + OUT.labels.nii.gz + OUT.truth.json; returns the paths. With `dicom`, the image
    is the folder OUT/ holding a DICOM series (one file per slice, proper UIDs) and the labels are
    OUT.labels.nii.gz."""
    out = Path(out)
    stem = case_name(out)
    ext = ".nii.gz" if dicom else (out.name[len(stem):] or ".nii.gz")
    paths = {"image": out if dicom else out.with_name(stem + ext), "labels": out.with_name(stem + ".labels" + ext),
             "truth": out.with_name(stem + ".truth.json")}
    if dicom and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not an empty folder (a DICOM series goes in a folder of its own)")
    try:  # all three or none: a full disk leaves no image without its truth
        if dicom:
            write_dicom_series(case.image, out, key=f"{stem}|{json.dumps(case.truth, sort_keys=True)[:2000]}")
        else:
            write_volume(case.image, paths["image"])
        write_volume(case.labels, paths["labels"])
        atomic.write_text(paths["truth"], json.dumps(case.truth, indent=1))
    except BaseException:
        for key, path in paths.items():
            if key == "image" and dicom:
                shutil.rmtree(path, ignore_errors=True)
            else:
                Path(path).unlink(missing_ok=True)
        raise
    return {k: str(p) for k, p in paths.items()}
