"""Synthesis: seeded phantom subjects (image + label), from the ``dataset.synthetic`` settings.

The settings pass their bounds and the generator's own checks before anything is written; the same
settings, seed and subject index give byte-identical files on the command line and in the workflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from spockmip.datasets.synthetic import (
    Phantom,
    PhantomConfig,
    describe,
    generate_phantom,
    subject_seed,
    write_phantom,
    write_phantom_dataset,
)
from spockmip.settings.catalogue import SYNTHETIC
from spockmip.settings.rules import check_phantom_voxels

log = logging.getLogger(__name__)


def phantom_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``dataset.synthetic`` settings with the missing ones at their defaults."""
    return {name: setting.default for name, setting in SYNTHETIC.items()} | dict(settings)


def phantom_config(settings: Mapping[str, Any], spell: Callable[[str], str] = str) -> PhantomConfig:
    """The generator's config of ``dataset.synthetic`` settings (missing ones at their defaults)."""
    values = phantom_settings(settings)
    for name, value in values.items():
        SYNTHETIC[name].check(value, spell(name))
    check_phantom_voxels(values["shape"], spell("shape"))
    return PhantomConfig(
        shape=tuple(values["shape"]), spacing_mm=(values["spacing_mm"],) * 3, n_roots=values["trees"]
    )


def run_synthesis(
    settings: Mapping[str, Any],
    output: Path,
    spell: Callable[[str], str] = str,
    report: Callable[[str, Phantom], None] = lambda subject, phantom: None,
) -> list[str]:
    """Write ``output/images/<id>.nii.gz`` and ``output/labels/<id>.nii.gz`` for every subject; ``output``
    must not exist or be empty, and appears only once every subject is written."""
    values = phantom_settings(settings)
    config = phantom_config(values, spell)
    return write_phantom_dataset(output, values["n_subjects"], values["seed"], config, report=report)


def synthesize_subject(settings: Mapping[str, Any], index: int, image: Path, label: Path) -> Phantom:
    """Write subject ``index`` of the data set ``settings`` describe (one workflow job)."""
    config = phantom_config(settings)
    phantom = generate_phantom(subject_seed(settings["seed"], index), config)
    write_phantom(phantom, image, label)
    log.info("%s", describe(phantom))
    return phantom
