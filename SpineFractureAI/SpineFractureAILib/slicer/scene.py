"""Results -> MRML scene (real Slicer or slicer-core): segmentation, ROIs, table, hierarchy.

Uses only MRML classes (no slicer.app, no Qt), so the same code runs in Slicer and in tests.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..files import roi_name
from ..results import Results
from ..terminology import terminology_entry
from ..volume import Volume, detect_modality
from .scene_morphometry import MorphometryScene

RESULT_ATTRIBUTE = "SpineFractureAI.ResultOf"  # set on every node we create: input volume node ID
VOXELS_ATTRIBUTE = "SpineFractureAI.SegmentVoxels"  # voxel count per segment as analysed (edit detection)


def _slicer():
    import slicer  # Slicer's own module, or slicer-core's meta-package headless

    return slicer


def _vtk_matrix(array: np.ndarray):
    import vtk

    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def _numpy_matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def volume_from_node(node, modality: str = "auto") -> Volume:
    """A Volume sharing no memory with the node (Slicer may change the node meanwhile)."""
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    image = node.GetImageData()
    if image is None:
        raise ValueError(f"volume node {node.GetName()} has no image data")
    dims = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise ValueError(f"{node.GetName()}: {scalars.GetNumberOfComponents()} components per voxel;"
                         " only scalar volumes can be analysed")
    voxels = vtk_to_numpy(scalars).reshape(dims[::-1]).copy()
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    volume = Volume(voxels, _numpy_matrix(m), "unknown", node.GetName())
    if voxels.shape[0] == 1:  # a single-slice node: a radiograph, its spacing as Slicer holds it
        volume.metadata.update({"pixel_spacing_mm": float(node.GetSpacing()[0]),
                                "spacing_source": "the volume node's spacing"})
    volume.modality = detect_modality(volume) if modality == "auto" else modality
    return volume


def dicom_source_files(node, file_for_instance) -> list[str]:
    """The DICOM files a volume node was loaded from (Slicer's "DICOM.instanceUIDs" attribute, looked
    up with e.g. slicer.dicomDatabase.fileForInstance), or [] when it did not come from DICOM or a
    file is gone (then no DICOM SEG/SR can reference it)."""
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids or file_for_instance is None:
        return []
    files = [file_for_instance(uid) or "" for uid in uids]
    return files if all(f and os.path.isfile(f) for f in files) else []


def add_volume_node(scene, volume: Volume, labelmap: bool = False):
    """Add a (label)map volume node for a Volume; used by tests and the CLI inside Slicer."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, volume.name)
    image = vtk.vtkImageData()
    k, j, i = volume.voxels.shape
    image.SetDimensions(i, j, k)
    array = numpy_to_vtk(np.ascontiguousarray(volume.voxels).ravel(), deep=True)
    image.GetPointData().SetScalars(array)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASMatrix(_vtk_matrix(volume.ijk_to_ras))
    return node


@dataclass
class SceneOutputs:
    segmentation: object
    rois: list = field(default_factory=list)
    table: object = None
    folder_item: int = 0
    morphometry: object = None  # MorphometryScene: editable six-point markups + vertebrae table


def write_results_to_scene(scene, volume_node, results: Results) -> SceneOutputs:
    slicer = _slicer()
    name = volume_node.GetName()
    seg_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{name} spine findings")
    seg_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    seg_node.SetAttribute(RESULT_ATTRIBUTE, volume_node.GetID())
    segmentation = seg_node.GetSegmentation()
    if results.labelmap.any():
        label_node = add_volume_node(scene, Volume(results.labelmap.astype(np.int16), results.ijk_to_ras,
                                                   name="tmp labels"), labelmap=True)
        slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label_node, seg_node)
        scene.RemoveNode(label_node)
    seg_node.SetAttribute(VOXELS_ATTRIBUTE, json.dumps(
        {seg.name: int((results.labelmap == seg.value).sum()) for seg in results.segments}))
    imported = {}
    for n in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(n)
        imported[int(segment.GetLabelValue())] = segmentation.GetNthSegmentID(n)
    for seg in results.segments:
        segment_id = imported.get(seg.value) or segmentation.AddEmptySegment(f"Segment_{seg.value}")
        segment = segmentation.GetSegment(segment_id)
        segment.SetName(seg.name)
        segment.SetColor(*seg.color)
        if seg.code:
            segment.SetTag("TerminologyEntry", terminology_entry(seg))
    outputs = SceneOutputs(seg_node)
    for n, finding in enumerate(results.findings):
        roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", roi_name(finding))
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(finding.roi.axes_ras).T
        matrix[:3, 3] = finding.roi.center_ras
        roi.SetAndObserveObjectToNodeMatrix(_vtk_matrix(matrix))
        roi.SetSize(*finding.roi.size_mm)
        roi.SetAttribute(RESULT_ATTRIBUTE, volume_node.GetID())
        roi.SetAttribute("SpineFractureAI.Finding", json.dumps(finding.to_json()))
        outputs.rois.append(roi)
    outputs.table = _findings_table(scene, name, results, volume_node.GetID())
    extra = []
    if results.vertebrae:
        outputs.morphometry = MorphometryScene(scene, results.vertebrae, name, (RESULT_ATTRIBUTE, volume_node.GetID()))
        extra = outputs.morphometry.nodes()
    outputs.folder_item = _place_in_hierarchy(scene, volume_node, [seg_node, *outputs.rois, outputs.table, *extra])
    return outputs


