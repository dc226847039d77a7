"""Radiograph phantoms: a CT phantom with fracture-age signs, projected laterally (or AP), with the
trunk, ribs, pelvis and arms a real film shows, exposed with scatter and noise; truth in the image's frame."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import atomic
from ..levels import LEVELS, level_range
from ..phantom import make_phantom
from ..phantom.anatomy import FRACTURE_TYPES, canal_size
from . import age_signs
from .anatomy2d import Plane, arms, pelvis, ribs, trunk
from .drr import expose, project
from .frame import default_plane
from .io import write_dx, write_png

CLASS_NAMES = ["vertebral body", "rib-bearing vertebral body", "vertebral body (AP view)"]


@dataclass
class RadiographCase:
    image: np.ndarray  # [rows, cols] uint16, 12 bits, bone bright
    spacing: float  # mm per pixel
    truth: dict  # positions in the image's default frame (frame.default_plane(spacing))
    objects: list  # per body: class, box [c1, r1, c2, r2] and six keypoints (col, row) in pixels


def parse_xr_fracture(spec: str) -> tuple[str, str, int, str]:
    """'L1:wedge:3:fresh' -> ('L1', 'wedge', 3, 'fresh'); the age defaults to fresh."""
    parts = spec.split(":")
    if len(parts) == 3:
        parts.append("fresh")
    if len(parts) != 4 or parts[0].upper() not in LEVELS or parts[1] not in FRACTURE_TYPES \
            or parts[2] not in ("1", "2", "3") or parts[3] not in age_signs.AGES:
        raise ValueError(f"not a fracture: {spec!r} (expected LEVEL:wedge|biconcave|crush:1|2|3:fresh|old)")
    return parts[0].upper(), parts[1], int(parts[2]), parts[3]


def make_radiograph(levels="T10-L3", fractures=(), seed: int = 0, view: str = "lateral",
                    spacing: float = 1.0, arms_count: int | None = None, blur_mm: float | None = None) -> RadiographCase:
    """blur_mm: the film's unsharpness (focal spot + detector), default 0.2-1.0 mm as a radiograph's;
    training also uses more, as a film rendered from thick CT slices shows."""
    names = level_range(levels) if isinstance(levels, str) else list(levels)
    specs = [parse_xr_fracture(f) if isinstance(f, str) else tuple(f) for f in fractures]
    rng = np.random.default_rng([seed, 2])
    case = make_phantom(names, "ct", [s[:3] for s in specs], seed=seed, spacing=(spacing,) * 3,
                        orientation="sagittal")
    skin_y = _skin_y(case.spine)
    _lungs_to_soft_tissue(case.image, skin_y)  # the trunk model draws lungs over the whole chest
    ages = {s[0]: s[3] for s in specs}
    strength = {}
    for v in case.spine:
        if v.has_body:
            strength[v.level] = age_signs.strengths(ages.get(v.level), rng)
            age_signs.draw(case.image.voxels, case.image.ijk_to_ras, v, strength[v.level], rng)
    line, plane_affine = project(case.image, view, spacing=spacing, beam_mm=spacing)
    grid_width = case.image.voxels.shape[0] * spacing if view == "lateral" else case.image.voxels.shape[2] * spacing
    objects = _objects(case, view, plane_affine, spacing)
    if view == "lateral":
        line, objects, plane = _lateral_surroundings(case, line, plane_affine, objects, spacing, grid_width,
                                                     skin_y, rng, arms_count)
    else:
        line = _ap_surroundings(line, objects, spacing, rng)
    # focal spot, detector and (for a CT-derived film) slice blur; then the exposure and processing
    blur = float(rng.uniform(0.2, 1.0)) if blur_mm is None else float(blur_mm)
    line = ndimage.gaussian_filter(line, blur / spacing)
    image = expose(line, rng, photons=float(rng.uniform(1e5, 3e6)), scatter=float(rng.uniform(0.2, 1.2)),
                   spacing=spacing, unsharp=float(rng.uniform(0.0, 3.0)))
    truth = _truth(case, objects, ages, strength, seed, view, spacing, image.shape)
    return RadiographCase(image, spacing, truth, objects)


def _objects(case, view, plane_affine, spacing) -> list[dict]:
    """Each body's projected box and (lateral) keypoints in pixels of the projection."""
    inv = np.linalg.inv(plane_affine)
    labels = case.labels.voxels
    out = []
    for row in case.truth["vertebrae"]:
        if not row["has_body"]:
            continue
        kji = np.argwhere(labels == row["label"])
        if len(kji) < 20:
            continue
        ras = case.labels.ijk_to_ras_points(kji[:, ::-1])
        pix = ras @ inv[:3, :3].T + inv[:3, 3]
        c1, r1 = pix[:, 0].min(), pix[:, 1].min()
        c2, r2 = pix[:, 0].max() + 1, pix[:, 1].max() + 1
        kp = np.array(row["keypoints_ras"]) @ inv[:3, :3].T + inv[:3, 3]
        rib = 7 <= LEVELS.index(row["level"]) <= 18
        cls = 2 if view == "ap" else (1 if rib else 0)
        out.append({"level": row["level"], "class": cls, "box": [float(c1), float(r1), float(c2), float(r2)],
                    "keypoints": kp[:, :2].tolist() if view == "lateral" else None})
    return out


