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

from spockmip import __version__

PROG = "spockmip"
# Exit status of commands that fail for a reason the user can fix (argparse uses 2 for usage errors).
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure explained by its message alone (bad input, existing output): no traceback needed."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
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
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset directory to create")
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
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    # Imported per command so that --help, and every other command, skip loading what they do not use.
    from spockmip.synthetic import PhantomConfig, write_phantom_dataset

    try:
        config = PhantomConfig(shape=tuple(args.shape), spacing_mm=(args.spacing,) * 3)
    except ValueError as error:
        raise CommandError(str(error)) from error
    try:
        subjects = write_phantom_dataset(args.out, args.n_subjects, args.seed, config)
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    shape = "x".join(str(s) for s in config.shape)
    print(
        f"wrote {len(subjects)} phantom subject(s) to {args.out} "
        f"(shape {shape}, spacing {args.spacing:g} mm, seed {args.seed})"
    )
    for subject in subjects:
        print(f"  {args.out / 'images' / f'{subject}.nii.gz'}  {args.out / 'labels' / f'{subject}.nii.gz'}")
    return 0


_COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (_add_synth,)


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
