"""What a prediction call will do, decided before any model is loaded: its jobs, their outputs checked, and
the inference settings as one typed object.

Torch-free: a call that names a bad output, or a folder without volumes, fails here in a fraction of a
second instead of after a checkpoint has been read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spockmip.errors import OutputError, SettingsError
from spockmip.files.outputs import check_writable, refuse_overwriting_inputs
from spockmip.files.volumes import NIFTI_SUFFIXES, labelled_volumes
from spockmip.settings.catalogue import INFERENCE, RELEASED_PATCH_SIZE, RELEASED_STRIDES

Triple = tuple[int, int, int]
Roles = tuple[tuple[Path, str], ...]  # folders, each with its role as the user knows it


@dataclass(frozen=True)
class PredictionJob:
    """One volume to segment and where its results go (``probabilities`` and ``label`` optional).

    A job planned from folders (:func:`folder_jobs`) names them, each with its role: ``input_folders``, the
    folders its image and label were found in, and ``output_folders``, those its results go to. A folder
    given as input is the input as a whole: no output may be, hold or lie in it, since results written
    among the images would be taken for images by the next command that reads the folder. A job of single
    files names no folder: a segmentation beside its image is the usual place for it."""

    image: Path
    output: Path
    probabilities: Path | None = None
    label: Path | None = None
    input_folders: Roles = ()
    output_folders: Roles = ()


@dataclass(frozen=True)
class PredictionGroup:
    """Jobs segmented by the same ``weights`` (one source, or several averaged as an ensemble), and where
    the set's provenance record goes (:mod:`spockmip.runtime.records`; None: no record)."""

    weights: Sequence[Any]
    jobs: Sequence[PredictionJob]
    record: Path | None = None

    @classmethod
    def of(
        cls,
        weights: Sequence[Any],
        images: Sequence[Any],
        outputs: Sequence[Any],
        record: str | Path | None = None,
    ) -> PredictionGroup:
        """The group that segments ``images[i]`` into ``outputs[i]``; the lists must pair up."""
        if len(images) != len(outputs):
            raise OutputError(f"{len(images)} images but {len(outputs)} outputs for the weights {weights}")
        jobs = [PredictionJob(Path(i), Path(o)) for i, o in zip(images, outputs, strict=True)]
        return cls(list(weights), jobs, None if record is None else Path(record))


@dataclass(frozen=True)
class InferenceSettings:
    """The ``inference`` settings of one call (:data:`spockmip.settings.catalogue.INFERENCE`), typed, every
    one present. ``patch_size`` and ``strides`` None mean the geometry each checkpoint records
    (:meth:`window`)."""

    patch_size: Triple | None
    strides: Triple | None
    blend: str
    threshold: float | str
    batch_size: int | None
    tta: bool
    compile: bool

    @classmethod
    def of(cls, given: Mapping[str, Any]) -> InferenceSettings:
        """The settings ``given`` (by catalogue name, as the workflow and the command line pass them), the
        others at their defaults."""
        values = {name: setting.default for name, setting in INFERENCE.items()}
        values.update(given)
        return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})

    def window(
        self, recorded: Sequence[tuple[Any, Any]], spell: Callable[[str], str]
    ) -> tuple[Triple, Triple]:
        """The window and strides: as given, else as every model records them, else the released code's
        window (published weights record none).

        Members of an ensemble that record different geometries leave the choice to the user."""
        chosen = []
        for index, (key, given, released) in enumerate(
            (
                ("patch_size", self.patch_size, RELEASED_PATCH_SIZE),
                ("strides", self.strides, RELEASED_STRIDES),
            )
        ):
            value = given
            if value is None:
                values = {r[index] for r in recorded}
                if len(values) > 1:
                    raise SettingsError(
                        f"{spell(key)}: the weights record different {key} ({', '.join(map(str, values))}); "
                        "give one"
                    )
                value = values.pop() or released
            chosen.append(tuple(value))
        return chosen[0], chosen[1]


def folder_jobs(
    images: Path, output: Path, probabilities: Path | None = None, labels: Path | None = None
) -> list[PredictionJob]:
    """A job per volume of the folder ``images``, each output named after its input (as ``.nii.gz``)."""
    for role, folder in (("output", output), ("probabilities", probabilities)):
        if folder is not None and folder.name.endswith(NIFTI_SUFFIXES):
            raise OutputError(f"{folder}: the {role} must be a folder when the input is a folder")
    input_folders = _named((images, "the input folder"), (labels, "the label folder"))
    output_folders = _named((output, "segmentation folder"), (probabilities, "probabilities folder"))
    return [
        PredictionJob(
            image,
            output / f"{subject}.nii.gz",
            probabilities / f"{subject}.nii.gz" if probabilities else None,
            label,
            input_folders,
            output_folders,
        )
        for subject, (image, label) in labelled_volumes(images, labels).items()
    ]


def _named(*folders: tuple[Path | None, str]) -> Roles:
    """The folders given (not None), each with its role."""
    return tuple((folder, role) for folder, role in folders if folder is not None)


def check_jobs(
    jobs: Sequence[PredictionJob],
    weights: Sequence[Any],
    figures: Path | None,
    records: Sequence[Path] = (),
) -> None:
    """Every output a NIfTI name (``records``, the groups' provenance records, JSON files), written once,
    none of them an input, in an input folder or a folder holding an input, and writable.

    Inputs are checked before writability: an output among read-only inputs is refused for what it would
    overwrite, which says more than the missing permission."""
    written: dict[Path, str] = {}  # each output's resolved path, to find one written twice
    files = [Path(w) for w in weights if isinstance(w, str | Path)]
    inputs: dict[Path, str] = {
        path: "the weights folder" if path.is_dir() else "the weights" for path in files if path.exists()
    }
    outputs: dict[Path, str] = {}
    for job in jobs:
        inputs.update(job.input_folders)
        outputs.update(job.output_folders)
    if figures is not None:
        outputs[figures] = "figures folder"
    for job in jobs:
        inputs[job.image] = "the input image"
        if job.label is not None:
            inputs[job.label] = "the label"
    for job in jobs:
        for role, path in (("segmentation", job.output), ("probability map", job.probabilities)):
            if path is None:
                continue
            if not path.name.endswith(NIFTI_SUFFIXES):
                raise OutputError(f"{path}: the {role} must be named .nii or .nii.gz")
            if path.resolve() in written:
                raise OutputError(f"{path}: the {role} would overwrite the {written[path.resolve()]}")
            written[path.resolve()] = role
            outputs[path] = role
    for record in records:
        if record.resolve() in written:
            raise OutputError(
                f"{record}: the provenance record would overwrite the {written[record.resolve()]}"
            )
        written[record.resolve()] = "provenance record"
        outputs[record] = "provenance record"
    refuse_overwriting_inputs(outputs, inputs)
    for job in jobs:
        for path in (job.output, job.probabilities):
            if path is not None:
                check_writable(path)
    for record in records:
        check_writable(record)
    if figures is not None:
        check_writable(figures, folder=True)
