"""`spinefracture` command line: phantom, analyze, demo, train, bundle."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import atomic
from .bundles import BundleError, first_line, parse_analyses
from .case_runner import analyze_paths
from .volume import VolumeError, read_volume


def _spacing(text: str) -> tuple[float, float, float]:
    """--spacing: one value or i,j,k, each a positive number of millimetres (at most 20)."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"--spacing {text!r}: not numbers (one value or i,j,k in mm)") from None
    if len(parts) not in (1, 3) or not all(0.05 <= p <= 20 for p in parts):
        raise ValueError(f"--spacing {text!r}: one value or three (i,j,k), each from 0.05 to 20 mm")
    return tuple(parts * 3) if len(parts) == 1 else tuple(parts)  # type: ignore[return-value]


def cmd_phantom(args) -> int:
    from .phantom import make_phantom, write_phantom
    from .radiograph.phantom import make_radiograph, write_radiograph

    if args.modality == "xr":  # a lateral (or AP) radiograph: OUT.png or OUT.dcm
        spacing = _spacing(args.spacing)[0]
        case = make_radiograph(args.levels, args.fracture, args.seed, args.view, spacing)
        print(json.dumps(write_radiograph(case, args.out, args.monochrome1)))
        return 0
    case = make_phantom(args.levels, args.modality, args.fracture, args.herniation, args.seed,
                        _spacing(args.spacing), args.orientation, rib_pairs=args.rib_pairs,
                        half_width_mm=args.half_width_mm, surroundings=args.surroundings,
                        lumbar_vertebrae=args.lumbar_vertebrae)
    paths = write_phantom(case, args.out, dicom=args.dicom)
    print(json.dumps(paths))
    return 0


def cmd_analyze(args) -> int:
    analyses = parse_analyses(args.analyses) if args.analyses else None
    written = analyze_paths(args.inputs, args.out, args.modality, args.bundle, args.device, analyses,
                            args.mr_sequence, args.series, args.reference_series)
    print(json.dumps(written, indent=1))
    return 0


def cmd_batch(args) -> int:
    """Many studies on Dask: files, folders, a list, or a DICOMweb server's studies."""
    from . import batch, dicomweb  # dask and requests: only this command needs them

    analyses = parse_analyses(args.analyses) if args.analyses else None
    options = {"bundles": args.bundle, "analyses": analyses, "device": args.device, "modality": args.modality,
               "threads": args.threads}
    if args.dicomweb:
        if args.inputs or args.list:
            raise ValueError("--dicomweb reads the studies from the server: give no input files with it")
        options["dicomweb"] = {"url": args.dicomweb, "token": args.token, "user": args.user,
                               "password": args.password, "ca_bundle": args.ca_bundle}
        options["push"] = args.push
        specs = batch.dicomweb_specs(dicomweb.connect(**options["dicomweb"]), args.study)
    else:
        if args.push or args.study:
            raise ValueError("--push and --study need --dicomweb URL")
        specs = batch.local_specs(batch.collect_inputs(args.inputs, args.list))
    if not specs:
        raise ValueError("no cases to analyse")
    result = batch.run_batch(specs, args.out, options, args.workers, args.scheduler)
    print(json.dumps(result, indent=1))
    return 0 if not result["summary"]["failed"] else 1


