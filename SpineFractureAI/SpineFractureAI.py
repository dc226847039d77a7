"""SpineFractureAI: the Slicer module shell. The work lives in SpineFractureAILib."""
import os
import sys

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

sys.path.insert(0, os.path.dirname(__file__))  # SpineFractureAILib lives beside this file

from SpineFractureAILib.paths import resource  # noqa: E402


class SpineFractureAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "Spine Fracture AI"
        parent.categories = ["Segmentation"]
        parent.contributors = ["SpineFractureAI developers"]
        parent.helpText = ("Finds and explains vertebral fractures on CT: sagittal YOLOv8-seg (fracture type), "
                           "fused into 3D segments and ROIs. Demo weights are NOT FOR CLINICAL USE.")
        parent.acknowledgementText = "Built on Ultralytics YOLO, timm, segmentation-models-pytorch and 3D Slicer."


class SpineFractureAIWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        ui_widget = slicer.util.loadUI(str(resource("UI", "SpineFractureAI.ui")))
        self.layout.addWidget(ui_widget)
        ui_widget.setMRMLScene(slicer.mrmlScene)
        from SpineFractureAILib.slicer.panel import Panel

        self.panel = Panel(slicer.util.childWidgetVariables(ui_widget),
                           lambda *args: SpineFractureAILogic(*args))

    def cleanup(self):
        self.panel.cleanup()


def _dicom_file_for(sop_instance_uid: str) -> str:
    """The file of a DICOM instance in Slicer's DICOM database ("" without one)."""
    database = getattr(slicer, "dicomDatabase", None)
    return database.fileForInstance(sop_instance_uid) if database else ""


class SpineFractureAILogic(ScriptedLoadableModuleLogic):
    """Slicer's logic object around the library's (imported late: torch may not be installed yet)."""

    def __init__(self, bundle_paths=None, device="auto", thresholds=None, analyses=None, worker=None):
        ScriptedLoadableModuleLogic.__init__(self)
        from SpineFractureAILib.slicer.logic import SpineFractureLogic

        self.core = SpineFractureLogic(slicer.mrmlScene, bundle_paths, device, thresholds, analyses,
                                       dicom_file_for=_dicom_file_for, worker=worker)

    def __getattr__(self, name):
        return getattr(self.core, name)


class SpineFractureAITest(ScriptedLoadableModuleTest):
    """Runs the real logic on a phantom with a known L1 wedge fracture and checks it against truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_wedge_fracture_found_at_L1()

    def test_wedge_fracture_found_at_L1(self):
        import SampleData
        from SpineFractureAILib.slicer.sample_data import SAMPLE_NAME, register_sample

        truth = register_sample(SampleData)  # a local file:// sample: no network
        volume_node = SampleData.downloadSample(SAMPLE_NAME)
        self.assertIsNotNone(volume_node)
        outputs, results = SpineFractureAILogic().analyze(volume_node)
        l1 = next(v for v in truth["vertebrae"] if v["level"] == "L1")
        wedges = [f for f in results.findings if f.label == "wedge" and f.roi.contains(l1["center_ras"])]
        self.assertTrue(wedges, "no wedge ROI contains the true L1 centre")
        self.assertEqual(len(outputs.rois), len(results.findings))
        segmentation = outputs.segmentation.GetSegmentation()
        names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
        self.assertTrue(any(n.endswith(("Wedge fracture", "wedge fracture")) for n in names), names)
        self.delayDisplay("SpineFractureAI self-test passed")
