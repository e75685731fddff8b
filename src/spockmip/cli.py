"""The ``spockmip`` command line.

Each command is one ``_add_<name>`` function that adds its sub-parser and sets ``handler`` to the function
that runs it, listed once in ``_COMMANDS``. Handlers report problems the user can fix by raising
:class:`CommandError`; :func:`main` prints those as one line on stderr and returns a non-zero status, so
neither they nor argparse's usage errors end in a traceback. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from spockmip import __version__

PROG = "spockmip"
# Exit status of commands that fail for a reason the user can fix (argparse uses 2 for usage errors).
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130
# PhantomConfig's default, repeated so that --help need not import the generator (a test keeps them equal).
PHANTOM_TREES = 6


class CommandError(Exception):
    """A failure explained by its message alone (bad input, existing output): no traceback needed."""


def _int_at_least(minimum: int, problem: str) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``; smaller ones are reported as ``problem``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is {problem}")
        return value

    return parse


_positive_int = _int_at_least(1, "not positive")
_non_negative_int = _int_at_least(0, "negative")


def _patch_side(text: str) -> int:
    """An argparse type: a positive patch side the U-Net's four 2x poolings divide evenly."""
    from spockmip.models import DOWNSAMPLING_FACTOR

    value = _positive_int(text)
    if value % DOWNSAMPLING_FACTOR:
        raise argparse.ArgumentTypeError(
            f"{value} is not divisible by {DOWNSAMPLING_FACTOR} (the U-Net halves each side four times)"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _add_synth(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a dataset of synthetic TOF-MRA phantoms with vessel labels",
        description=(
            "Write DIR/images/<subject>.nii.gz and DIR/labels/<subject>.nii.gz for N seeded phantoms "
            "(subjects phantom000, phantom001, ...). The same seed gives byte-identical files. DIR must "
            "not exist or be empty; it appears only once every subject is written."
        ),
    )
    parser.add_argument(
        "--output",
        "--out",
        dest="output",
        type=Path,
        required=True,
        metavar="DIR",
        help="dataset directory to create",
    )
    parser.add_argument(
        "--n-subjects",
        type=_positive_int,
        default=4,
        metavar="N",
        help="number of subjects (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, metavar="S", help="dataset seed (default: %(default)s)"
    )
    parser.add_argument(
        "--shape",
        type=_positive_int,
        nargs=3,
        default=[96, 96, 64],
        metavar=("X", "Y", "Z"),
        help="volume shape in voxels, Z the slice axis (default: 96 96 64)",
    )
    parser.add_argument(
        "--spacing",
        type=_positive_float,
        default=0.3,
        metavar="MM",
        help="isotropic voxel spacing in mm written to the affine (default: %(default)s)",
    )
    parser.add_argument(
        "--trees",
        type=_positive_int,
        default=PHANTOM_TREES,
        metavar="N",
        help="vessel trees per phantom (default: %(default)s)",
    )
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    # Imported per command so that --help, and every other command, skip loading what they do not use.
    from spockmip.synthetic import PhantomConfig, describe, write_phantom_dataset

    try:
        config = PhantomConfig(shape=tuple(args.shape), spacing_mm=(args.spacing,) * 3, n_roots=args.trees)
    except ValueError as error:
        raise CommandError(str(error)) from error
    try:
        subjects = write_phantom_dataset(
            args.output,
            args.n_subjects,
            args.seed,
            config,
            report=lambda subject, phantom: print(f"{subject}: {describe(phantom)}"),
        )
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    shape = "x".join(str(s) for s in config.shape)
    print(
        f"wrote {len(subjects)} phantom subject(s) to {args.output} "
        f"(shape {shape}, spacing {args.spacing:g} mm, seed {args.seed})"
    )
    for subject in subjects:
        image, label = (args.output / folder / f"{subject}.nii.gz" for folder in ("images", "labels"))
        print(f"  {image}  {label}")
    return 0


def _sizes(values: Sequence[int], name: str) -> tuple[int, int, int]:
    """One value for all three axes, or one per axis (X, Y, Z)."""
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)
    raise CommandError(f"{name} takes 1 or 3 values, got {len(values)}")


