"""Morphometry in the scene: six editable points per vertebra, height lines, a vertebrae table.

Moving a point re-measures that vertebra (heights are the distances between paired superior and
inferior points, as in seed 003) and regrades it and its neighbours; lines and table follow.
Plain MRML + VTK observers: works in Slicer and headless on slicer-core.
"""
from __future__ import annotations

import numpy as np

from ..morphometry import Measurement, grade, heights_from_points

POINT_NAMES = ("superior anterior", "superior middle", "superior posterior",
               "inferior anterior", "inferior middle", "inferior posterior")
HEIGHTS = ("anterior", "middle", "posterior")
TABLE_COLUMNS = ("level", "status", "Ha mm", "Hm mm", "Hp mm", "height loss", "Genant grade", "type")


class MorphometryScene:
    """Creates and keeps in sync the morphometry nodes of one analysed volume."""

    def __init__(self, scene, rows: list[dict], name: str, attribute: tuple[str, str] | None = None):
        import vtk

        self.scene = scene
        self.rows = [dict(r) for r in rows]
        self.points_nodes: list = []
        self.lines: list[list] = []
        self._observers = []
        self.table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} vertebrae")
        for column in TABLE_COLUMNS:
            array = vtk.vtkStringArray() if column in ("level", "status", "type") else vtk.vtkDoubleArray()
            array.SetName(column)
            self.table.GetTable().AddColumn(array)
        self.table.GetTable().SetNumberOfRows(len(self.rows))
        for n, row in enumerate(self.rows):
            node, lines = None, []
            if row.get("status") == "measured" and row.get("keypoints_ras"):
                node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{row['level']} morphometry")
                for p, label in zip(row["keypoints_ras"], POINT_NAMES):
                    node.SetNthControlPointLabel(node.AddControlPoint(*p), label)
                for height in HEIGHTS:
                    lines.append(scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"{row['level']} H{height[0]}"))
                tag = node.AddObserver(node.PointModifiedEvent, lambda caller, event, n=n: self.on_moved(n))
                self._observers.append((node, tag))
            self.points_nodes.append(node)
            self.lines.append(lines)
        for node in [self.table, *[p for p in self.points_nodes if p], *[ln for ls in self.lines for ln in ls]]:
            if attribute:
                node.SetAttribute(*attribute)
        self.refresh_all()

    def nodes(self) -> list:
        return [self.table, *[p for p in self.points_nodes if p], *[ln for ls in self.lines for ln in ls]]

    def points(self, n: int) -> np.ndarray:
        node = self.points_nodes[n]
        return np.array([node.GetNthControlPointPositionWorld(i) for i in range(node.GetNumberOfControlPoints())])

    def on_moved(self, n: int) -> None:
        if self.points_nodes[n].GetNumberOfControlPoints() != 6:
            return
        self.rows[n]["keypoints_ras"] = self.points(n).round(3).tolist()
        self.rows[n]["heights_mm"] = {k: round(v, 3) for k, v in heights_from_points(self.points(n)).items()}
        self.rows[n]["edited"] = True
        self.refresh_all()

    def refresh_all(self) -> None:
        """Regrade every measured vertebra (a height change alters its neighbours' crush ratio)."""
        measured = [n for n, r in enumerate(self.rows) if r.get("status") == "measured" and r.get("heights_mm")]
        for idx, n in enumerate(measured):
            row = self.rows[n]
            m = Measurement(row["level"], row.get("label", 0), heights_mm=row["heights_mm"])
            neighbours = [self.rows[measured[i]]["heights_mm"]["posterior"] for i in (idx - 1, idx + 1)
                          if 0 <= i < len(measured)]
            grade(m, neighbours)
            row.update(height_loss=m.height_loss, genant_grade=m.genant_grade, type=m.type, ratios=m.ratios)
        for n, row in enumerate(self.rows):
            self._write_row(n, row)
            if self.points_nodes[n] is not None:
                pts = self.points(n)
                for k, line in enumerate(self.lines[n]):
                    line.RemoveAllControlPoints()
                    line.AddControlPoint(*pts[k])
                    line.AddControlPoint(*pts[k + 3])
        self.table.GetTable().Modified()

    def _write_row(self, n: int, row: dict) -> None:
        import vtk

        h = row.get("heights_mm") or {}
        values = (row["level"], row.get("status", ""), h.get("anterior", np.nan), h.get("middle", np.nan),
                  h.get("posterior", np.nan), row.get("height_loss") if row.get("height_loss") is not None else np.nan,
                  row.get("genant_grade") if row.get("genant_grade") is not None else np.nan, row.get("type") or "")
        for c, value in enumerate(values):
            self.table.GetTable().SetValue(n, c, vtk.vtkVariant(value))