TABLE_COLUMNS = ("kind", "level", "finding", "confidence", "center_R", "center_A", "center_S", "roi")


def _findings_table(scene, name: str, results: Results, volume_id: str):
    import vtk

    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} spine findings table")
    table_node.SetAttribute(RESULT_ATTRIBUTE, volume_id)
    table = table_node.GetTable()
    for column in TABLE_COLUMNS:
        array = vtk.vtkDoubleArray() if column.startswith(("confidence", "center")) else vtk.vtkStringArray()
        array.SetName(column)
        table.AddColumn(array)
    table.SetNumberOfRows(len(results.findings))
    for r, f in enumerate(results.findings):
        values = (f.kind, f.level or "", f.label, f.confidence, *f.roi.center_ras, roi_name(f))
        for c, value in enumerate(values):
            table.SetValue(r, c, vtk.vtkVariant(value))
    table.Modified()
    return table_node


def _place_in_hierarchy(scene, volume_node, nodes) -> int:
    """A results folder beside the input volume, under its study when it has one."""
    slicer = _slicer()
    sh = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    if sh is None:
        return 0
    volume_item = sh.GetItemByDataNode(volume_node)
    parent = sh.GetItemParent(volume_item) if volume_item else sh.GetSceneItemID()
    folder = sh.CreateFolderItem(parent, f"{volume_node.GetName()} - SpineFractureAI")
    sh.SetItemAttribute(folder, RESULT_ATTRIBUTE, volume_node.GetID())
    for node in nodes:
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, folder)
        else:  # headless MRML has no plugin that creates items as nodes are added
            sh.CreateItem(folder, node)
    return folder


def segmentation_to_labelmap(scene, seg_node, volume_node) -> tuple[np.ndarray, dict[int, str]]:
    """The segmentation as it is now (edits included) on the volume's grid: (labelmap, {value: name})."""
    import vtk

    slicer = _slicer()
    segmentation = seg_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    names = {}
    for n in range(segmentation.GetNumberOfSegments()):
        ids.InsertNextValue(segmentation.GetNthSegmentID(n))
        names[n + 1] = segmentation.GetNthSegment(n).GetName()
    label_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__export__")
    try:
        if ids.GetNumberOfValues():
            slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(seg_node, ids, label_node, volume_node)
            voxels = volume_from_node(label_node, "labelmap").voxels
        else:
            voxels = np.zeros(volume_from_node(volume_node, "labelmap").voxels.shape, np.uint16)
    finally:
        scene.RemoveNode(label_node)
    return voxels, names


def edited_segments(seg_node, labelmap: np.ndarray, names: dict[int, str]) -> list[str]:
    """Segments whose voxel count differs from the analysis' (or that were added or removed)."""
    original = json.loads(seg_node.GetAttribute(VOXELS_ATTRIBUTE) or "{}")
    now = {name: int((labelmap == value).sum()) for value, name in names.items()}
    return sorted(n for n in set(original) | set(now) if original.get(n) != now.get(n))


def previous_results_edited(scene, volume_node) -> list[str]:
    """Segments of this volume's earlier result segmentation that the user has edited since."""
    for n in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
        node = scene.GetNthNodeByClass(n, "vtkMRMLSegmentationNode")
        if node.GetAttribute(RESULT_ATTRIBUTE) == volume_node.GetID():
            labelmap, names = segmentation_to_labelmap(scene, node, volume_node)
            return edited_segments(node, labelmap, names)
    return []


def remove_previous_results(scene, volume_node) -> int:
    """Remove the nodes (and their display nodes and hierarchy folder) an earlier analysis of
    this volume created; returns how many data nodes were removed."""
    import vtk

    slicer = _slicer()
    sh = slicer.vtkMRMLSubjectHierarchyNode.ResolveSubjectHierarchy(scene)
    removed = 0
    for cls in ("vtkMRMLSegmentationNode", "vtkMRMLMarkupsROINode", "vtkMRMLTableNode",
                "vtkMRMLMarkupsFiducialNode", "vtkMRMLMarkupsLineNode"):
        for n in range(scene.GetNumberOfNodesByClass(cls) - 1, -1, -1):
            node = scene.GetNthNodeByClass(n, cls)
            if node.GetAttribute(RESULT_ATTRIBUTE) != volume_node.GetID():
                continue
            displays = node.GetNumberOfDisplayNodes() if hasattr(node, "GetNumberOfDisplayNodes") else 0
            for d in range(displays - 1, -1, -1):
                if node.GetNthDisplayNode(d) is not None:
                    scene.RemoveNode(node.GetNthDisplayNode(d))
            item = sh.GetItemByDataNode(node) if sh else 0
            if item:
                sh.RemoveItem(item, True, False)  # the item and its data node, kept in step
            else:
                scene.RemoveNode(node)
            removed += 1
    if sh:
        children = vtk.vtkIdList()
        sh.GetItemChildren(sh.GetSceneItemID(), children, True)
        folders = [children.GetId(i) for i in range(children.GetNumberOfIds())
                   if sh.GetItemAttribute(children.GetId(i), RESULT_ATTRIBUTE) == volume_node.GetID()]
        for item in folders:
            sh.RemoveItem(item, False, True)
    return removed