def _threshold(text: str) -> str | float:
    if text == "otsu":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'otsu' nor a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"threshold {value} lies outside [0, 1]")
    return value


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads for torch (default: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the job's CPUs)",
    )


def _pair_paths(data: Path, subject: str) -> tuple[Path, Path]:
    """DATA/images/<id>.nii[.gz] and DATA/labels/<id>.nii[.gz] (the layout ``spockmip synth`` writes)."""
    found = []
    for folder in ("images", "labels"):
        candidates = [data / folder / f"{subject}{suffix}" for suffix in (".nii.gz", ".nii")]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            raise CommandError(f"{candidates[0]}: file not found (nor {candidates[1].name})")
        found.append(existing[0])
    return found[0], found[1]


NETWORK_ORIENTATION_HELP = (
    "voxel order the network sees: the file's stored order, as the released code and the published "
    "weights (default), or reoriented to canonical RAS+"
)


COMPILE_HELP = (
    "torch.compile the network: faster on a GPU after compiling each new batch shape once (seconds to "
    "minutes at start-up); results are not bit-identical to an uncompiled run (docs/performance.md)"
)


def _add_orientation(parser: argparse.ArgumentParser, help_text: str = NETWORK_ORIENTATION_HELP) -> None:
    parser.add_argument("--orientation", choices=("stored", "canonical"), default="stored", help=help_text)


