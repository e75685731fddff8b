"""The ``spockmip`` command line.

Each command is one ``_add_<name>`` function that adds its sub-parser and sets ``handler`` to the function
that runs it, listed once in ``_COMMANDS``. Handlers only translate their options into a call of
the stage's library function (:mod:`spockmip.stages`), which validates and raises
:class:`~spockmip.errors.SpockmipError` for problems the user can fix; :func:`main` prints those (and
unwritable outputs) as one line on stderr and returns 1, so neither they nor argparse's usage errors end in
a traceback. Any other exception is a bug and keeps its traceback. Options are derived from
:mod:`spockmip.settings`; building the parser imports no stage, so ``--help`` loads no torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from spockmip import __version__
from spockmip.errors import SettingsError, SpockmipError
from spockmip.settings import catalogue, lookup, rules
from spockmip.settings.options import add_setting_option, given_settings, option_type

PROG = "spockmip"
# Exit status of commands that fail for a reason the user can fix, usage errors included.
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        help="torch device, e.g. cpu or cuda:0 (default: cuda if available); unset or cuda takes a GPU no "
        "other spockmip job holds",
    )
    parser.add_argument(
        "--threads",
        type=option_type(catalogue.RESOURCE["threads"], "--threads"),
        help="CPU threads for torch (default: OMP_NUM_THREADS, SLURM_CPUS_PER_TASK, else the job's CPUs)",
    )


def _add_orientation(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    orientation = catalogue.DATASET["orientation"]
    parser.add_argument(
        "--orientation",
        choices=orientation.choices,
        default=orientation.default,
        help=help_text or f"{orientation.help} (default: %(default)s)",
    )


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
    for name, setting in catalogue.SYNTHETIC.items():
        add_setting_option(parser, setting, dest=name)
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from spockmip.datasets.synthetic import describe
    from spockmip.stages.synthesize import phantom_settings, run_synthesis

    given = given_settings(args, catalogue.SYNTHETIC)
    subjects = run_synthesis(
        given,
        args.output,
        spell=lambda name: catalogue.SYNTHETIC[name].option,
        report=lambda subject, phantom: print(f"{subject}: {describe(phantom)}"),
    )
    values = phantom_settings(given)
    shape = "x".join(str(s) for s in values["shape"])
    print(
        f"wrote {len(subjects)} phantom subject(s) to {args.output} "
        f"(shape {shape}, spacing {values['spacing_mm']:g} mm, seed {values['seed']})"
    )
    for subject in subjects:
        image, label = (args.output / folder / f"{subject}.nii.gz" for folder in ("images", "labels"))
        print(f"  {image}  {label}")
    return 0


def _pair_paths(data: Path, subject: str) -> tuple[Path, Path]:
    """DATA/images/<id>.nii[.gz] and DATA/labels/<id>.nii[.gz] (the layout ``spockmip synth`` writes)."""
    from spockmip.files.volumes import find_volume

    hint = "--data holds images/<id>.nii[.gz] and labels/<id>.nii[.gz] for every subject it trains on"
    return find_volume(data / "images", subject, hint), find_volume(data / "labels", subject, hint)


def _add_train(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one variant on one split (resumable: rerun the same command to continue)",
        description=(
            "Train a UNet3D/UNetMSS3D with the SPOCKMIP and/or DS6 objective on DATA/images/<id>.nii.gz with "
            "labels DATA/labels/<id>.nii.gz. Writes OUTPUT/best.pt (lowest validation Focal Tversky), "
            "OUTPUT/final.pt (the last epoch's weights), OUTPUT/history.csv and OUTPUT/provenance.json (how "
            "the run was made) when training ends; the state in --state-dir lets a killed run resume. "
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
        "--fold",
        type=option_type(catalogue.SPLIT["seed"], "--fold"),
        metavar="K",
        help="fold of --split to train (0-based)",
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
    options = parser.add_argument_group(
        "training settings (each overrides --config's; config key of the same name)"
    )
    for setting in lookup.training_settings().values():
        add_setting_option(options, setting)
    _add_orientation(parser)
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, logs only (default: shown)"
    )
    _add_runtime_options(parser)
    parser.set_defaults(handler=_run_train)


def _file_settings(args: argparse.Namespace) -> tuple[dict, Callable[[str], str]]:
    """The flat settings of --config's variant (:func:`spockmip.settings.lookup.variant_settings`), or none,
    and how the file spells each. The file takes the workflow config's path first (the schema, then every
    rule between settings: :func:`spockmip.settings.workflow.validated_settings`), so a file the workflow
    refuses is refused here too, naming the key as the file writes it."""
    if args.config is None:
        if args.variant is not None:
            raise SettingsError("--variant: needs --config")
        return {}, str
    import copy

    from spockmip.settings.workflow import validated_settings
    from spockmip.settings.yamlfiles import load_yaml

    where = f"{args.config}:"
    document = load_yaml(args.config)
    if not isinstance(document, dict) or not isinstance(document.get("variants"), dict):
        raise SettingsError(f"{args.config}: not a workflow settings file (no variants: section)")
    validated_settings(copy.deepcopy(document), where)
    name = args.variant
    if name is None:
        if len(document["variants"]) != 1:
            raise SettingsError(f"{args.config}: give --variant, one of {', '.join(document['variants'])}")
        name = next(iter(document["variants"]))
    try:
        found = lookup.variant_settings(document, name, args.seed)
    except SettingsError as error:
        raise SettingsError(f"{where} {error}") from error
    return found, rules.config_key(name, document["variants"][name], where)


def _subject_ids(args: argparse.Namespace) -> tuple[list[str], list[str], str]:
    """Training and validation subjects: listed, or fold ``--fold`` of the workflow's split file; and
    where they came from."""
    from spockmip.data.splits import read_fold

    if args.split is None:
        if args.fold is not None:
            raise SettingsError("--fold: needs --split")
        if not (args.train and args.validation):
            raise SettingsError("--train: give --train and --validation, or --split and --fold")
        return args.train, args.validation, "--train/--validation"
    if args.train or args.validation:
        raise SettingsError("--split: give --split and --fold, or --train and --validation, not both")
    if args.fold is None:
        raise SettingsError("--split: needs --fold")
    train, validation = read_fold(args.split, args.fold)
    return train, validation, f"{args.split} fold {args.fold}"


def _train_settings(args: argparse.Namespace) -> tuple[dict, Callable[[str], str]]:
    """The run's flat settings: --config's variant overridden by the options given; and how the user
    wrote each (the option, or the file and key)."""
    from_file, in_file = _file_settings(args)
    options = lookup.training_settings()
    given = given_settings(args, options)

    def spell(name: str) -> str:
        """The option where the user gave one or gave no settings file, else the file's key."""
        return options[name].option if name in given or args.config is None else in_file(name)

    return {**from_file, **given}, spell


