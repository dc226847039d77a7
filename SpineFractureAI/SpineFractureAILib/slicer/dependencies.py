"""What Slicer's Python lacks of our pinned requirements, and how to install it on first use.

The module asks before installing (slicer.util.pip_install); torch comes from Slicer's PyTorch
extension when it is installed (it picks the right CUDA build), else from PyPI."""
from __future__ import annotations

from importlib import metadata

# Kept equal to pyproject.toml's [project] dependencies (Testing/test_dependencies.py checks it).
REQUIREMENTS = [
    "torch==2.13.0", "torchvision==0.28.0", "ultralytics==8.4.190", "timm==1.0.22",
    "segmentation-models-pytorch==0.5.0", "numpy>=1.26,<3", "SimpleITK==2.5.2", "pydicom==3.0.2",
    "scipy>=1.13", "opencv-python-headless>=4.10", "highdicom==0.28.2", "dicomweb-client==0.61.2",
    "dask[distributed]==2026.8.0", "pyarrow==26.0.1",
]
TORCH_PACKAGES = ("torch", "torchvision")


def _name(requirement: str) -> str:
    for sep in ("==", ">=", "<", ">", "~="):
        requirement = requirement.split(sep)[0]
    return requirement.split(",")[0].split("[")[0].strip()  # "dask[distributed]" is installed as "dask"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements: list[str] = REQUIREMENTS) -> list[tuple[str, str, str | None]]:
    """[(name, requirement, installed version or None)] for what is absent.

    A different installed version of an exact pin is accepted for torch/torchvision (Slicer's
    PyTorch extension chooses those) and reported for the rest only when absent."""
    missing = []
    for req in requirements:
        name = _name(req)
        found = installed_version(name)
        if found is None and name == "opencv-python-headless":
            found = installed_version("opencv-python")  # either provides cv2
        if found is None:
            missing.append((name, req, None))
    return missing


def describe(missing) -> str:
    return "Missing Python packages: " + ", ".join(req for _, req, _ in missing) if missing else "All requirements present."


def install_in_slicer(missing, confirm=True) -> bool:  # pragma: no cover - needs Slicer
    """Install what is missing into Slicer's Python, after asking. Returns True when done."""
    import slicer

    if not missing:
        return True
    if confirm and not slicer.util.confirmOkCancelDisplay(
            describe(missing) + "\n\nInstall them now (a few minutes, needs the package registry)?"):
        return False
    torch_missing = [m for m in missing if m[0] in TORCH_PACKAGES]
    if torch_missing:
        try:
            import PyTorchUtils  # Slicer's PyTorch extension

            PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)
        except ImportError:
            slicer.util.pip_install(" ".join(req for _, req, _ in torch_missing))
    rest = [req for name, req, _ in missing if name not in TORCH_PACKAGES]
    if rest:
        slicer.util.pip_install(" ".join(f'"{r}"' for r in rest))
    return not missing_requirements()