def cmd_demo(args) -> int:
    """Phantom with a known fracture (default L1 wedge) -> analyse -> does its ROI hold the true centre?"""
    from .phantom import make_phantom, parse_fracture, write_phantom
    from .results import Roi

    out = Path(args.out)
    level, kind, _ = parse_fracture(args.fracture)
    case = make_phantom(args.levels, "ct", [args.fracture], [], args.seed)
    paths = write_phantom(case, out / f"phantom_{level}_{kind}.nii.gz")
    (written,) = analyze_paths([paths["image"]], out / "results", "ct", args.bundle, args.device)
    findings = json.loads(Path(written["findings"]).read_text())["findings"]
    truth = next(v for v in case.truth["vertebrae"] if v["level"] == level)
    hits = [f for f in findings if f["label"] == kind and Roi(**f["roi"]).contains(truth["center_ras"])]
    print(json.dumps({"phantom": paths["image"], "results": written, "fracture": args.fracture,
                      f"true_{level}_center_ras": truth["center_ras"],
                      f"{kind}_roi_contains_{level}_center": bool(hits),
                      f"{kind}_reported_at": sorted({f.get("level") or "no level" for f in hits})}, indent=1))
    print("DEMO WEIGHTS ARE NOT FOR CLINICAL USE (trained on synthetic phantoms).", file=sys.stderr)
    return 0 if hits else 1


def cmd_morphometry(args) -> int:
    """Six points, heights and Genant grade for every vertebra of a labelmap."""
    import numpy as np

    from .spine_morphometry import measure_labelmap, name_labels
    from .volume import validate_volume

    labels = read_volume(args.labelmap, modality="labelmap")
    if labels.voxels.ndim != 3 or not labels.voxels.any():
        raise ValueError(f"{args.labelmap}: the labelmap is empty")
    ct_image = None
    if args.image:
        image = read_volume(args.image)
        validate_volume(image)
        if image.voxels.shape != labels.voxels.shape or not np.allclose(image.ijk_to_ras, labels.ijk_to_ras, atol=1e-3):
            raise ValueError("the labelmap and --image are not on the same grid")
        ct_image = image.voxels if image.modality == "ct" else None  # sub-voxel endplates on CT
    voxels = np.rint(labels.voxels).astype(np.int32)
    names = name_labels(voxels, labels.ijk_to_ras, args.labels)
    if not names:
        raise ValueError(f"{args.labelmap}: no vertebra labels under the {args.labels!r} numbering")
    voxels = np.where(np.isin(voxels, list(names)), voxels, 0)
    whole = args.labels != "sequential" if args.whole_vertebrae is None else args.whole_vertebrae
    measured = measure_labelmap(voxels, labels.ijk_to_ras, names, whole_vertebrae=whole, ct_image=ct_image)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps({"labelmap": str(args.labelmap), "labels": args.labels,
                                       "scheme_assumed": args.labels,
                                       "vertebrae": [m.to_json() for m in measured]}, indent=1))
    for m in measured:
        grade = f"grade {m.genant_grade} {m.type or ''}" if m.status == "measured" else m.status
        print(f"{m.level}: {grade}", file=sys.stderr)
    print(out)
    return 0


