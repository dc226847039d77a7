"""Stand-ins for the parts of Slicer that slicer-core lacks: qt, ScriptedLoadableModule, loadUI.

Only the GUI layer is stubbed; the MRML scene is slicer-core's real one. Widgets are created
from the names in the real .ui file, so a name the module uses but the .ui lacks fails here.
"""
from __future__ import annotations

import contextlib
import sys
import types
import unittest
import xml.etree.ElementTree as ET


class Signal:
    def __init__(self):
        self.slots = []

    def connect(self, slot):
        self.slots.append(slot)

    def emit(self, *args):
        for slot in self.slots:
            slot(*args)


class QTimer:
    def __init__(self):
        self.timeout, self.active = Signal(), False

    def start(self, ms=0):
        self.active = True

    def stop(self):
        self.active = False


class FakeWidget:
    """Any .ui widget: plain attributes plus the few methods the module calls."""

    def __init__(self, name, cls):
        self.name, self.cls = name, cls
        self.text, self.value, self.enabled, self.currentPath, self.currentText = "", 0, True, "", "auto"
        self.items, self.signals, self._node, self.scene, self.toolTip = [], {}, None, None, ""
        self.checked, self.visible = False, True

    def setPlainText(self, text):
        self.text = text

    def connect(self, signal, slot):
        self.signals.setdefault(signal, []).append(slot)

    def click(self):
        for slot in self.signals.get("clicked(bool)", []):
            slot()

    def setCurrentText(self, text):
        self.currentText = text

    def addItems(self, items):
        self.items += list(items)
        self.currentText = self.items[0]

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node):
        self._node = node
        for slot in self.signals.get("currentNodeChanged(vtkMRMLNode*)", []):
            slot(node)

    def setMRMLScene(self, scene):
        self.scene = scene

    def setStyleSheet(self, sheet):
        self.styleSheet = sheet

    # QTableWidget
    def setColumnCount(self, n):
        self.columns = n

    def setHorizontalHeaderLabels(self, labels):
        self.headers = labels

    def setRowCount(self, n):
        self.cells = {}
        self.rows, self.current = n, -1

    def setItem(self, r, c, item):
        self.cells[(r, c)] = item.text

    def currentRow(self):
        return self.current

    def clickCell(self, r, c=0):
        self.current = r
        for slot in self.signals.get("cellClicked(int,int)", []):
            slot(r, c)


class QTableWidgetItem:
    def __init__(self, text):
        self.text, self.foreground = text, None

    def setForeground(self, brush):
        self.foreground = brush


class MarkupsLogic:
    jumps: list = []
    active: list = []

    def JumpSlicesToLocation(self, x, y, z, centred):
        MarkupsLogic.jumps.append((x, y, z))

    def SetActiveList(self, node):
        MarkupsLogic.active.append(node)


def _sample_data_stub(scene):
    """SampleData's registration and download, reading the file:// URI like Slicer would."""
    import hashlib
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from SpineFractureAILib.slicer.scene import add_volume_node
    from SpineFractureAILib.volume import read_volume

    sources = {}

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kw):
            sources[kw["sampleName"]] = kw

    def download_sample(name):
        kw = sources[name]
        path = url2pathname(urlparse(kw["uris"]).path)
        algorithm, digest = kw["checksums"].split(":")
        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == digest, "checksum mismatch"
        volume = read_volume(path)
        volume.name = kw["nodeNames"]
        return add_volume_node(scene, volume)

    return types.SimpleNamespace(SampleDataLogic=SampleDataLogic, downloadSample=download_sample)


def install(scene):
    """Put the stubs in place (returns the created widgets by name after loadUI)."""
    import slicer

    created = {}

    def load_ui(path):
        root = FakeWidget("root", "qMRMLWidget")
        for w in ET.parse(path).iter("widget"):
            created[w.get("name")] = FakeWidget(w.get("name"), w.get("class"))
        return root

    qt = types.ModuleType("qt")
    qt.QTimer = QTimer
    qt.QTableWidgetItem = QTableWidgetItem
    qt.QColor = lambda name: name
    qt.QBrush = lambda colour: ("brush", colour)
    qt.QFileDialog = types.SimpleNamespace(getExistingDirectory=lambda *a: created.get("_folder", ""))
    slicer.modules = types.SimpleNamespace(markups=types.SimpleNamespace(logic=lambda: MarkupsLogic()))
    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

        def setup(self):
            self.layout = types.SimpleNamespace(addWidget=lambda w: None)

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            pass

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=0):
            print(message)

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(slm, cls.__name__, cls)
    sys.modules["qt"] = qt
    sys.modules["SampleData"] = _sample_data_stub(scene)
    sys.modules["slicer.ScriptedLoadableModule"] = slm
    slicer.ScriptedLoadableModule = slm
    slicer.mrmlScene = scene
    slicer.util.loadUI = load_ui
    slicer.util.childWidgetVariables = lambda root: types.SimpleNamespace(**created)
    slicer.util.errorDisplay = lambda text, **kw: created.setdefault("_errors", []).append(text)
    slicer.util.confirmOkCancelDisplay = lambda text, **kw: created.setdefault("_asked", []).append(text) or True

    @contextlib.contextmanager
    def try_with_error_display(message=None, waitCursor=False):
        yield

    slicer.util.tryWithErrorDisplay = try_with_error_display
    return created
