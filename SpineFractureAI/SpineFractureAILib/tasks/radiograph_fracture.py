"""Seed 002 on a lateral radiograph: find each vertebral body with its six endplate points (YOLOv8-pose),
name the levels from the lowest rib-bearing body (T12), measure Ha/Hm/Hp and grade (Genant), and say
whether each fractured body's fracture is fresh or old (EfficientNet + MobileNet + MnasNet, soft vote).

The volume is a radiograph as the library stores one: [1, rows, cols] in radiograph.frame's frame.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from scipy import ndimage

from ..bundles import Bundle
from ..slice_tracks import box_iou
from ..morphometry import Measurement, grade, heights_from_points
from ..predictors.ensembles import Ensemble
from ..predictors.keypoint_net import build_keypoint_net, from_crop
from ..predictors.yolo import YoloPredictor
from ..radiograph.chain import level_steps, name_levels, on_chain
from ..radiograph.model_input import crop_resized, to_uint8
from ..radiograph.windows import cut_by_window, merge, windows
from ..results import Finding, Roi, VertebraRow
from ..run_state import RunState
from ..safe_weights import load_into
from ..terminology import segment_for_body, segment_for_class
from ..volume import Volume

WORK_MM = 1.0  # the models were trained on 0.8-1.25 mm pixels: a known spacing is resampled to this
MAX_UNKNOWN_SIDE = 700  # a bitmap without spacing larger than this is shrunk (ratios do not change)
AP_CLASS, RIB_CLASS = 2, 1
NOT_GRADED = {"C1": "not graded: C1 has no body", "C2": "not graded: C2's body carries the dens",
              "S1": "not graded: the top of the sacrum"}  # whole-spine films reach these


class RadiographPredictor:
    """The pose model and the age ensemble of a radiograph-fracture bundle, loaded once."""

    def __init__(self, bundle: Bundle, device: str = "auto"):
        pose = bundle.manifest["pose"]
        self.pose = YoloPredictor(bundle, device, bundle.weight_path(pose["file"]), pose["classes"], pose["input_size"])
        age = bundle.manifest["age"]
        self.age = Ensemble(age, bundle.weight_path, self.pose.device, self.pose.half)
        self.bundle, self.device, self.batch = bundle, self.pose.device, 1  # one film at a time
        self.age_size = int(age["input_size"])
        stage = bundle.manifest.get("keypoints")  # seed 003's second stage, when the bundle has one
        self.keypoints, self.keypoint_size = None, 0
        if stage:
            net = load_into(build_keypoint_net(), bundle.weight_path(stage["file"]))
            self.keypoints = (net.half() if self.pose.half else net.float()).to(self.pose.device).eval()
            self.keypoint_size = int(stage["input_size"])
        self.keypoint_seconds = 0.0

    @torch.inference_mode()
    def regress_points(self, image8: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """[N, 6, 2] working pixels from the keypoint network on each body's crop."""
        crops = np.stack([crop_resized(image8, b, self.keypoint_size) for b in boxes])
        x = torch.from_numpy(crops).to(self.pose.device)
        x = (x.half() if self.pose.half else x.float()).div_(255).unsqueeze(1)
        started = time.perf_counter()
        values = self.keypoints(x).float().cpu().numpy().reshape(len(boxes), 6, 2)
        self.keypoint_seconds += time.perf_counter() - started
        return np.stack([from_crop(v, b, self.keypoint_size) for v, b in zip(values, boxes)])

    @property
    def forward_seconds(self) -> float:
        return self.pose.forward_seconds + self.age.forward_seconds + self.keypoint_seconds


def make_predictor(bundle: Bundle, device: str = "auto") -> RadiographPredictor:
    return RadiographPredictor(bundle, device)


def _working_image(volume: Volume):
    """The image at the models' scale: (uint8 image, scale = working pixels per input pixel, spacing mm
    or None)."""
    pixels = volume.voxels[0].astype(np.float32)
    spacing = volume.metadata.get("pixel_spacing_mm")
    if spacing:
        scale = float(spacing) / WORK_MM
    else:
        scale = min(1.0, MAX_UNKNOWN_SIDE / max(pixels.shape))
    if abs(scale - 1) > 0.02:
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return to_uint8(pixels), scale, (float(spacing) if spacing else None)