def cmd_train(args) -> int:
    from .training import fracture_detect, fracture_seg, vertebra_pose

    if args.task == "vertebra-levels":  # seed 001: axial slices + metadata, its own training loop
        from .levels import level_range
        from .training.level_classifier import export_axial, train_level_classifier

        levels = level_range(args.levels)
        cervical = [n.startswith("C") for n in levels]
        regions = "cervical" if all(cervical) else "thoracolumbar" if not any(cervical) else "mixed"
        data = export_axial(args.phantoms or 40, args.val_phantoms, levels, args.imgsz or 224, args.slice_mm, regions,
                            args.pixel_mm, args.randomised, args.data)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "data.json").write_text(json.dumps({  # provenance for the bundle's manifest
            "levels": levels, "phantoms": args.phantoms or 40, "val_phantoms": args.val_phantoms,
            "slice_mm": args.slice_mm, "pixel_mm": args.pixel_mm, "slices": {k: len(v[0]) for k, v in data.items()},
            "randomised": args.randomised,
            "command": "spinefracture " + " ".join(sys.argv[1:])}))
        overrides = {k: v for k, v in {"epochs": args.epochs, "batch": args.batch, "lr": args.lr}.items()
                     if v is not None}
        options = {"embed_dim": args.embed_dim} if args.embed_dim else None
        init = next(Path(args.init).glob("*.safetensors")) if args.init and Path(args.init).is_dir() else args.init
        print(train_level_classifier(data, levels, args.out, args.model or "gcvit_tiny", args.imgsz or 224,
                                     args.resume, options, init=init, **overrides))
        return 0

    if args.task == "lumbar-mr":  # seed 004: two detectors and two ensembles from one dataset
        return _train_lumbar(args)
    if args.task == "radiograph-fracture":  # seed 002: pose model + fresh/old ensemble
        from .training.radiograph_train import train_radiograph

        yolo = {k: v for k, v in {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch}.items() if v}
        print(json.dumps(train_radiograph(args.data, args.out, args.phantoms, args.val_phantoms, args.stage,
                                          args.device, args.resume, args.member_epochs,
                                          args.model or "yolov8n-pose.yaml", **yolo), default=str))
        return 0
    export, train, model = {
        "fracture-seg": (fracture_seg.export_phantom_dataset, fracture_seg.train_fracture_seg, "yolov8n-seg.yaml"),
        "vertebra-pose": (vertebra_pose.export_pose_dataset, vertebra_pose.train_vertebra_pose, "yolov8n-pose.yaml"),
        "fracture-detect": (fracture_detect.export_detect_dataset, fracture_detect.train_fracture_detect,
                            "yolov8s.yaml"),
    }[args.task]
    data = Path(args.data)
    if not (data / "data.yaml").exists():
        if not args.phantoms:
            raise ValueError(f"{data}: no data.yaml; pass --phantoms N to export phantom data there")
        if args.randomised and args.task not in ("fracture-seg", "fracture-detect"):
            raise ValueError("--randomised: fracture-seg, fracture-detect and vertebra-levels only")
        extra = {"randomised": True} if args.randomised else {}
        export(data, args.phantoms, args.val_phantoms, args.imgsz or 256, args.slice_mm, **extra)
    overrides = {k: v for k, v in {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch,
                                   "lr0": args.lr0}.items() if v is not None}
    if args.init:
        overrides["init"] = args.init
    if args.model and (Path(args.model) / "manifest.json").exists():  # continue from a bundle's weights
        weights = next(Path(args.model).glob("*.safetensors"))
        args.model = str(fracture_seg.checkpoint_from_bundle(weights, Path(args.out).parent / f"{Path(args.out).name}_init.pt",
                                                            args.imgsz or 256))
    run = train(data / "data.yaml", args.out, args.model or model, args.device, args.resume, **overrides)
    print(run)
    return 0


def _train_lumbar(args) -> int:
    from .predictors.ensembles import PAPER_CLASSIFIERS, PAPER_SEGMENTERS
    from .training.lumbar_data import export_lumbar_dataset
    from .training.lumbar_real_train import train_real_lumbar
    from .training.lumbar_train import train_detectors, train_ensemble

    data, out = Path(args.data), Path(args.out)
    if args.real:  # the real exams (split by exam, test exams never exported) + phantoms
        print(json.dumps(train_real_lumbar(args.real, data, out, phantoms=args.phantoms or 24,
                                           seg_epochs=args.member_epochs or 20, yolo_epochs=args.epochs or 30,
                                           device=args.device), default=float)[:2000])
        return 0
    if not (data / "dataset.json").exists():
        if not args.phantoms:
            raise ValueError(f"{data}: no dataset.json; pass --phantoms N to export lumbar MR phantoms there")
        export_lumbar_dataset(data, args.phantoms, args.val_phantoms, args.imgsz or 400, slice_mm=args.slice_mm)
    yolo = {k: v for k, v in {"epochs": args.epochs, "imgsz": args.imgsz, "batch": args.batch}.items() if v}
    train_detectors(data, out, args.model or "yolov8n.yaml", args.device, init=args.init, **yolo)
    classifiers = (args.classifiers.split(",") if args.classifiers else list(PAPER_CLASSIFIERS.values()))
    segmenters = ([tuple(s.split(":")) for s in args.segmenters.split(",")] if args.segmenters else PAPER_SEGMENTERS)
    member = {k: v for k, v in {"epochs": args.member_epochs, "batch": args.member_batch}.items() if v}
    train_ensemble("herniation", data, out / "herniation", [{"architecture": a} for a in classifiers], **member)
    train_ensemble("segmentation", data, out / "segmentation",
                   [{"architecture": a, "encoder": e} for a, e in segmenters], **member)
    print(out)
    return 0


