"""One analysis's working state: what the stages fill and read (slice stacks, the fracture model's
bodies and their instance map, the level profile, a detect-only model's findings, the spinal
canal) besides the written results; RunState.written() keeps only the latter."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .results import Finding, Results, Roi


@dataclass
class Body:
    """One vertebral body the fracture model segmented (a fusion track), before it becomes segments
    and rows: its instance id in RunState.body_instances, class, ROI, level and fracture finding."""
    instance: int
    label: str  # "vertebral body" or the fracture type it shows
    roi: Roi
    fracture_probability: float
    row: dict | None = None  # its morphometry row in vertebrae
    finding: Finding | None = None
    level: str | None = None


@dataclass
class RunState(Results):
    """Results plus the working state between the stages; the tasks fill it, assembly.assemble_results completes it."""
    bodies: list[Body] = field(default_factory=list, repr=False)  # the fracture model's, and
    body_instances: tuple | None = field(default=None, repr=False)  # their ids on a box of the grid
    body_classes: list = field(default_factory=list, repr=False)  # the fracture model's classes
    level_profile: object = field(default=None, repr=False)  # level_assignment.LevelProfile (axial)
    detections: list[Finding] = field(default_factory=list, repr=False)  # of a detect-only model
    stacks: dict = field(default_factory=dict, repr=False)  # slice stacks shared by models that slice alike
    canal: object = field(default=None, repr=False)  # spine.canal.CanalChain on CT

    def written(self) -> Results:
        """The Results every writer reads (sharing the arrays, not copying them)."""
        return Results(**{f.name: getattr(self, f.name) for f in fields(Results)})