def _letterbox(image8: np.ndarray, size: int):
    """As ultralytics letterboxes: scaled to fit, centred on grey 114."""
    h, w = image8.shape
    r = size / max(h, w)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = cv2.resize(image8, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    return canvas, r, left, top


def detect_bodies(predictor: RadiographPredictor, image8: np.ndarray):
    """(boxes [N, 4], classes, scores, keypoints [N, 6, 3]) in working pixels, top to bottom. The film
    is also read mirrored (a patient facing the other way): where the two readings of a body disagree on
    its class (rib-bearing or not, which names the levels), the more confident one wins."""
    boxes, classes, scores, kp = _detect_once(predictor, image8)
    m_boxes, m_classes, m_scores, _ = _detect_once(predictor, np.ascontiguousarray(image8[:, ::-1]))
    width = image8.shape[1]
    m_boxes = np.stack([width - m_boxes[:, 2], m_boxes[:, 1], width - m_boxes[:, 0], m_boxes[:, 3]], 1) \
        if len(m_boxes) else m_boxes
    for n, box in enumerate(boxes):
        if not len(m_boxes):
            break
        overlap = np.array([box_iou(box, other) for other in m_boxes])
        j = int(np.argmax(overlap))
        if overlap[j] >= 0.5 and m_classes[j] != classes[n] and m_scores[j] > scores[n]:
            classes[n] = m_classes[j]
    return boxes, classes, scores, kp


def _detect_once(predictor: RadiographPredictor, image8: np.ndarray):
    """The film read whole where it fits the model's input, else in windows at the training scale."""
    parts = windows(image8.shape, predictor.pose.size)
    if len(parts) == 1:
        return _detect_window(predictor, image8)
    found = []
    for window in parts:
        r0, r1, c0, c1 = window
        boxes, classes, scores, kp = _detect_window(predictor, image8[r0:r1, c0:c1])
        boxes, kp = boxes + [c0, r0, c0, r0], kp + [c0, r0, 0]
        whole = ~cut_by_window(boxes, window, image8.shape)
        found.append((boxes[whole], classes[whole], scores[whole], kp[whole]))
    return merge(found)


def _detect_window(predictor: RadiographPredictor, image8: np.ndarray):
    canvas, r, left, top = _letterbox(image8, predictor.pose.size)
    (det,) = predictor.pose.predict(canvas[None])
    boxes = (det.boxes - [left, top, left, top]) / r
    kp = det.keypoints.copy() if det.keypoints is not None and det.keypoints.size else np.zeros((len(boxes), 6, 3))
    kp[..., 0], kp[..., 1] = (kp[..., 0] - left) / r, (kp[..., 1] - top) / r
    order = np.argsort((boxes[:, 1] + boxes[:, 3]) / 2) if len(boxes) else np.zeros(0, int)
    return boxes[order], det.classes[order].copy(), det.scores[order], kp[order]


def refine_endplates(image8: np.ndarray, kp: np.ndarray, reach: float = 0.45, prior: float = 0.25) -> np.ndarray:
    """Each of the six points moved along its body's axis to the strongest edge of the right sign
    near it (disc above -> bright body for a superior point; body -> disc below for an inferior one),
    within `reach` x the body's height: the pose model places points on the typical body, the film
    shows where this body's endplate is. Returns [N, 6, 2] working pixels."""
    smooth = ndimage.gaussian_filter(image8.astype(np.float32), 1.0)
    out = kp[:, :, :2].astype(np.float64).copy()
    for n, points in enumerate(out):
        for k in range(3):
            top, bottom = points[k].copy(), points[k + 3].copy()
            height = np.linalg.norm(bottom - top)
            if height < 4:
                continue
            axis = (bottom - top) / height
            across = np.array([-axis[1], axis[0]])
            s = np.arange(-reach * height, reach * height + 0.5, 0.5)
            for point, sign, index in ((top, 1.0, k), (bottom, -1.0, k + 3)):
                line = point[None, None, :] + s[:, None, None] * axis + np.array([-1.5, 0, 1.5])[None, :, None] * across
                values = ndimage.map_coordinates(smooth, [line[..., 1].ravel(), line[..., 0].ravel()], order=1,
                                                 mode="nearest").reshape(len(s), 3).mean(1)
                edge = sign * np.gradient(values)
                score = edge * np.exp(-0.5 * (s / (prior * height)) ** 2)  # nearer edges preferred
                best = int(np.argmax(score))
                if edge[best] > 4.0:  # a real edge, not noise (grey levels per half pixel)
                    out[n, index] = point + s[best] * axis
    return out


def run(volume: Volume, bundle: Bundle, predictor: RadiographPredictor, state: RunState, progress, cancelled) -> None:
    started = time.perf_counter()
    progress("radiograph: vertebral bodies", 0.2)
    image8, scale, spacing = _working_image(volume)
    boxes, classes, scores, kp = detect_bodies(predictor, image8)
    state.timing_s["radiograph_pose"] = time.perf_counter() - started
    state.radiograph = {"pixel_spacing_mm": spacing, "spacing_source": volume.metadata.get("spacing_source"),
                        "working_scale": round(scale, 4), "bodies_detected": int(len(boxes))}
    if spacing is None:
        state.warnings.append("pixel spacing unknown (no DICOM spacing): positions assume 1 mm per pixel; "
                              "heights are reported as ratios, not millimetres")
    ap = int(np.sum(classes == AP_CLASS))
    if ap and ap >= len(boxes) - ap:
        state.warnings.append(f"this looks like an AP (frontal) view ({ap} of {len(boxes)} bodies seen face-on): "
                              "the radiograph models read lateral views, so nothing was measured or graded")
        state.radiograph["view"] = "ap"
        return
    keep = classes != AP_CLASS
    boxes, classes, scores, kp = boxes[keep], classes[keep], scores[keep], kp[keep]
    if not len(boxes):
        state.warnings.append("no vertebral body found on this radiograph: not analysed (is it a lateral spine view?)")
        return
    chain = on_chain(boxes)
    if not chain.all():
        state.warnings.append(f"{int((~chain).sum())} detection(s) off the spine's chain of bodies ignored "
                              "(bowel gas, an iliac crest or a rib crossing, most likely)")
        boxes, classes, scores, kp = boxes[chain], classes[chain], scores[chain], kp[chain]
    names, anchor = name_levels([c == RIB_CLASS for c in classes], level_steps(boxes))
    state.radiograph.update({"view": "lateral", "levels": anchor})
    if names[0] is None:
        state.warnings.append(f"levels {anchor}; bodies are numbered from the top instead")
    if predictor.keypoints is not None:  # seed 003's second stage measures the collapse
        points = predictor.regress_points(image8, boxes)
        how = "six points regressed from each body's crop (second stage)"
    else:
        points, how = refine_endplates(image8, kp), "pose model, each moved to the nearest endplate edge on the film"
    state.radiograph["keypoints"] = how
    mm = (spacing or WORK_MM * scale) / scale  # mm per working pixel (1 mm per input pixel when unknown)
    rows = _measure(points, names, mm, spacing is not None, _cut_by_edge(boxes, image8.shape))
    _age(predictor, image8, boxes, rows, bundle)
    _write(state, volume, boxes, scores, points, rows, scale, classes, bundle.name)
    state.timing_s["radiograph"] = time.perf_counter() - started


def _cut_by_edge(boxes, shape) -> np.ndarray:
    """Bodies whose box reaches the film's edge (within 15 % of a body's height): part of them may be off
    the film, so they cannot be measured."""
    rows, cols = shape
    margin = max(2.0, 0.15 * float(np.median(boxes[:, 3] - boxes[:, 1]))) if len(boxes) else 2.0
    return (boxes[:, 0] <= margin) | (boxes[:, 1] <= margin) | (boxes[:, 2] >= cols - 1 - margin) | \
        (boxes[:, 3] >= rows - 1 - margin)


def _measure(points_px, names, mm: float, known: bool, cut) -> list[Measurement]:
    rows = []
    for n, points in enumerate(points_px):
        m = Measurement(names[n] or f"#{n + 1}", n + 1)
        if cut[n] or names[n] in NOT_GRADED:
            m.status = NOT_GRADED.get(names[n], "unmeasurable: cut by the film's edge")
            rows.append(m)
            continue
        pts = np.concatenate([points * mm, np.zeros((6, 1))], 1)
        m.heights_mm = {k: round(v, 2) for k, v in heights_from_points(pts).items()}
        # each endplate point is placed on an edge to about half a pixel (the edge search's step)
        m.height_uncertainty_mm = round(float(np.sqrt(2) * mm / 2), 2)
        rows.append(m)
    for n, m in enumerate(rows):
        if m.heights_mm is None:
            continue
        neighbours = [rows[i].heights_mm["posterior"] for i in (n - 1, n + 1)
                      if 0 <= i < len(rows) and rows[i].heights_mm is not None]
        grade(m, neighbours)
        if not known:
            m.status = "ratios only (pixel spacing unknown)"
    return rows


def _age(predictor, image8, boxes, rows, bundle) -> None:
    threshold = float(bundle.thresholds.get("fresh", 0.5))
    fractured = [n for n, m in enumerate(rows) if m.genant_grade]
    if not fractured:
        return
    crops = np.stack([crop_resized(image8, boxes[n], predictor.age_size) for n in fractured])
    p_fresh = predictor.age.predict(crops)[:, 1]
    for n, p in zip(fractured, p_fresh):
        rows[n].age_probability = round(float(p), 4)
        rows[n].age = "fresh" if p >= threshold else "old"


def _write(state: RunState, volume: Volume, boxes, scores, points_px, rows, scale, classes, source: str) -> None:
    """Rows, ROIs, findings and a body segmentation (the six points' hexagon) in the input frame."""
    plane = volume.ijk_to_ras
    axes = [list(plane[:3, d] / np.linalg.norm(plane[:3, d])) for d in range(3)]
    px = np.linalg.norm(plane[:3, :2], axis=0)
    for n, m in enumerate(rows):
        box = boxes[n] / scale
        centre = plane[:3, :3] @ [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0] + plane[:3, 3]
        roi = Roi(np.round(centre, 3).tolist(), [float((box[2] - box[0]) * px[0]), float((box[3] - box[1]) * px[1]), 1.0], axes)
        points = points_px[n] / scale
        m.keypoints_ras = np.round(points @ plane[:3, :2].T + plane[:3, 3], 3).tolist()
        m.centroid_ras = roi.center_ras
        level = m.level if not m.level.startswith("#") else None
        label = m.type or "vertebral body"
        seg = segment_for_body(level, label, len(state.segments) + 1) if level else \
            segment_for_class(label, len(state.segments) + 1)
        if not level:  # one segment per body all the same: its position names it
            seg.name = f"{seg.name} {m.level}"
        state.segments.append(seg)
        hexagon = points[[0, 1, 2, 5, 4, 3]].round().astype(np.int32)
        layer = np.ascontiguousarray(state.labelmap[0])
        cv2.fillPoly(layer, [hexagon], int(seg.value))
        state.labelmap[0] = layer
        row = VertebraRow.from_json({**m.to_json(), "method": "keypoints (radiograph)", "level": level,
                                     "position": n + 1, "segment_value": seg.value, "center_ras": roi.center_ras,
                                     "detection_score": round(float(scores[n]), 4),
                                     "rib_bearing": bool(classes[n] == RIB_CLASS)})
        if getattr(m, "age", None):
            row.update({"age": m.age, "age_probability": m.age_probability})
        state.vertebrae.append(row)
        if m.genant_grade:
            state.findings.append(Finding(
                "fracture", m.type, float(scores[n]), roi, level, seg.value, [source],
                extra={"age": m.age, "age_probability": m.age_probability, "genant_grade": m.genant_grade,
                       "morphometry": {"heights_mm": m.heights_mm, "ratios": m.ratios, "height_loss": m.height_loss,
                                       "height_uncertainty_mm": m.height_uncertainty_mm, "status": m.status,
                                       "genant_grade": m.genant_grade}}))