def _skin_y(spine) -> float:
    """The phantom's posterior skin plane (as phantom._intensities places it)."""
    return float(min((v.center + (v.depth / 2 + canal_size(v.index)[0] + 48) * v.e_ap)[1] for v in spine))


def _lungs_to_soft_tissue(image, skin_y: float) -> None:
    """The CT phantom's lung pockets end at its grid's edges; a film would show those edges."""
    y = image.ijk_to_ras_points(np.stack([np.arange(image.voxels.shape[2]), np.zeros(image.voxels.shape[2]),
                                          np.zeros(image.voxels.shape[2])], 1))[:, 1]
    for k in range(image.voxels.shape[0]):
        sl = image.voxels[k]
        sl[(sl < -500) & (y[None, :] > skin_y + 2)] = 40


def _lateral_surroundings(case, line, plane_affine, objects, spacing, grid_width, posterior_y, rng, arms_count):
    """Pad the projection anteriorly to the belly's skin and add the trunk, ribs, pelvis and arms."""
    spine = case.spine
    y0 = plane_affine[1, 3]  # column 0 (the grid's anterior edge); columns run posteriorly
    depth = rng.uniform(210, 300)  # the trunk's AP depth; the film shows its anterior skin most often
    pad = int(max(0, np.ceil((depth + rng.uniform(-20, 60) - (y0 - posterior_y)) / spacing)))
    line = np.pad(line, ((0, 0), (pad, 0)), mode="edge")
    plane = Plane(line.shape, y0 + pad * spacing, plane_affine[2, 3], spacing)
    thoracic = [v for v in spine if 7 <= v.index <= 18]
    diaphragm = None
    if thoracic:
        lowest = thoracic[-1]
        diaphragm = float(lowest.center[2] + (18 - lowest.index) * 22.0 + rng.uniform(-15, 15))
    y, _ = plane.coords()
    line = line * (y <= posterior_y + depth)  # air in front of the belly's skin (the grid's tissue ends there)
    extra = trunk(plane, grid_width, posterior_y, rng, diaphragm, depth)
    extra += ribs(plane, spine, rng) + pelvis(plane, spine, rng)
    if arms_count is None:
        arms_count = int(rng.integers(0, 3)) if thoracic and rng.random() < 0.5 else 0
    if arms_count:
        anterior = float(max(v.center[1] for v in spine)) + 30
        extra += arms(plane, rng, anterior, arms_count)
    for obj in objects:
        obj["box"][0] += pad
        obj["box"][2] += pad
        obj["keypoints"] = [[c + pad, r] for c, r in obj["keypoints"]]
    return np.clip(line + extra, 0, None), objects, plane


def _ap_surroundings(line, objects, spacing, rng) -> np.ndarray:
    """An AP film as wide as the trunk: the CT grid's columns continued sideways to the flanks."""
    half = rng.uniform(130, 180)
    pad = int(max(0, np.ceil((half + 20) / spacing - line.shape[1] / 2)))
    line = np.pad(line, ((0, 0), (pad, pad)), mode="edge")
    x = (np.arange(line.shape[1]) - line.shape[1] / 2) * spacing
    line = line * (np.abs(x) <= half)[None, :]
    for obj in objects:
        obj["box"][0] += pad
        obj["box"][2] += pad
    return line