def _start_computing(device: str | None) -> None:
    """Log progress to stderr and, for a run on the default CUDA device, claim a free GPU: after the
    command's own checks, so a mistyped option is reported without waiting for a GPU, and before the stage
    starts CUDA (:func:`spockmip.runtime.gpuslots.claim_gpu`)."""
    import logging

    from spockmip.runtime.gpuslots import claim_gpu

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    claim_gpu(device)


def _run_train(args: argparse.Namespace) -> int:
    from spockmip.stages.train import run_training

    chosen, spell = _train_settings(args)
    train_ids, validation_ids, source = _subject_ids(args)
    pairs = {i: _pair_paths(args.data, i) for i in dict.fromkeys([*train_ids, *validation_ids])}
    _start_computing(args.device)
    history = run_training(
        pairs,
        train_ids,
        validation_ids,
        chosen,
        args.output,
        state_dir=args.state_dir,
        orientation=args.orientation,
        fold=args.fold,
        device=args.device,
        threads=args.threads,
        progress=not args.no_progress,
        spell=spell,
        settings_files=[f for f in (args.config, args.split) if f is not None],
        roles_source=source,
    )
    criterion = lookup.complete_training(chosen)["validation_criterion"]
    column = catalogue.VALIDATION_COLUMNS[criterion]
    best = min(history, key=lambda row: row[column])
    print(
        f"trained {len(history)} epochs; best validation {catalogue.VALIDATION_LABELS[criterion]} "
        f"{best[column]:.4f} (epoch {best['epoch']}; validation_criterion {criterion}), final "
        f"{history[-1][column]:.4f} (epoch {history[-1]['epoch']})"
    )
    for name in ("best.pt", "final.pt", "history.csv", "provenance.json"):
        print(f"  {args.output / name}")
    return 0


