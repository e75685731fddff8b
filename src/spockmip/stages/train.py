"""Training one (variant, fold): settings, subjects and outputs checked, then
:func:`spockmip.training.trainer.train`.

The settings pass the rules of :mod:`spockmip.settings.rules` before anything is loaded; the subjects'
roles must be disjoint (a validation subject that is also trained on would make model selection
meaningless); no output or state may be one of the inputs (images, labels, settings and split files), hold
one, or lie in the folder of an image or a label.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from spockmip.data.splits import check_roles
from spockmip.errors import DataError
from spockmip.files.outputs import refuse_overwriting_inputs


def run_training(
    pairs: Mapping[str, tuple[Path, Path]],
    train_ids: Sequence[str],
    validation_ids: Sequence[str],
    settings: Mapping[str, Any],
    output: Path,
    *,
    state_dir: Path | None = None,
    orientation: str = "stored",
    fold: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    spell: Callable[[str], str] = str,
    given: Collection[str] | None = None,
    settings_files: Sequence[Path] = (),
    roles_source: str = "subjects",
) -> list[dict[str, Any]]:
    """Train (or resume) on ``pairs[id] = (image, label)``; writes ``output/best.pt`` (the epoch of lowest
    validation loss), ``output/final.pt`` (the last epoch's), ``output/history.csv`` and the run's record
    ``output/provenance.json`` when training ends, the resume state in ``state_dir`` (default
    ``output/state``).

    ``settings`` are flat training settings (the rest at their defaults); ``spell`` names a setting as the
    user wrote it, ``given`` the settings the user wrote (default: every key of ``settings``; the workflow,
    whose ``settings`` hold defaults, passes the variant's own keys), ``settings_files`` are the files they
    came from (protected as inputs, and hashed into the record), ``roles_source`` names where the subject
    lists came from in an error.
    """
    from spockmip.data.subjects import load_subject
    from spockmip.training.trainer import TrainingPaths, train, training_config_from_settings

    config = training_config_from_settings(settings, spell, given)
    check_roles(train_ids, validation_ids, source=roles_source)
    paths = TrainingPaths(output / "best.pt", output / "history.csv", state_dir or output / "state")
    volumes = [
        (role, path) for image, label in pairs.values() for role, path in (("image", image), ("label", label))
    ]
    inputs = {Path(path).parent: f"the {role} folder" for role, path in volumes}
    inputs.update({Path(path): f"the {role}" for role, path in volumes})
    inputs.update({Path(f): "the settings file" for f in settings_files})
    refuse_overwriting_inputs(
        {
            output: "output folder",
            paths.best: "best weights",
            paths.final: "final weights",
            paths.history: "history",
            paths.record: "provenance record",
            paths.state_dir: "state folder",
        },
        inputs,
    )

    def load(ids: Sequence[str]) -> list:
        missing = [i for i in ids if i not in pairs]
        if missing:
            raise DataError(f"{missing[0]}: no image and label for this subject ({roles_source})")
        return [
            load_subject(*pairs[i], config.patch_size, config.loss.volume_target_axes, i, orientation)
            for i in ids
        ]

    return train(
        load(train_ids),
        load(validation_ids),
        config,
        paths,
        device,
        threads,
        progress,
        fold=fold,
        sources=[Path(f) for f in settings_files],
    )
