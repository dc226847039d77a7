"""The house's shape: no import inside a function dodges an import cycle, and no library file grows
past ~400 lines (issue 12)."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

ROOT = REPO / "SpineFractureAI" / "SpineFractureAILib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _targets(mods, module: str, node: ast.ImportFrom) -> list[str]:
    """The library modules an `from ... import ...` names (the module and any submodules it imports)."""
    package = module.split(".") if mods[module].name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
        target = ".".join([p for p in base if p] + ([node.module] if node.module else []))
    elif (node.module or "").startswith("SpineFractureAILib"):
        target = node.module[len("SpineFractureAILib."):]
    else:
        return []
    found = [target] + [f"{target}.{a.name}".strip(".") for a in node.names]
    return [t for t in found if t in mods]


def test_no_function_level_import_dodges_a_cycle():
    mods = _modules()
    top, inner = {}, {}
    for name, path in mods.items():
        top[name], inner[name] = set(), []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                (top[name].update if node.col_offset == 0 else inner[name].append)(
                    _targets(mods, name, node) if node.col_offset == 0 else (node.lineno, _targets(mods, name, node)))

    def reaches(start: str) -> set[str]:
        seen, stack = set(), [start]
        while stack:
            for target in top.get(stack.pop(), ()):
                parts = target.split(".")
                for k in range(1, len(parts) + 1):  # importing a.b imports package a first
                    parent = ".".join(parts[:k])
                    if parent in mods and parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
        return seen

    dodges = [f"{name}:{line} imports {target} inside a function, and {target} imports {name}"
              for name, found in inner.items() for line, targets in found for target in targets
              if target == name or name in reaches(target)]
    assert not dodges, dodges


def test_library_files_stay_readable():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert not long, long


def test_compute_modules_never_import_the_slicer_folder():
    """The panel, scene writers and worker client sit in slicer/; the compute rooms (and the CLI)
    must load without MRML or Qt, so none of them may import that folder."""
    mods = _modules()
    offenders = []
    for name, path in mods.items():
        if name == "slicer" or name.startswith("slicer."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                offenders += [f"{name} imports {t}" for t in _targets(mods, name, node)
                              if t == "slicer" or t.startswith("slicer.")]
            elif isinstance(node, ast.Import):
                offenders += [f"{name} imports {a.name}" for a in node.names if a.name in ("slicer", "qt", "ctk")]
    assert not offenders, offenders
    assert {"slicer.panel", "slicer.logic", "slicer.scene", "slicer.worker_client"} <= set(mods)


def test_the_analysis_never_imports_the_phantom_generator():
    """Genant thresholds and keypoint definitions belong to morphometry; the phantom generator uses
    them, never the other way round. Nothing the Analyzer or the worker imports reaches phantom/,
    training/ or slicer/ (the radiograph keypoint network's inference side lives in predictors/)."""
    mods = _modules()
    top = {name: {t for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                  if isinstance(node, ast.ImportFrom) for t in _targets(mods, name, node)}
           for name, path in mods.items()}
    seen, stack = set(), ["pipeline", "worker", "model_host"]
    while stack:
        for target in top.get(stack.pop(), ()):
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                parent = ".".join(parts[:k])
                if parent in mods and parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    assert "morphometry" in seen and "tasks.radiograph_fracture" in seen
    assert not {m for m in seen if m.split(".")[0] in ("phantom", "training", "slicer")}
