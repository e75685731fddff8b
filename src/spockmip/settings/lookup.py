"""One training run's settings looked up in the catalogue: defaults, a variant's settings, completed and
grouped for the library's config objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spockmip.errors import SettingsError
from spockmip.settings.catalogue import (
    COMPARISON,
    INFERENCE,
    PUBLISHED,
    RESOURCE,
    SECTIONS,
    TRAINING,
    VARIANT,
)
from spockmip.settings.setting import Setting


def default(section: str, name: str) -> Any:
    """The default of ``section.name`` (``"training"``, ``"batch_size"``), as the library's dataclasses
    declare it: sequences as tuples."""
    return _lookup(section)[name].default


def _lookup(section: str) -> dict[str, Setting]:
    tables = {
        "training": {**TRAINING, **VARIANT},
        "variant": {**VARIANT, **COMPARISON},
        "resources": RESOURCE,
        "published_weights": PUBLISHED,
    }
    if section in tables:
        return tables[section]
    head, _, rest = section.partition(".")
    found = SECTIONS[head]
    return found.sections[rest].settings if rest else found.settings


def training_settings() -> dict[str, Setting]:
    """Every setting of one training run, by its flat name (the training section and a variant's keys)."""
    return {**TRAINING, **VARIANT}


# ---------------------------------------------------------------------------------------------------------


def complete_training(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Flat training settings with every missing one at its default (sequences as tuples)."""
    complete = {name: setting.default for name, setting in training_settings().items()}
    complete.update({name: tuple(v) if isinstance(v, list) else v for name, v in settings.items()})
    return complete


def training_fields() -> dict[str, tuple[str, str]]:
    """Where each training setting (by its flat name) lives in the library's config objects: the group
    (``run``, ``loss`` or ``deformation``; :class:`spockmip.training.trainer.TrainingConfig`) and the
    field name, so that settings and config objects convert both ways."""
    fields = {}
    for name, setting in training_settings().items():
        group, _, target = (setting.target or f"run.{name}").rpartition(".")
        fields[name] = (group or "run", target)
    return fields


def nested_training(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat training settings grouped by the config object that takes them, under its field names:
    ``{"run": {...}, "loss": {...}, "deformation": {...}}``
    (:class:`spockmip.training.trainer.TrainingConfig`)."""
    fields = training_fields()
    groups: dict[str, dict[str, Any]] = {"run": {}, "loss": {}, "deformation": {}}
    for name, value in settings.items():
        group, target = fields[name]
        groups[group][target] = tuple(value) if isinstance(value, list) else value
    return groups


def variant_settings(config: Mapping[str, Any], name: str, seed: int | None = None) -> dict[str, Any]:
    """The flat training settings of variant ``name`` of a workflow config (``training:`` and
    ``variants:``): the shared defaults overridden by the variant's own keys, less its comparison keys.

    ``seed`` chooses the replicate where ``training.seeds`` lists several; with one listed seed, that is
    the run's seed. The workflow and ``spockmip train --config`` both call this, so one settings file
    trains the same run either way.
    """
    variants = config.get("variants") or {}
    if name not in variants:
        known = ", ".join(variants) or "none"
        raise SettingsError(f"variants.{name}: no such variant (known: {known})")
    variant = {key: value for key, value in variants[name].items() if key not in COMPARISON}
    shared = dict(config.get("training") or {})
    seeds = shared.pop("seeds", None)
    if seed is not None:
        shared["seed"] = seed
    elif seeds is not None and len(seeds) == 1:
        shared["seed"] = seeds[0]
    elif seeds is not None:
        raise SettingsError(
            f"training.seeds: lists {len(seeds)} seeds and one training run takes one (the workflow trains "
            "each; spockmip train --seed chooses)"
        )
    return {**shared, **variant}


def _fed_fields(group: str) -> dict[str, Setting]:
    """The catalogue entries that feed the fields of one library config object, by field name: ``run``
    (the training run's own fields), ``loss`` or ``deformation`` (by each entry's ``target``), or
    ``inference`` (the sliding window's, by name)."""
    if group == "inference":
        return INFERENCE
    settings = training_settings()
    return {field: settings[name] for name, (owner, field) in training_fields().items() if owner == group}


def check_fields(config: Any, group: str) -> None:
    """Check each field of a library config object that a catalogue entry feeds by that entry, the one
    declaration of its choices and bounds (:func:`_fed_fields` names ``group``); the message names the
    field. Fields the object does not have are the entry's business elsewhere."""
    for name, setting in _fed_fields(group).items():
        if hasattr(config, name):
            setting.check(getattr(config, name), name)