def _add_train(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from spockmip.deformation import DeformationConfig
    from spockmip.devices import GPU_LOADER_WORKERS
    from spockmip.losses import LossConfig
    from spockmip.sampling import SAMPLINGS
    from spockmip.training import TrainingConfig

    defaults, loss, deformation = TrainingConfig(), LossConfig(), DeformationConfig()
    parser = subparsers.add_parser(
        "train",
        help="train one variant on one split (resumable: rerun the same command to continue)",
        description=(
            "Train a UNet3D/UNetMSS3D with the SPOCKMIP and/or DS6 objective on DATA/images/<id>.nii.gz with "
            "labels DATA/labels/<id>.nii.gz. Writes OUTPUT/best.pt (lowest validation Focal Tversky) and "
            "OUTPUT/history.csv when training ends; the state in --state-dir lets a killed run resume. "
            "Settings come from the released SPOCKMIP defaults, overridden by --config's variant (the "
            "workflow's settings file: its training section, then the variant's keys), overridden by the "
            "options given here. Subjects come from --train/--validation or from --split and --fold."
        ),
    )
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="folder with images/ and labels/"
    )
    parser.add_argument(
        "--train", nargs="+", metavar="ID", help="training subject ids (default: those of --split's --fold)"
    )
    parser.add_argument(
        "--validation",
        nargs="+",
        metavar="ID",
        help="validation subject ids (default: those of --split's --fold)",
    )
    parser.add_argument(
        "--split", type=Path, metavar="JSON", help="the workflow's split file (results/<dataset>/splits.json)"
    )
    parser.add_argument(
        "--fold", type=_non_negative_int, metavar="K", help="fold of --split to train (0-based)"
    )
    parser.add_argument(
        "--config", type=Path, metavar="YAML", help="the workflow's settings file (default: none)"
    )
    parser.add_argument(
        "--variant",
        metavar="NAME",
        help="variant of --config to train (default: its only variant, if it has one)",
    )
    parser.add_argument(
        "--output", "--out", dest="output", type=Path, required=True, metavar="DIR", help="output folder"
    )
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="resume state (default: OUTPUT/state)")

    settings: list[str] = []

    def setting(flag: str, default: object, about: str = "", **options: object) -> None:
        """An option that overrides the settings key of the same name (--config's) only when given."""
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{about}; " if about else ""
        action = parser.add_argument(
            flag, default=None, help=f"{text}default: {shown}, or --config's", **options
        )
        settings.append(action.dest)

    setting("--model", defaults.model, choices=("unet", "unetmss"))
    setting("--init-features", defaults.init_features, "U-Net width", type=_positive_int, metavar="F")
    setting("--activation", "the published model's", choices=("relu", "leaky_relu"))
    setting(
        "--patch-size", defaults.patch_size, "one side or X Y Z", type=_patch_side, nargs="+", metavar="P"
    )
    setting("--strides", defaults.strides, "one or X Y Z", type=_positive_int, nargs="+", metavar="S")
    setting(
        "--sampling",
        defaults.sampling,
        "training patches; 'released' = the released grid with a MIP term, torchio's queue without "
        "(see docs/method.md)",
        choices=SAMPLINGS,
    )
    setting("--batch-size", defaults.batch_size, type=_positive_int)
    setting("--epochs", defaults.epochs, type=_positive_int)
    setting("--patches-per-epoch", defaults.patches_per_epoch, type=_positive_int)
    setting("--learning-rate", defaults.learning_rate, type=_positive_float)
    setting("--gradient-clip", defaults.gradient_clip, type=_positive_float)
    setting("--seed", defaults.seed, type=_non_negative_int)
    setting("--mip-axis", loss.mip_axis, choices=("none", "x", "y", "z", "multi"))
    setting("--mip-target", loss.mip_target, choices=("volume", "patch"))
    setting(
        "--mip-pairing",
        loss.mip_pairing,
        "released: the prediction is projected over another axis than the target, as in the released "
        "code; consistent: both over the named axis",
        choices=("released", "consistent"),
    )
    setting(
        "--baseline-scale",
        loss.baseline_scale,
        "without a MIP term, back-propagate FLOSS-WEIGHT x floss (released) or floss",
        choices=("released", "unit"),
    )
    setting("--floss-weight", loss.floss_weight, type=float)
    setting("--mip-weight", loss.mip_weight, type=float)
    setting(
        "--deform", defaults.deform, "DS6 deformation-aware learning", action=argparse.BooleanOptionalAction
    )
    setting(
        "--deformation",
        deformation.field,
        "DS6 field: one airlab-style field per batch (released) or a smooth field per sample",
        choices=("released", "smooth"),
    )
    setting(
        "--deformation-label-mode",
        deformation.label_mode,
        "how DS6 warps labels; bilinear keeps fractions, as released",
        choices=("bilinear", "nearest", "rebinarise"),
    )
    setting(
        "--consistency-target",
        deformation.consistency_target,
        "what DS6 warps into its consistency target",
        choices=("logits", "probabilities"),
    )
    setting(
        "--consistency-weight",
        deformation.consistency_weight,
        "weight of DS6's consistency term (DS6: 1)",
        type=float,
    )
    setting(
        "--num-workers",
        f"0 on a CPU, up to {GPU_LOADER_WORKERS} on a GPU",
        "DataLoader worker processes; results do not depend on them",
        type=_non_negative_int,
    )
    setting("--compile", defaults.compile, COMPILE_HELP, action=argparse.BooleanOptionalAction)
    _add_orientation(parser)
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, logs only (default: shown)"
    )
    _add_runtime_options(parser)
    parser.set_defaults(handler=_run_train, settings=tuple(settings))


def _file_settings(args: argparse.Namespace) -> dict:
    """The flat settings of --config's variant (:func:`spockmip.training.variant_settings`), or none."""
    import yaml

    from spockmip.training import variant_settings

    if args.config is None:
        if args.variant is not None:
            raise CommandError("--variant needs --config")
        return {}
    try:
        document = yaml.safe_load(args.config.read_text())
    except OSError as error:
        raise CommandError(f"{args.config}: {error.strerror}") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise CommandError(f"{args.config}: not valid YAML{line}") from error
    if not isinstance(document, dict) or not isinstance(document.get("variants"), dict):
        raise CommandError(f"{args.config}: not a workflow settings file (no variants: section)")
    name = args.variant
    if name is None:
        if len(document["variants"]) != 1:
            raise CommandError(f"{args.config}: give --variant, one of {', '.join(document['variants'])}")
        name = next(iter(document["variants"]))
    try:
        return variant_settings(document, name)
    except ValueError as error:
        raise CommandError(f"{args.config}: {error}") from error


