"""The findings as a DICOM SR measurement report (TID 1500, highdicom): per measured vertebra its
level, Ha/Hm/Hp with the two points of each height as 3D coordinates (a radiograph: pixel
coordinates on its image), Genant grade and type; per finding (fracture, vertebra, disc) its type,
level, confidence and source model, referencing its segment in the DICOM SEG; the bundles as
algorithm identification."""
from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from ..results import Finding, Results
from ..terminology import FRACTURE_CODES, VERTEBRA_CODE, vertebra_code
from ..volume import LPS_TO_RAS
from .dicom_seg import (MANUFACTURER, PRIVATE_SCHEME, PRIVATE_SCHEME_ITEM, SOFTWARE_VERSION, bundle_names,
                        bundles_key, coded, not_for_clinical_use, research_or_product)
from .dicom_uids import derived_uid

# Private codes (scheme 99SPINEAI) where DICOM and pydicom's SNOMED CT list have none.
GENANT_GRADE = hd.sr.CodedConcept("genant-grade", PRIVATE_SCHEME, "Genant semi-quantitative grade")
GRADES = [hd.sr.CodedConcept(f"genant-{g}", PRIVATE_SCHEME, f"Genant grade {g}") for g in range(4)]
TYPES = {t: hd.sr.CodedConcept(t, PRIVATE_SCHEME, f"{t} deformity") for t in ("wedge", "biconcave", "crush")}
HERNIATED = hd.sr.CodedConcept("disc-herniation", PRIVATE_SCHEME, "Intervertebral disc herniation")
CLINICAL_USE = hd.sr.CodedConcept("clinical-use", PRIVATE_SCHEME, "Clinical use of the algorithm")
HEIGHT_SITES = {"anterior": codes.SCT.Anterior, "middle": codes.SCT.Central, "posterior": codes.SCT.Posterior}
DISC = ("SCT", "360499006", "Intervertebral disc")
PROCEDURE = {"ct": codes.LN.CTUnspecifiedBodyRegion, "mr": codes.LN.MRIUnspecifiedBodyRegion,
             "xr": codes.LN.XRUnspecifiedBodyRegion}


def level_site(level: str | None, modifier=None) -> hd.sr.FindingSite:
    """The vertebra (or disc "L4-L5") as an anatomic location; the spine where the level is unknown."""
    if level and (level in VERTEBRA_CODE or level == "S1"):
        location = coded(vertebra_code(level))
    elif level and "-" in level:
        location = disc_code(level)
    else:
        location = codes.SCT.Vertebra
    return hd.sr.FindingSite(anatomic_location=location, topographical_modifier=modifier)


def disc_code(level: str | None):
    """pydicom's SNOMED CT code of the disc between two levels ("L4-L5" -> L4/L5 disc)."""
    if level and "-" in level:
        name = level.replace("-", "") + "Disc"
        code = getattr(codes.SCT, name, None)
        if code is not None:
            return code
    return coded(DISC)


def _lps(points_ras) -> np.ndarray:
    return np.asarray(points_ras, float) @ LPS_TO_RAS[:3, :3].T


def volume_coordinates(frame_uid: str):
    """Two RAS points -> a 3D polyline in the series' Frame of Reference."""
    return lambda points_ras: hd.sr.CoordinatesForMeasurement3D(
        graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE, graphic_data=_lps(points_ras), frame_of_reference_uid=frame_uid)


def image_coordinates(results: Results, source):
    """Two points in the radiograph's frame -> a polyline in the image's pixel coordinates (column,
    row; DICOM puts 0,0 at the top left pixel's corner, so a pixel's centre is its index + 0.5)."""
    ras_to_ijk = np.linalg.inv(results.ijk_to_ras)
    image = hd.sr.SourceImageForRegion.from_source_image(source)

    def locate(points_ras) -> hd.sr.CoordinatesForMeasurement:
        ijk = np.c_[np.asarray(points_ras, float), np.ones(len(points_ras))] @ ras_to_ijk.T
        return hd.sr.CoordinatesForMeasurement(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                               graphic_data=ijk[:, :2] + 0.5, source_image=image)
    return locate


def vertebra_group(row: dict, uid: str, locate, algorithm_id) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 for one morphometry row: three heights, each with its superior and inferior point
    (`locate`: two RAS points -> the coordinates item)."""
    level = row.get("level")
    measurements, evaluations = [], []
    if row.get("status") == "measured" and row.get("heights_mm") and len(row.get("keypoints_ras") or []) == 6:
        points = np.asarray(row["keypoints_ras"], float)
        for n, (name, site) in enumerate(HEIGHT_SITES.items()):
            measurements.append(hd.sr.Measurement(
                name=codes.DCM.Height, value=round(float(row["heights_mm"][name]), 3), unit=codes.UCUM.Millimeter,
                finding_sites=[level_site(level, site)],
                referenced_coordinates=[locate(points[[n, n + 3]])]))
        grade = row.get("genant_grade")
        if grade is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(GENANT_GRADE, GRADES[int(grade)]))
        if row.get("type") in TYPES:
            evaluations.append(hd.sr.QualitativeEvaluation(codes.SCT.AssociatedMorphology, TYPES[row["type"]]))
    if row.get("fracture_probability") is not None:
        measurements.append(hd.sr.Measurement(name=codes.DCM.Probability, value=float(row["fracture_probability"]),
                                              unit=codes.UCUM.NoUnits, finding_sites=[level_site(level)]))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=f"vertebra {level or row.get('position', '')}"
                                                     .strip()[:64]),
        finding_type=codes.SCT.Vertebra, finding_sites=[level_site(level)], algorithm_id=algorithm_id,
        measurements=measurements or None, qualitative_evaluations=evaluations or None)


def volume_segment(seg):
    """Segment number -> (TID 1411, its reference to the segment in the volume's SEG)."""
    series = hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    return lambda number: (hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations, hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number,
        source_series=series))