def cmd_bundle(args) -> int:
    """Package into a staging folder beside --out and swap it in only when complete: a failure
    leaves an existing bundle as it was."""
    from .training.packaging import package_bundle, staged_folder

    name = args.name or f"{args.task}-demo"
    if args.task in ("lumbar-mr", "radiograph-fracture") and not args.data:
        raise ValueError(f"bundle {args.task} needs --data (the dataset the run was trained on)")
    with staged_folder(args.out) as staging:
        if args.task == "lumbar-mr":
            from .training.lumbar_bundle import package_lumbar_bundle

            package_lumbar_bundle(args.run, args.data, staging, name, args.version)
        elif args.task == "radiograph-fracture":
            from .training.radiograph_train import package_radiograph_bundle

            package_radiograph_bundle(args.run, args.data, staging, name, args.version)
        elif args.task == "vertebra-levels":
            from .training.level_classifier import package_level_bundle

            package_level_bundle(args.run, staging, name, args.version, not args.opt_in)
        else:
            package_bundle(args.task, args.run, staging, name, args.version)
    print(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spinefracture", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ph = sub.add_parser("phantom", help="write a synthetic spine volume, its labelmap and truth.json")
    ph.add_argument("out")
    ph.add_argument("--modality", choices=["ct", "mr", "xr"], default="ct")
    ph.add_argument("--levels", default="T10-L3")
    ph.add_argument("--fracture", action="append", default=[],
                    help="LEVEL:wedge|biconcave|crush:GRADE (xr: and :fresh|old)")
    ph.add_argument("--view", choices=["lateral", "ap"], default="lateral", help="xr: the projection")
    ph.add_argument("--monochrome1", action="store_true", help="xr .dcm: store MONOCHROME1 (inverted) pixels")
    ph.add_argument("--herniation", action="append", default=[], help="disc, e.g. L4-L5")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--spacing", default="1", help="mm, positive: one value or i,j,k (default 1)")
    ph.add_argument("--orientation", choices=["axial", "sagittal", "coronal", "oblique"], default="axial")
    ph.add_argument("--rib-pairs", type=int, choices=[11, 12, 13], default=12,
                    help="ct/mr: ribs on T1 and the next N-1 vertebrae (11, 13: transitional anatomy)")
    ph.add_argument("--half-width-mm", type=float, help="ct/mr: the field beside the spine (about 100 shows the ribs)")
    ph.add_argument("--lumbar-vertebrae", type=int, choices=[5, 6], default=5,
                    help="ct/mr: 6 adds a sixth lumbar vertebra (L6) below L5 (transitional anatomy)")
    ph.add_argument("--surroundings", action="store_true",
                    help="ct: a real CT's surroundings drawn from the seed (trunk, table, arms, vessels with or "
                         "without contrast, kidneys, bowel gas, pelvis, a random kernel, noise and streaks)")
    ph.add_argument("--dicom", action="store_true", help="write the image as a DICOM series into the folder OUT "
                                                        "(one file per slice, proper UIDs)")
    ph.set_defaults(func=cmd_phantom)

    an = sub.add_parser("analyze", help="analyse image files or DICOM folders")
    an.add_argument("inputs", nargs="+")
    an.add_argument("--out", required=True)
    an.add_argument("--modality", choices=["auto", "ct", "mr", "xr"], default="auto")
    an.add_argument("--bundle", action="append", help="model bundle folder (default: built-in bundles)")
    an.add_argument("--series", help="a DICOM folder with several series: the Series Instance UID to analyse "
                                     "(default: the most images; ties: the most coherent slices; recorded and warned)")
    an.add_argument("--reference-series", metavar="DICOM_FOLDER",
                    help="for a NIfTI/NRRD input: the DICOM series it was converted from (same grid); the case "
                         "then gets a DICOM SEG and SR that reference it (DICOM inputs get them always)")
    an.add_argument("--mr-sequence", choices=["t1", "t2", "t2fs", "stir", "tirm", "pdfs"],
                    help="MR only: the sequence, where the file does not say (NIfTI); fluid-sensitive ones "
                         "(t2fs, stir, tirm, pdfs) let a fracture's bone-marrow oedema date it (default: from the "
                         "DICOM series description, else unknown)")
    an.add_argument("--analyses", help="comma-separated: fractures, levels, lumbar, keypoints (default: the"
                                       " built-in bundles that run by default; chosen analyses run opt-in ones too)")
    an.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps")
    an.set_defaults(func=cmd_analyze)

    ba = sub.add_parser("batch", help="many studies on Dask: files, folders, a list or a DICOMweb server")
    ba.add_argument("inputs", nargs="*", help="files, DICOM series folders or folders of them")
    ba.add_argument("--out", required=True)
    ba.add_argument("--list", help="a text file with one input path per line")
    ba.add_argument("--workers", type=int, default=1, help="local Dask worker processes (default 1)")
    ba.add_argument("--scheduler", help="address of an existing Dask scheduler (instead of a local cluster)")
    ba.add_argument("--threads", type=int, help="torch threads per worker (default: cores / workers)")
    ba.add_argument("--dicomweb", metavar="URL", help="read the studies from this DICOMweb server")
    ba.add_argument("--study", action="append", help="with --dicomweb: only this Study Instance UID (repeatable)")
    ba.add_argument("--push", action="store_true", help="with --dicomweb: store the DICOM SEG and SR back in the study")
    ba.add_argument("--token", help="DICOMweb bearer token")
    ba.add_argument("--user", help="DICOMweb basic-auth user")
    ba.add_argument("--password", help="DICOMweb basic-auth password")
    ba.add_argument("--ca-bundle", help="CA certificate file for a TLS server")
    ba.add_argument("--modality", choices=["auto", "ct", "mr", "xr"], default="auto")
    ba.add_argument("--bundle", action="append")
    ba.add_argument("--analyses")
    ba.add_argument("--device", default="auto")
    ba.set_defaults(func=cmd_batch)

    de = sub.add_parser("demo", help="phantom with an L1 wedge fracture, analysed with the demo bundle")
    de.add_argument("--out", default="demo_output")
    de.add_argument("--seed", type=int, default=1)
    de.add_argument("--levels", default="T10-L3")
    de.add_argument("--fracture", default="L1:wedge:3", help="LEVEL:wedge|biconcave|crush:GRADE")
    de.add_argument("--bundle", action="append")
    de.add_argument("--device", default="auto")
    de.set_defaults(func=cmd_demo)

    mo = sub.add_parser("morphometry", help="heights and Genant grades from a vertebra labelmap")
    mo.add_argument("labelmap")
    mo.add_argument("--image", help="the image the labelmap belongs to (grid check)")
    mo.add_argument("--labels", choices=["verse", "totalsegmentator", "sequential"], default="verse",
                    help="label scheme of the labelmap (default verse: 1-7 C1-C7, 8-19 T1-T12, 20-25 L1-L6, 26 S1)")
    mo.add_argument("--whole-vertebrae", dest="whole_vertebrae", action="store_true", default=None,
                    help="labels include posterior elements (default for verse/totalsegmentator)")
    mo.add_argument("--bodies-only", dest="whole_vertebrae", action="store_false")
    mo.add_argument("--out", required=True)
    mo.set_defaults(func=cmd_morphometry)

    tr = sub.add_parser("train", help="train a model (seed paper recipes are the defaults)")
    tr.add_argument("task", choices=["fracture-seg", "vertebra-pose", "vertebra-levels", "fracture-detect",
                                     "lumbar-mr", "radiograph-fracture"])
    tr.add_argument("--stage", choices=["all", "pose", "age", "keypoints"], default="all",
                    help="radiograph-fracture: the pose model, the age ensemble, the keypoint network, or all")
    tr.add_argument("--data", required=True, help="YOLO dataset folder (data.yaml), or where to export one")
    tr.add_argument("--phantoms", type=int, default=0, help="export this many training phantoms first")
    tr.add_argument("--val-phantoms", type=int, default=8)
    tr.add_argument("--slice-mm", type=float, default=2.0)
    tr.add_argument("--randomised", action="store_true",
                    help="fracture-seg, fracture-detect, vertebra-levels: export domain-randomised phantoms (a real CT's "
                         "surroundings, any stretch, 0.6-5 mm slices)")
    tr.add_argument("--lr0", type=float, help="YOLO tasks: initial learning rate (e.g. lower to fine-tune)")
    tr.add_argument("--pixel-mm", type=float, help="vertebra-levels: fixed in-plane spacing, so a vertebra's size in"
                                                   " pixels does not depend on the field of view (e.g. 1.75)")
    tr.add_argument("--out", required=True, help="run folder (checkpoints every epoch)")
    tr.add_argument("--model", help="model yaml, .pt or a bundle folder to continue (default: yolov8n-seg.yaml / "
                                    "yolov8n-pose.yaml);"
                                    " for vertebra-levels the timm backbone (default gcvit_tiny)")
    tr.add_argument("--init", help="YOLO tasks: a local checkpoint (another task's run) whose matching layers"
                                   " initialise the --model yaml; vertebra-levels: a bundle folder or .safetensors"
                                   " to fine-tune (the same architecture)")
    tr.add_argument("--levels", default="C1-C7", help="vertebra-levels: the label set, e.g. C1-C7 or T10-L5")
    tr.add_argument("--embed-dim", type=int, help="vertebra-levels: GCViT width (e.g. 32 for a CPU demo)")
    tr.add_argument("--classifiers", help="lumbar-mr: timm members (default: the paper's six)")
    tr.add_argument("--segmenters", help="lumbar-mr: ARCH:ENCODER members (default: the paper's)")
    tr.add_argument("--member-epochs", type=int, help="lumbar-mr: ensemble members' epochs")
    tr.add_argument("--real", help="lumbar-mr: train on the real exams in this lumbar-mr folder (held-out test "
                                   "exams never read), with --phantoms N MR phantoms (default 24)")
    tr.add_argument("--member-batch", type=int)
    tr.add_argument("--lr", type=float, help="vertebra-levels: Adam learning rate (default 1e-4; the paper gives none)")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--imgsz", type=int)
    tr.add_argument("--batch", type=int)
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--resume", action="store_true")
    tr.set_defaults(func=cmd_train)

    bu = sub.add_parser("bundle", help="package a training run as a model bundle (fp16 + manifest)")
    bu.add_argument("task", choices=["fracture-seg", "vertebra-pose", "fracture-detect", "vertebra-levels",
                                     "lumbar-mr", "radiograph-fracture"])
    bu.add_argument("--data", help="lumbar-mr: the dataset folder of the run")
    bu.add_argument("--opt-in", action="store_true", help="vertebra-levels: run only when asked for")
    bu.add_argument("run")
    bu.add_argument("--out", required=True)
    bu.add_argument("--name", help="default: <task>-demo")
    bu.add_argument("--version", default="0.1.0")
    bu.set_defaults(func=cmd_bundle)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (VolumeError, BundleError, ValueError, OSError, MemoryError) as err:
        print(f"spinefracture: error: {first_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