def _subject_ids(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Training and validation subjects: listed, or fold ``--fold`` of the workflow's split file."""
    from spockmip.splits import read_split

    if args.split is None:
        if args.fold is not None:
            raise CommandError("--fold needs --split")
        if not (args.train and args.validation):
            raise CommandError("give --train and --validation, or --split and --fold")
        return args.train, args.validation
    if args.train or args.validation:
        raise CommandError("give --split and --fold, or --train and --validation, not both")
    if args.fold is None:
        raise CommandError("--split needs --fold")
    try:
        folds = read_split(args.split)["folds"]
        fold = folds[args.fold]
        return list(fold["train"]), list(fold["validation"])
    except OSError as error:
        raise CommandError(f"{args.split}: {error.strerror}") from error
    except (ValueError, KeyError, TypeError) as error:
        raise CommandError(f"{args.split}: not a split file ({error})") from error
    except IndexError:
        raise CommandError(f"{args.split}: no fold {args.fold} (it has {len(folds)})") from None


def training_config_from_args(args: argparse.Namespace):
    """The :class:`~spockmip.training.TrainingConfig` of a ``train`` command line: --config's variant,
    overridden by the options given, through the settings path the workflow uses."""
    from spockmip.training import training_config_from_settings

    settings = _file_settings(args)
    given = {key: getattr(args, key) for key in args.settings if getattr(args, key) is not None}
    for key in ("patch_size", "strides"):
        if key in given:
            given[key] = _sizes(given[key], "--" + key.replace("_", "-"))
    try:
        return training_config_from_settings({**settings, **given})
    except ValueError as error:
        raise CommandError(f"{args.config}: {error}" if args.config else str(error)) from error


def _run_train(args: argparse.Namespace) -> int:
    import logging

    from spockmip.data import load_subject
    from spockmip.outputs import OutputError
    from spockmip.runs import RunError
    from spockmip.training import TrainingPaths, train
    from spockmip.volumes import DataError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = training_config_from_args(args)
    train_ids, validation_ids = _subject_ids(args)
    try:
        train_subjects, validation_subjects = (
            [
                load_subject(
                    *_pair_paths(args.data, i),
                    patch_size=config.patch_size,
                    mip_axes=config.loss.volume_target_axes,
                    orientation=args.orientation,
                )
                for i in ids
            ]
            for ids in (train_ids, validation_ids)
        )
    except (DataError, ValueError) as error:
        raise CommandError(str(error)) from error
    paths = TrainingPaths(
        args.output / "best.pt", args.output / "history.csv", args.state_dir or args.output / "state"
    )
    try:
        history = train(
            train_subjects,
            validation_subjects,
            config,
            paths,
            args.device,
            args.threads,
            not args.no_progress,
            fold=args.fold,
        )
    except (DataError, OutputError, RunError) as error:
        raise CommandError(str(error)) from error
    best = min(history, key=lambda row: row["validation_ftl"])
    score = f"{best['validation_ftl']:.4f}"
    print(f"trained {len(history)} epochs; best validation FTL {score} (epoch {best['epoch']})")
    print(f"  {paths.best}\n  {paths.history}")
    return 0


def _add_predict(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from spockmip.windows import CPU_WINDOWS_PER_BATCH, FLIPS, GPU_WINDOWS_PER_BATCH, InferenceConfig

    defaults = InferenceConfig()
    parser = subparsers.add_parser(
        "predict",
        help="segment a volume, or a folder of volumes, with one model or the mean of several",
        description=(
            "Sliding-window segmentation of IMG written to SEG with IMG's voxel order, affine and header; "
            "with a folder as --input, every .nii/.nii.gz in it is segmented into the --output folder under "
            "its own name (as .nii.gz). Several --weights (e.g. the fold models of a variant) are an "
            "ensemble: their probabilities are averaged before the one threshold. --weights takes a "
            ".pt/.pth checkpoint, a folder with config.json + model.safetensors, or a Hugging Face repo id "
            "(fetched into the HF cache; HF_HUB_OFFLINE=1 uses the cache only). No code from the weights "
            "source is executed. Every output is checked before anything is computed."
        ),
    )
    parser.add_argument(
        "-w", "--weights", nargs="+", required=True, metavar="W", help="one model, or several to average"
    )
    parser.add_argument(
        "-i", "--input", type=Path, required=True, metavar="IMG", help="a NIfTI volume or a folder of them"
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="SEG",
        help="the segmentation file, or the folder of segmentations when --input is a folder",
    )
    parser.add_argument(
        "--probabilities",
        type=Path,
        metavar="PROB",
        help="also write the probability map (a folder when --input is one; default: not written)",
    )
    parser.add_argument(
        "--label",
        type=Path,
        metavar="LABEL",
        help="reference label for the overlay figure (a folder of same-named labels when --input is one; "
        "default: none)",
    )
    parser.add_argument(
        "--figures", type=Path, metavar="DIR", help="write MIP / overlay PNGs here (default: none)"
    )
    parser.add_argument(
        "--patch-size",
        type=_patch_side,
        nargs="+",
        metavar="P",
        help=f"window side(s) (default: the checkpoint's training patch, else {defaults.patch_size[0]})",
    )
    parser.add_argument(
        "--strides",
        "--stride",
        dest="strides",
        type=_positive_int,
        nargs="+",
        metavar="S",
        help=f"window strides (default: the checkpoint's training strides, else {list(defaults.strides)})",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help=f"flip test-time augmentation: average the probabilities over the {len(FLIPS)} flips of the "
        "three axes (each flipped back; 8 times slower; default: off)",
    )
    parser.add_argument(
        "--blend",
        choices=("average", "gaussian"),
        default=defaults.blend,
        help="how overlapping windows are combined (default: %(default)s)",
    )
    parser.add_argument(
        "--threshold", type=_threshold, default="otsu", help="'otsu' or a probability (default: %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"windows per batch (default: {CPU_WINDOWS_PER_BATCH} on a CPU, {GPU_WINDOWS_PER_BATCH} on a "
        "GPU)",
    )
    parser.add_argument("--compile", action="store_true", help=f"{COMPILE_HELP}; default: off")
    parser.add_argument(
        "--activation",
        choices=("relu", "leaky_relu"),
        help="override the activation (default: the checkpoint's, else the published model's)",
    )
    parser.add_argument(
        "--revision", help="Hugging Face revision (commit, tag or branch) to load (default: main)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    _add_orientation(parser)
    _add_runtime_options(parser)
    parser.set_defaults(handler=_run_predict)


class _PredictJob(NamedTuple):
    image: Path
    output: Path
    probabilities: Path | None
    label: Path | None


def _predict_jobs(args: argparse.Namespace) -> list[_PredictJob]:
    """One job for a file; for a folder, one per volume in it, outputs named after their input."""
    if not args.input.is_dir():
        return [_PredictJob(args.input, args.output, args.probabilities, args.label)]
    if args.output.resolve() == args.input.resolve():
        raise CommandError(f"{args.output}: the output folder is the input folder")
    for option, folder in (("--output", args.output), ("--probabilities", args.probabilities)):
        if folder is not None and folder.name.endswith((".nii", ".nii.gz")):
            raise CommandError(f"{folder}: {option} must be a folder when --input is a folder")
    images = _nifti_files(args.input)
    if not images:
        raise CommandError(f"{args.input}: no .nii or .nii.gz files")
    labels = _nifti_files(args.label) if args.label else {}
    unlabelled = [str(images[s]) for s in images if args.label and s not in labels]
    if unlabelled:
        raise CommandError(f"no label in {args.label} for {', '.join(unlabelled)}")
    return [
        _PredictJob(
            image,
            args.output / f"{subject}.nii.gz",
            args.probabilities / f"{subject}.nii.gz" if args.probabilities else None,
            labels.get(subject),
        )
        for subject, image in images.items()
    ]


def _recorded_geometry(weights: Sequence[str], key: str) -> tuple[int, int, int] | None:
    """The window geometry the models record; members that disagree leave the choice to the user."""
    from spockmip.weights import recorded_inference

    values = {recorded_inference(w).get(key) for w in weights}
    if len(values) > 1:
        option = "--" + key.replace("_", "-")
        raise CommandError(
            f"the --weights record different {key} ({', '.join(map(str, values))}); give {option}"
        )
    return values.pop()


def _run_predict(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from spockmip.devices import resolve_threads, select_device
    from spockmip.inference import check_outputs, predict_file
    from spockmip.volumes import DataError
    from spockmip.weights import WeightsError, load_weights
    from spockmip.windows import InferenceConfig

    torch.set_num_threads(resolve_threads(args.threads))
    defaults = InferenceConfig()
    try:
        jobs = _predict_jobs(args)
        for job in jobs:
            check_outputs(job.image, job.output, job.probabilities, args.figures)
        models = [load_weights(w, args.activation, args.revision) for w in args.weights]
        patch_size = _sizes(args.patch_size, "--patch-size") if args.patch_size else None
        strides = _sizes(args.strides, "--strides") if args.strides else None
        config = InferenceConfig(
            patch_size=patch_size or _recorded_geometry(args.weights, "patch_size") or defaults.patch_size,
            strides=strides or _recorded_geometry(args.weights, "strides") or defaults.strides,
            blend=args.blend,
            batch_size=args.batch_size,
            compile=args.compile,
        )
        device = select_device(args.device)
        for job in tqdm(jobs, desc="volumes", unit="file", disable=args.no_progress or len(jobs) == 1):
            threshold = predict_file(
                models,
                job.image,
                job.output,
                config,
                args.threshold,
                job.probabilities,
                job.label,
                args.figures,
                device,
                args.orientation,
                tta=args.tta,
                progress=not args.no_progress,
            )
            tqdm.write(f"wrote {job.output} (threshold {threshold:.4f})")
    except (DataError, WeightsError, ValueError) as error:
        raise CommandError(str(error)) from error
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against labels: overlap and continuity metrics per subject",
        description=(
            "Pair PRED/<id>.nii[.gz] with LABELS/<id>.nii[.gz] and write one CSV row per subject with Dice, "
            "IoU, precision, recall, clDice, Betti-0/1 errors, components and MIP Dice."
        ),
    )
    parser.add_argument(
        "--predictions", type=Path, required=True, metavar="PRED", help="folder of predictions"
    )
    parser.add_argument("--labels", type=Path, required=True, metavar="LABELS", help="folder of labels")
    parser.add_argument("--output", type=Path, required=True, metavar="CSV")
    _add_orientation(
        parser, "voxel order the masks are compared in; it names the MIP-Dice axes (default: %(default)s)"
    )
    parser.set_defaults(handler=_run_evaluate)


def _nifti_files(folder: Path) -> dict[str, Path]:
    from spockmip.data import subject_name

    if not folder.is_dir():
        raise CommandError(f"{folder}: not a folder")
    files = [p for p in sorted(folder.iterdir()) if p.name.endswith((".nii", ".nii.gz"))]
    named = {subject_name(p): p for p in files}
    if len(named) < len(files):
        names = [subject_name(p) for p in files]
        twins = [p.name for p, name in zip(files, names, strict=True) if names.count(name) > 1]
        raise CommandError(f"{folder}: {' and '.join(twins)} name the same subject")
    return named


def _run_evaluate(args: argparse.Namespace) -> int:
    from spockmip.evaluation import evaluate, write_metrics
    from spockmip.volumes import DataError

    predictions, labels = _nifti_files(args.predictions), _nifti_files(args.labels)
    if not predictions:
        raise CommandError(f"{args.predictions}: no .nii or .nii.gz files")
    unlabelled = [str(predictions[s]) for s in predictions if s not in labels]
    if unlabelled:
        raise CommandError(f"no label in {args.labels} for {', '.join(unlabelled)}")
    subjects = sorted(predictions)
    try:
        table = evaluate(
            subjects, [predictions[s] for s in subjects], [labels[s] for s in subjects], args.orientation
        )
    except (DataError, ValueError) as error:
        raise CommandError(str(error)) from error
    write_metrics(table, args.output)
    print(f"wrote {args.output} ({len(table)} subjects; mean Dice {table['dice'].mean():.4f})")
    return 0


_COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_synth,
    _add_train,
    _add_predict,
    _add_evaluate,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reproducible 3D cerebral-vessel segmentation in MR angiography (SPOCKMIP / DS6).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in _COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits after --help/--version (0) and on usage errors (2); returning keeps main testable.
        code = exit_request.code
        if code is None:
            return 0
        return code if isinstance(code, int) else EXIT_FAILURE
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
