"""The module panel's behaviour: inputs, Analyze/Cancel, progress, results table, reviews,
report and training-label export. Imported only inside Slicer (or with its Qt stubbed in tests);
the module file just loads the .ui and hands its widgets to a Panel."""
from __future__ import annotations

import qt
import slicer

from ..bundles import available_devices, describe_bundles
from .dependencies import install_in_slicer, missing_requirements
from .parameters import MODALITIES, PanelParameters
from .scene import previous_results_edited
from .table_model import COLUMNS, ResultsTable, status_text
from .worker_client import WorkerClient, slicer_python

CHECKBOXES = {"fractures": "fracturesCheckBox", "levels": "levelsCheckBox", "lumbar": "lumbarCheckBox",
              "keypoints": "keypointMorphometryCheckBox"}  # analyses (bundles.ANALYSES) -> their boxes


class Panel:
    def __init__(self, ui, make_logic):
        """ui: the .ui file's widgets by name; make_logic(bundle_paths, device, thresholds, analyses,
        worker) -> the module logic. One worker process serves every click (weights load once)."""
        self.ui, self.make_logic = ui, make_logic
        self.worker = WorkerClient(slicer_python())
        self.ui.workerLogTextEdit.visible = False
        self.ui.workerLogButton.connect("clicked(bool)", self.onShowWorkerLog)
        self.ui.deviceComboBox.addItems(["auto", "cpu", "cuda"])
        self.ui.modalityComboBox.addItems(list(MODALITIES))
        self.ui.resultsTable.connect("cellClicked(int,int)", self.onRowClicked)
        self.ui.acceptButton.connect("clicked(bool)", lambda: self.onReview("accepted"))
        self.ui.rejectButton.connect("clicked(bool)", lambda: self.onReview("rejected"))
        self.ui.reportButton.connect("clicked(bool)", self.onSaveReport)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.table = None
        self.ui.bundlePathLineEdit.connect("currentPathChanged(QString)", self.updateBundleInfo)
        params = PanelParameters.load(slicer.mrmlScene)  # a reloaded scene restores the panel
        self.ui.bundlePathLineEdit.currentPath = params.bundle_path
        self.ui.deviceComboBox.setCurrentText(params.device)
        self.ui.modalityComboBox.setCurrentText(params.modality)
        self.ui.confidenceSlider.value = params.fracture_confidence
        chosen = params.analyses.split(",")
        for name, box in CHECKBOXES.items():
            getattr(self.ui, box).checked = name in chosen
        if params.input_volume is not None:
            self.ui.inputVolumeSelector.setCurrentNode(params.input_volume)
        self.updateBundleInfo()
        self.ui.analyzeButton.connect("clicked(bool)", self.onAnalyze)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButtons)
        self.run = None  # the BackgroundRun in progress, if any
        self.timer = qt.QTimer()
        self.timer.timeout.connect(self.onPoll)
        self.updateButtons()

    def updateBundleInfo(self, *_):

        self.ui.bundleInfoLabel.text = describe_bundles(self.ui.bundlePathLineEdit.currentPath.strip())
        self.ui.deviceComboBox.toolTip = available_devices()

    def updateButtons(self, *_):
        self.ui.analyzeButton.enabled = self.ui.inputVolumeSelector.currentNode() is not None

    def onAnalyze(self):
        if self.run is not None and self.run.status.busy:  # the button reads "Cancel" now
            self.run.cancel()
            return
        missing = missing_requirements()
        if missing and not install_in_slicer(missing):  # asks first; torch via the PyTorch extension
            self.ui.statusLabel.text = "Missing: " + ", ".join(name for name, _, _ in missing)
            return
        node = self.ui.inputVolumeSelector.currentNode()

        edited = previous_results_edited(slicer.mrmlScene, node)
        if edited and not slicer.util.confirmOkCancelDisplay(
                f"You edited {', '.join(edited)} of the previous results. Replace them?"):
            return
        bundle = self.ui.bundlePathLineEdit.currentPath.strip()
        analyses = [name for name, box in CHECKBOXES.items() if getattr(self.ui, box).checked]
        self.params = PanelParameters(bundle, self.ui.deviceComboBox.currentText, self.ui.modalityComboBox.currentText,
                                      float(self.ui.confidenceSlider.value), ",".join(analyses),
                                      input_volume=self.ui.inputVolumeSelector.currentNode())
        self.params.save(slicer.mrmlScene)
        self.logic = logic = self.make_logic([bundle] if bundle else None, self.ui.deviceComboBox.currentText,
                                             {"fracture_confidence": float(self.ui.confidenceSlider.value)},
                                             tuple(analyses), self.worker)
        with slicer.util.tryWithErrorDisplay("Could not start the analysis.", waitCursor=True):
            self.run = logic.analyze_async(self.ui.inputVolumeSelector.currentNode(),
                                           self.ui.modalityComboBox.currentText)
            self.timer.start(100)

    def onPoll(self):
        """Main thread: drain progress, apply finished results to the scene, update the panel."""
        status = self.run.poll()
        self.ui.analyzeButton.text = status.button_text
        self.ui.progressBar.value = int(100 * status.fraction)
        self.ui.statusLabel.text = status.stage if status.busy else status.message
        if status.busy:
            return
        self.timer.stop()
        if status.state.value == "done":
            outputs, results = status.result
            self.ui.statusLabel.text = status_text(results, status.elapsed_s)
            self.ui.statusLabel.setStyleSheet("color: #b00000" if results.warnings else "")
            self.showTable(ResultsTable(outputs, results))
            self.params.segmentation, self.params.table = outputs.segmentation, outputs.table
            self.params.save(slicer.mrmlScene)
        elif status.state.value == "failed":
            self.onShowWorkerLog(show=True)
            slicer.util.errorDisplay(f"Spine analysis failed: {status.message}")

    def onShowWorkerLog(self, *_, show: bool | None = None):
        """The worker process's log (what the models printed, a crash's traceback) under the table."""
        box = self.ui.workerLogTextEdit
        box.visible = (not box.visible) if show is None else show
        box.setPlainText(self.worker.log_tail(20000) or f"(no worker log yet: {self.worker.log_path})")

    def showTable(self, table):
        """Warning rows (first, red) and then findings and vertebrae."""
        self.table, widget = table, self.ui.resultsTable
        widget.setColumnCount(len(COLUMNS))
        widget.setHorizontalHeaderLabels(list(COLUMNS))
        widget.setRowCount(len(table.rows))
        for r in range(len(table.rows)):
            for c in range(len(COLUMNS)):
                item = qt.QTableWidgetItem(table.cell(r, c))
                if table.rows[r].kind == "warning":
                    item.setForeground(qt.QBrush(qt.QColor("#b00000")))
                widget.setItem(r, c, item)

    def onRowClicked(self, row, column=0):
        centre, roi = self.table.target(row)
        markups = slicer.modules.markups.logic()
        if centre is not None:
            markups.JumpSlicesToLocation(*centre, True)
        if roi is not None:
            markups.SetActiveList(roi)  # selects the finding's ROI for editing

    def onReview(self, choice):
        row = self.ui.resultsTable.currentRow()
        if self.table is None or row < 0 or self.table.rows[row].roi_node is None:
            return
        self.table.set_review(row, choice)
        self.ui.resultsTable.setItem(row, COLUMNS.index("review"), qt.QTableWidgetItem(choice))

    def onSaveReport(self):
        folder = qt.QFileDialog.getExistingDirectory(None, "Save the report in")
        if folder and self.run is not None and self.run.status.state.value == "done":
            with slicer.util.tryWithErrorDisplay("Could not save the report."):
                paths = self.logic.save_report(self.params.input_volume, self.run.status.result[1], folder)
                dicom = " + DICOM SEG and SR" if "dicom_seg" in paths else ""
                self.ui.statusLabel.text = f"Report: {paths['report']}{dicom}"

    def onExport(self):
        folder = qt.QFileDialog.getExistingDirectory(None, "Append training labels to dataset folder")
        if folder and self.params.segmentation is not None:
            with slicer.util.tryWithErrorDisplay("Could not export training labels."):
                entry = self.logic.export_training_labels(self.params.input_volume, self.params.segmentation, folder)
                self.ui.statusLabel.text = f"Exported {entry['images']} slices ({entry['instances']} bodies) to {folder}"

    def cleanup(self):
        if self.run is not None:
            self.run.cancel()
        self.timer.stop()
        self.worker.stop()