def _truth(case, objects, ages, strength, seed, view, spacing, shape) -> dict:
    """Vertebrae, discs and fractures with positions in the written image's default frame."""
    frame = default_plane(spacing)
    by_level = {o["level"]: o for o in objects}

    def ras(cols_rows):
        pts = np.asarray(cols_rows, float).reshape(-1, 2)
        return np.round(pts[:, 0:1] * frame[:3, 0] + pts[:, 1:2] * frame[:3, 1] + frame[:3, 3], 3)

    vertebrae = []
    for row in case.truth["vertebrae"]:
        obj = by_level.get(row["level"])
        out = {k: row[k] for k in ("level", "has_body", "fracture", "genant_grade", "height_loss", "heights_mm")}
        out["age"] = ages.get(row["level"]) if row["fracture"] else None
        out["age_signs"] = {k: round(float(s), 3) for k, s in strength.get(row["level"], {}).items()}
        out["rib_bearing"] = 7 <= LEVELS.index(row["level"]) <= 18
        if obj is not None:
            c1, r1, c2, r2 = obj["box"]
            out["box_px"] = [round(c, 2) for c in obj["box"]]
            out["center_ras"] = ras([[(c1 + c2) / 2, (r1 + r2) / 2]])[0].tolist()
            if obj["keypoints"] is not None:
                kp = np.asarray(obj["keypoints"])
                out["keypoints_px"] = np.round(kp, 2).tolist()
                out["keypoints_ras"] = ras(kp).tolist()
                out["center_ras"] = ras([kp.mean(0)])[0].tolist()
        vertebrae.append(out)
    return {"seed": seed, "modality": "xr", "view": view, "pixel_spacing_mm": spacing,
            "levels": case.truth["levels"], "vertebrae": vertebrae,
            "synthetic_age_signs": "drawn textbook signs, not learned from real radiographs",
            "geometry": {"ijk_to_ras": frame.round(6).tolist(), "shape_ijk": [shape[1], shape[0], 1]}}


def write_radiograph(case: RadiographCase, out, monochrome1: bool = False) -> dict:
    """OUT.png (8-bit, no spacing: its frame is 1 mm per pixel) or OUT.dcm (DICOM DX with the pixel
    spacing; MONOCHROME1 on request) + OUT.truth.json in the written file's frame. All or nothing."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".dcm"):
        raise ValueError(f"{out}: a radiograph phantom is written as .png or .dcm")
    truth_path = out.with_name(out.name[: -len(suffix)] + ".truth.json")
    truth = case.truth if suffix == ".dcm" else _rescaled(case.truth, 1.0 / case.spacing)
    truth = {**truth, "file_frame": "PNG: 1 mm per pixel (a bitmap has no spacing)" if suffix == ".png"
             else f"DICOM DX: {case.spacing:.4g} mm per pixel", "monochrome1": bool(monochrome1 and suffix == ".dcm")}
    try:
        if suffix == ".png":
            write_png(case.image, out)
        else:
            write_dx(case.image, case.spacing, out, monochrome1, key=f"{out.name}|{case.truth['seed']}",
                     view=case.truth["view"])
        atomic.write_text(truth_path, json.dumps(truth, indent=1))
    except BaseException:
        out.unlink(missing_ok=True)
        truth_path.unlink(missing_ok=True)
        raise
    return {"image": str(out), "truth": str(truth_path)}


def _rescaled(truth: dict, factor: float) -> dict:
    """Every RAS position scaled (the frame's origin is pixel 0, so a new spacing is a scale)."""
    def scale(value, key=""):
        if isinstance(value, dict):
            return {k: scale(v, k) for k, v in value.items()}
        if isinstance(value, list) and key.endswith("_ras"):
            return np.round(np.asarray(value, float) * factor, 3).tolist()
        if isinstance(value, list):
            return [scale(v, key) for v in value]
        return value

    out = scale(truth)
    out["pixel_spacing_mm"] = truth["pixel_spacing_mm"] * factor
    out["geometry"]["ijk_to_ras"] = default_plane(out["pixel_spacing_mm"]).round(6).tolist()
    return out
