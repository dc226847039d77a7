"""The panel's typed parameters, stored in a scripted-module node so a saved scene restores them.

Slicer's @parameterNodeWrapper does the same inside Slicer; this plain dataclass works on any MRML
scene (slicer-core included), validates itself, and keeps node references as references."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..bundles import parse_analyses

NODE_NAME = "SpineFractureAI"
DEVICES = ("auto", "cpu", "cuda", "mps")
MODALITIES = ("auto", "ct", "mr", "xr")
REFERENCES = {"input_volume": "InputVolume", "segmentation": "ResultSegmentation", "table": "ResultTable"}


@dataclass
class PanelParameters:
    bundle_path: str = ""
    device: str = "auto"
    modality: str = "auto"
    fracture_confidence: float = 0.6
    analyses: str = "fractures,levels,lumbar"  # comma-separated keys of bundles.ANALYSES
    input_volume: object = None
    segmentation: object = None
    table: object = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, not {self.device!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, not {self.modality!r}")
        parse_analyses(self.analyses)
        if not 0.0 <= float(self.fracture_confidence) <= 1.0:
            raise ValueError("fracture_confidence must be between 0 and 1")

    @staticmethod
    def node(scene):
        """The scene's parameter node (created on first use)."""
        node = scene.GetFirstNode(NODE_NAME, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", NODE_NAME)
            node.SetAttribute("ModuleName", NODE_NAME)
        return node

    def save(self, scene) -> None:
        node = self.node(scene)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in REFERENCES:
                node.SetNodeReferenceID(REFERENCES[f.name], value.GetID() if value is not None else None)
            else:
                node.SetParameter(f.name, str(value))

    @classmethod
    def load(cls, scene) -> "PanelParameters":
        node = cls.node(scene)
        kwargs = {}
        for f in fields(cls):
            if f.name in REFERENCES:
                kwargs[f.name] = node.GetNodeReference(REFERENCES[f.name])
            elif node.GetParameter(f.name):
                text = node.GetParameter(f.name)
                kwargs[f.name] = float(text) if f.type in (float, "float") else text
        return cls(**kwargs)