def _add_predict(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
            "source is executed. Every output is checked before anything is computed, no output may be an "
            "input or lie in an input folder, and the outputs appear only once every volume is segmented."
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
    inference = catalogue.INFERENCE
    add_setting_option(parser, inference["patch_size"], "the checkpoint's training patch, else 64")
    add_setting_option(parser, inference["strides"], "the checkpoint's training strides, else 32 32 16")
    parser.add_argument(
        "--stride",
        dest="strides",
        nargs="+",
        type=option_type(inference["strides"], "--stride"),
        help=argparse.SUPPRESS,
    )
    for name in ("tta", "blend", "batch_size", "compile"):
        add_setting_option(parser, inference[name])
    add_setting_option(parser, inference["threshold"])
    parser.add_argument(
        "--activation",
        choices=catalogue.ACTIVATIONS,
        help="override the activation (default: the checkpoint's, else the published model's)",
    )
    parser.add_argument(
        "--revision", help="Hugging Face revision (commit, tag or branch) to load (default: main)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown)")
    _add_orientation(parser)
    _add_runtime_options(parser)
    parser.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from spockmip.inference.planning import PredictionJob, folder_jobs
    from spockmip.stages.predict import run_prediction

    if args.input.is_dir():
        jobs = folder_jobs(args.input, args.output, args.probabilities, args.label)
    else:
        jobs = [PredictionJob(args.input, args.output, args.probabilities, args.label)]
    given = given_settings(args, catalogue.INFERENCE)
    inference = {name: s.default for name, s in catalogue.INFERENCE.items()} | given
    _start_computing(args.device)
    run_prediction(
        args.weights,
        jobs,
        inference,
        figures=args.figures,
        orientation=args.orientation,
        device=args.device,
        activation=args.activation,
        revision=args.revision,
        threads=args.threads,
        progress=not args.no_progress and len(jobs) == 1,
        spell=lambda name: catalogue.INFERENCE[name].option,
        report=lambda job, threshold: tqdm.write(f"segmented {job.image} (threshold {threshold:.4f})"),
    )
    for job in jobs:
        print(f"wrote {job.output}")
    return 0


def _add_evaluate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against labels: overlap and continuity metrics per subject",
        description=(
            "Pair PRED/<id>.nii[.gz] with LABELS/<id>.nii[.gz] and write one CSV row per subject with Dice, "
            "IoU, precision, recall, clDice, Betti-0/1 errors, components, MIP Dice, and HD95, ASSD (mm) and "
            "normalised surface Dice from each label's voxel size."
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
    add_setting_option(parser, catalogue.EVALUATION["nsd_tolerance_mm"], "each file's smallest voxel size")
    add_setting_option(
        parser, catalogue.EVALUATION["radius_edges_mm"], "1 and 2 times each file's smallest voxel size"
    )
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from spockmip.evaluation.scoring import ScoringSettings, folder_pairs
    from spockmip.settings.rules import check_radius_edges
    from spockmip.stages.evaluate import run_evaluation

    check_radius_edges(args.radius_edges_mm, "--radius-edges-mm")

    subjects, predictions, labels = folder_pairs(args.predictions, args.labels)
    table = run_evaluation(
        subjects,
        predictions,
        labels,
        {args.output: subjects},
        args.orientation,
        settings=ScoringSettings.of(
            {"nsd_tolerance_mm": args.nsd_tolerance_mm, "radius_edges_mm": args.radius_edges_mm}
        ),
    )
    print(f"wrote {args.output} ({len(table)} subjects; mean Dice {table['dice'].mean():.4f})")
    return 0


def _add_provenance(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "provenance",
        help="print how a result was made: the record of a checkpoint or of a provenance.json",
        description=(
            "Print, as JSON, the provenance record of PATH: a provenance.json written beside a training "
            "run, a prediction set or a summary table (code, settings, SHA-256 of the input and output "
            "files, versions, machine, wall time, peak memory), or a checkpoint (best.pt, final.pt) written "
            "by spockmip train, which carries the part that identical runs share (no paths, machine or "
            "time). Reading a checkpoint executes no code from it."
        ),
    )
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="a checkpoint (.pt) or a provenance record (.json)"
    )
    parser.set_defaults(handler=_run_provenance)


def _run_provenance(args: argparse.Namespace) -> int:
    import json

    from spockmip.runtime.records import read_record

    print(json.dumps(read_record(args.path), indent=2, sort_keys=True))
    return 0


_COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _add_synth,
    _add_train,
    _add_predict,
    _add_evaluate,
    _add_provenance,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported like every other failure: one line naming the option, and
    the project's exit status (sub-commands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_FAILURE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered command."""
    parser = _Parser(
        prog=PROG,
        description="Reproducible 3D cerebral-vessel segmentation in MR angiography (SPOCKMIP / DS6).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in _COMMANDS:
        add_command(subparsers)
    return parser


def _failure(command: str, message: str) -> int:
    """Report a failure the user can fix as one line on stderr (its first line: messages name the file,
    key or option first)."""
    print(f"{PROG} {command}: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits after --help/--version (0) and on usage errors (1, :class:`_Parser`); returning keeps
        # main testable.
        code = exit_request.code
        if code is None:
            return 0
        return code if isinstance(code, int) else EXIT_FAILURE
    try:
        return args.handler(args)
    except SpockmipError as error:
        return _failure(args.command, str(error))
    except OSError as error:
        # An output folder that is read-only, full or under a file: the system's reason, with the path.
        named = f"{error.filename}: {error.strerror}" if error.filename is not None else str(error)
        return _failure(args.command, named)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
