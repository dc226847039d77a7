"""The result segmentation as a DICOM SEG (highdicom) on the source series: same Frame of
Reference, each frame referencing its source image (a radiograph: its one image, which has no
Frame of Reference), one segment per result segment with the
result's SNOMED CT codes, the bundles as the algorithm."""
from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from ..results import Results, Segment
from ..volume import LPS_TO_RAS
from .dicom_uids import derived_uid

MANUFACTURER = "SpineFractureAI"
SOFTWARE_VERSION = "0.1.0"
# A segment without a standard code (a class a user bundle adds) still needs one: this project's
# private scheme (DICOM PS3.16 8.2: private schemes start with 99).
PRIVATE_SCHEME = "99SPINEAI"


PRIVATE_SCHEME_ITEM = hd.coding_schemes.CodingSchemeIdentificationItem(
    designator=PRIVATE_SCHEME, name="SpineFractureAI local codes", responsible_organization="SpineFractureAI")


class DicomReferenceError(ValueError):
    """The result's grid does not match the source series' images."""


def coded(code) -> hd.sr.CodedConcept:
    scheme, value, meaning = code
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def not_for_clinical_use(bundles: list[dict]) -> bool:
    return any(str(b.get("clinical_use", "")).upper().startswith("NOT FOR CLINICAL USE") for b in bundles)


def research_or_product(bundles: list[dict]) -> hd.ContentQualificationValues:
    """RESEARCH where a bundle says it is not for clinical use (the demo bundles do)."""
    return hd.ContentQualificationValues.RESEARCH if not_for_clinical_use(bundles) else hd.ContentQualificationValues.PRODUCT


def bundle_names(bundles: list[dict]) -> str:
    """"name version, ..." of the bundles that ran (the algorithm's name in the SEG and the SR)."""
    return ", ".join(f"{b['name']} {b.get('version', '')}".strip() for b in bundles) or MANUFACTURER


def algorithm(bundles: list[dict]) -> hd.AlgorithmIdentificationSequence:
    names = bundle_names(bundles)
    return hd.AlgorithmIdentificationSequence(
        name=names[:64], version=SOFTWARE_VERSION, family=codes.cid7162.ArtificialIntelligence,
        source=MANUFACTURER, parameters={b["name"][:64]: str(b.get("clinical_use", ""))[:64] for b in bundles} or None)


def bundles_key(bundles: list[dict]) -> str:
    return "|".join(sorted(f"{b.get('name')}:{b.get('version')}:{b.get('sha256', '')}" for b in bundles))


def frames_in_source_order(results: Results, sources) -> np.ndarray:
    """The labelmap's slices in the order of `sources`: each source image is matched to the slice
    whose origin (LPS) it has, and its in-plane axes checked against the grid's."""
    lps = LPS_TO_RAS @ results.ijk_to_ras
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    rows, cols = results.labelmap.shape[1:]
    order = []
    for ds in sources:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise DicomReferenceError(f"source image {ds.SOPInstanceUID}: {ds.Rows}x{ds.Columns}, the result "
                                      f"grid {rows}x{cols}")
        iop = np.asarray(ds.ImageOrientationPatient, float)
        if not (np.allclose(iop[:3], lps[:3, 0] / spacing[0], atol=1e-3)
                and np.allclose(iop[3:], lps[:3, 1] / spacing[1], atol=1e-3)):
            raise DicomReferenceError("the source images' orientation is not the result grid's")
        k = np.linalg.solve(lps[:3, :3], np.asarray(ds.ImagePositionPatient, float) - lps[:3, 3])
        if np.abs(k[:2]).max() > 0.01 or abs(k[2] - round(k[2])) > 0.05 or not 0 <= round(k[2]) < results.labelmap.shape[0]:
            raise DicomReferenceError(f"source image {ds.SOPInstanceUID} at {list(ds.ImagePositionPatient)} "
                                      "lies on no slice of the result grid")
        order.append(int(round(k[2])))
    if len(set(order)) != len(order):
        raise DicomReferenceError("two source images lie on the same slice")
    return results.labelmap[order]


def projection_frame(results: Results, sources) -> np.ndarray:
    """A radiograph's labelmap ([1, rows, cols]) as the one frame of its one source image, which has
    no patient position to match: its size must be the labelmap's."""
    if len(sources) != 1:
        raise DicomReferenceError(f"a radiograph's result comes from one image, not {len(sources)}")
    rows, cols = results.labelmap.shape[1:]
    if (int(sources[0].Rows), int(sources[0].Columns)) != (rows, cols):
        raise DicomReferenceError(f"source image {sources[0].SOPInstanceUID}: {sources[0].Rows}x{sources[0].Columns}, "
                                  f"the result grid {rows}x{cols}")
    return results.labelmap[:1]


def segment_description(number: int, segment: Segment, bundles: list[dict]) -> hd.seg.SegmentDescription:
    code = segment.code or {}
    category = code.get("category") or (PRIVATE_SCHEME, "result", "SpineFractureAI result")
    kind = code.get("type") or (PRIVATE_SCHEME, segment.name.lower().replace(" ", "-")[:16], segment.name)
    region = code.get("region")
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=segment.name[:64],
        segmented_property_category=coded(category), segmented_property_type=coded(kind),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm(bundles),
        anatomic_regions=[coded(region)] if region else None)


def build_seg(results: Results, sources) -> hd.seg.Segmentation:
    """`sources`: the pydicom datasets of the analysed series (pixel data not needed)."""
    frames = projection_frame(results, sources) if results.modality == "xr" else frames_in_source_order(results, sources)
    lut = np.zeros(max([s.value for s in results.segments] + [int(frames.max()), 0]) + 1, np.uint16)
    for number, segment in enumerate(results.segments, start=1):
        lut[segment.value] = number
    labels = lut[frames]
    descriptions = [segment_description(n, s, results.bundles) for n, s in enumerate(results.segments, start=1)]
    series_uid = str(sources[0].SeriesInstanceUID)
    key = bundles_key(results.bundles)
    description = "SpineFractureAI segmentation" + (" - NOT FOR CLINICAL USE" if not_for_clinical_use(results.bundles)
                                                    else "")
    if not descriptions:  # nothing was segmented: one empty segment says so, instead of no SEG
        descriptions = [segment_description(1, Segment(1, "No finding", (0.5, 0.5, 0.5)), results.bundles)]
    seg = hd.seg.Segmentation(
        source_images=list(sources), pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=derived_uid(series_uid, key, "seg-series"),
        series_number=9801, sop_instance_uid=derived_uid(series_uid, key, "seg-instance"), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name="SpineFractureAI", software_versions=SOFTWARE_VERSION,
        device_serial_number="0", content_description=description[:64], content_label="SPINE",
        series_description=description[:64], omit_empty_frames=True,
        content_qualification=research_or_product(results.bundles), coding_schemes=[PRIVATE_SCHEME_ITEM])
    return seg