def image_segment(seg, source):
    """Segment number -> (TID 1410, its reference to the segment's frame in the radiograph's SEG),
    or None where the segment has no frame (an empty one is omitted)."""
    frame_of = {int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber): n
                for n, f in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1)}
    image = hd.sr.SourceImageForSegmentation.from_source_image(source)

    def reference(number: int):
        if number not in frame_of:
            return None
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations, hd.sr.ReferencedSegmentationFrame(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=frame_of[number],
            segment_number=number, source_image=image)
    return reference


def finding_group(finding: Finding, uid: str, segment_of, segment_number: int | None, algorithm_id):
    """TID 1411/1410 (referencing the finding's segment in the SEG: `segment_of(number)` gives the
    group and the reference) or, without a segment, TID 1501."""
    if finding.kind == "fracture":
        kind = coded(FRACTURE_CODES[1])
    elif finding.kind == "disc":
        kind = disc_code(finding.level)
    else:
        kind = codes.SCT.Vertebra
    site = [level_site(finding.level)]
    probability = finding.extra.get("probability", finding.confidence) if finding.kind == "disc" else finding.confidence
    measurements = [hd.sr.Measurement(name=codes.DCM.Probability, value=round(float(probability), 4),
                                      unit=codes.UCUM.NoUnits, finding_sites=site)]
    evaluations = []
    if finding.label in TYPES:
        evaluations.append(hd.sr.QualitativeEvaluation(codes.SCT.AssociatedMorphology, TYPES[finding.label]))
    if finding.kind == "disc" and finding.extra.get("herniated"):
        evaluations.append(hd.sr.QualitativeEvaluation(codes.SCT.AssociatedMorphology, HERNIATED))
    tracking = hd.sr.TrackingIdentifier(uid=uid, identifier=f"{finding.level or ''} {finding.kind} {finding.label}"
                                        .strip()[:64])
    common = dict(tracking_identifier=tracking, finding_type=kind, finding_sites=site, algorithm_id=algorithm_id,
                  measurements=measurements, qualitative_evaluations=evaluations or None)
    referenced = segment_of(segment_number) if segment_of is not None and segment_number else None
    if referenced is not None:
        group, reference = referenced
        return group(referenced_segment=reference, **common)
    return hd.sr.MeasurementsAndQualitativeEvaluations(**common)


def build_sr(results: Results, sources, seg=None) -> hd.sr.Comprehensive3DSR | hd.sr.ComprehensiveSR:
    """`sources`: the analysed series' datasets (a radiograph: its one image); `seg`: the DICOM SEG
    of the same results. A radiograph's SR is a Comprehensive SR with 2D image coordinates."""
    series_uid = str(sources[0].SeriesInstanceUID)
    projection = results.modality == "xr"
    if projection:
        locate, segment_of = image_coordinates(results, sources[0]), seg and image_segment(seg, sources[0])
    else:
        locate, segment_of = volume_coordinates(str(sources[0].FrameOfReferenceUID)), seg and volume_segment(seg)
    key = bundles_key(results.bundles)
    names = bundle_names(results.bundles)
    algorithm_id = hd.sr.AlgorithmIdentification(
        name=names[:64], version=SOFTWARE_VERSION,
        parameters=[str(b.get("clinical_use", ""))[:64] for b in results.bundles if b.get("clinical_use")] or None)
    number_of = {s.value: n for n, s in enumerate(results.segments, start=1)}
    groups = [vertebra_group(row, derived_uid(series_uid, key, "vertebra", str(n)), locate, algorithm_id)
              for n, row in enumerate(results.vertebrae)]
    for n, finding in enumerate(results.findings):
        source = hd.sr.AlgorithmIdentification(name=", ".join(finding.source)[:64] or names[:64],
                                               version=SOFTWARE_VERSION)
        groups.append(finding_group(finding, derived_uid(series_uid, key, "finding", str(n)), segment_of,
                                    number_of.get(finding.segment_value), source))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", key), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
            model_name=names[:64]))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE.get(results.modality, codes.LN.CTUnspecifiedBodyRegion),
        imaging_measurements=groups or None)
    evidence = list(sources) + ([seg] if seg is not None else [])
    title = "SpineFractureAI measurements" + (" - NOT FOR CLINICAL USE" if not_for_clinical_use(results.bundles) else "")
    document = hd.sr.ComprehensiveSR if projection else hd.sr.Comprehensive3DSR
    return document(
        evidence=evidence, content=report, series_instance_uid=derived_uid(series_uid, key, "sr-series"),
        series_number=9802, sop_instance_uid=derived_uid(series_uid, key, "sr-instance"), instance_number=1,
        manufacturer=MANUFACTURER, series_description=title[:64],
        content_qualification=research_or_product(results.bundles), coding_schemes=[PRIVATE_SCHEME_ITEM])
