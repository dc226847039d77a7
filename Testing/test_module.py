"""The Slicer module file itself: widget flow and the self-test, on slicer-core's real scene."""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import slicer

import slicer_stubs
from SpineFractureAILib.phantom import make_phantom
from SpineFractureAILib.slicer.scene import add_volume_node

MODULE = Path(__file__).resolve().parents[1] / "SpineFractureAI" / "SpineFractureAI.py"


@pytest.fixture()
def module(monkeypatch):
    scene = slicer.vtkMRMLScene()
    saved = {k: getattr(slicer.util, k, None) for k in ("loadUI", "childWidgetVariables", "errorDisplay",
                                                        "tryWithErrorDisplay")}
    widgets = slicer_stubs.install(scene)
    spec = importlib.util.spec_from_file_location("SpineFractureAI", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod, widgets, scene
    for k, v in saved.items():
        if v is not None:
            setattr(slicer.util, k, v)
    for name in ("qt", "slicer.ScriptedLoadableModule", "SampleData"):
        sys.modules.pop(name, None)


def test_widget_analyze_turns_into_cancel_and_shows_the_result(module, tmp_path):
    mod, widgets, scene = module
    widget = mod.SpineFractureAIWidget()
    widget.setup()
    assert widgets["analyzeButton"].enabled is False  # no input yet
    assert "fracture-seg-demo" in widgets["bundleInfoLabel"].text and "NOT FOR CLINICAL USE" in widgets["bundleInfoLabel"].text
    assert widgets["deviceComboBox"].toolTip.startswith("found: cpu")
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=12).image)
    widgets["inputVolumeSelector"].setCurrentNode(node)
    assert widgets["analyzeButton"].enabled is True
    widgets["analyzeButton"].click()
    texts = set()
    deadline = time.time() + 120
    while widget.panel.timer.active and time.time() < deadline:
        widget.panel.onPoll()
        texts.add(widgets["analyzeButton"].text)
        time.sleep(0.05)
    assert "Cancel" in texts and widgets["analyzeButton"].text == "Analyze"
    assert "finding(s) in" in widgets["statusLabel"].text and widgets["progressBar"].value == 100
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    table = widgets["resultsTable"]
    findings = [table.cells[(r, 1)] for r in range(table.rows)]
    first = next(r for r, text in enumerate(findings) if not text.startswith("warning: "))
    assert findings[first] == "wedge fracture"
    # this phantom's levels disagree: the warning heads the table and turns the status line red
    assert all(text.startswith("warning: ") for text in findings[:first])
    assert (widgets["statusLabel"].styleSheet == "color: #b00000") == (first > 0)
    table.clickCell(first)
    assert slicer_stubs.MarkupsLogic.jumps  # the views were centred on the finding
    assert slicer_stubs.MarkupsLogic.active[-1].GetClassName() == "vtkMRMLMarkupsROINode"  # and its ROI selected
    widgets["rejectButton"].click()
    assert table.cells[(first, 5)] == "rejected"
    roi = scene.GetNthNodeByClass(0, "vtkMRMLMarkupsROINode")
    assert roi.GetAttribute("SpineFractureAI.Review") == "rejected"
    from SpineFractureAILib.slicer.parameters import PanelParameters

    saved = PanelParameters.load(scene)  # what a saved scene would restore
    assert saved.input_volume is node and saved.segmentation.GetClassName() == "vtkMRMLSegmentationNode"
    widgets["_folder"] = str(tmp_path)
    widgets["reportButton"].click()
    assert (tmp_path / node.GetName() / "report.html").exists() and "Report:" in widgets["statusLabel"].text
    widgets["exportButton"].click()
    assert (tmp_path / "corrections.json").exists() and "Exported" in widgets["statusLabel"].text
    restored = mod.SpineFractureAIWidget()
    restored.setup()
    assert widgets["inputVolumeSelector"].currentNode() is node


def test_widget_cancel_leaves_the_scene_unchanged(module):
    mod, widgets, scene = module
    widget = mod.SpineFractureAIWidget()
    widget.setup()
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", [], [], seed=13).image)
    widgets["inputVolumeSelector"].setCurrentNode(node)
    before = scene.GetNumberOfNodes()
    widgets["analyzeButton"].click()
    widgets["analyzeButton"].click()  # second click = Cancel
    deadline = time.time() + 30
    while widget.panel.timer.active and time.time() < deadline:
        widget.panel.onPoll()
        time.sleep(0.05)
    assert "cancelled" in widgets["statusLabel"].text and scene.GetNumberOfNodes() == before


def test_module_self_test_runs_the_real_logic(module):
    mod, _, _ = module
    result = mod.SpineFractureAITest("runTest").run()
    assert result.wasSuccessful(), result.failures + result.errors
    assert result.testsRun == 1


def test_widget_keeps_one_worker_across_clicks_and_saves_the_keypoint_choice(module):
    mod, widgets, scene = module
    widget = mod.SpineFractureAIWidget()
    widget.setup()
    node = add_volume_node(scene, make_phantom("T12-L2", "ct", ["L1:wedge:3"], [], seed=14).image)
    widgets["inputVolumeSelector"].setCurrentNode(node)
    widgets["keypointMorphometryCheckBox"].checked = True
    for _ in range(2):
        widgets["analyzeButton"].click()
        deadline = time.time() + 180
        while widget.panel.timer.active and time.time() < deadline:
            widget.panel.onPoll()
            time.sleep(0.05)
        assert widget.panel.run.status.state.value == "done", widget.panel.run.status.message
    assert widget.panel.worker.starts == 1  # the second click found the weights loaded
    assert any(r["method"] == "keypoints" for r in widget.panel.run.status.result[1].vertebrae)
    assert widgets["workerLogTextEdit"].visible is False
    widgets["workerLogButton"].click()
    assert widgets["workerLogTextEdit"].visible and "worker start" in widgets["workerLogTextEdit"].text
    widget.cleanup()
    assert not widget.panel.worker.alive
    widgets["keypointMorphometryCheckBox"].checked = False
    mod.SpineFractureAIWidget().setup()  # a reloaded scene restores the choice
    assert widgets["keypointMorphometryCheckBox"].checked is True
