"""The workflow's one reader of its config: :class:`WorkflowSettings`, the rules between sections, and
:func:`validated_settings`, the one path a config takes (the workflow's, and a ``spockmip train --config``
file): the schema, then every rule."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from spockmip.errors import SettingsError
from spockmip.settings.catalogue import RESOURCE
from spockmip.settings.lookup import complete_training, variant_settings
from spockmip.settings.rules import (
    check_phantom_voxels,
    check_radius_edges,
    check_replicates,
    check_training,
    check_window,
    config_key,
)


def _non_finite(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _non_finite(item, f"{path}.{index}")


@dataclass(frozen=True)
class WorkflowSettings:
    """The workflow's view of a config that the schema has validated and completed with its defaults (but a
    variant's, which the schema leaves out so that each variant holds the keys written; :meth:`training`
    fills them in).

    The Snakefile and its rules read the config through this class only, and :meth:`check` applies every
    rule the schema cannot express, so a config that would fail after hours of training fails at once.
    """

    config: Mapping[str, Any]
    # The config as its user wrote it, before the schema filled in the defaults (which settings were given).
    given: Mapping[str, Any] = field(default_factory=dict)
    # What names the config in messages: "config" in the workflow, "<file>:" for a settings file.
    where: str = "config"

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.config[name])

    @property
    def dataset(self) -> dict[str, Any]:
        return self.section("dataset")

    @property
    def dataset_name(self) -> str:
        return self.config["dataset"]["name"]

    @property
    def source(self) -> str:
        return self.config["dataset"]["source"]

    @property
    def orientation(self) -> str:
        return self.config["dataset"]["orientation"]

    @property
    def phantoms(self) -> dict[str, Any]:
        return dict(self.config["dataset"]["synthetic"])

    @property
    def variants(self) -> list[str]:
        return list(self.config["variants"])

    @property
    def baselines(self) -> dict[str, str | None]:
        return {name: variant.get("baseline") for name, variant in self.config["variants"].items()}

    @property
    def folds(self) -> int:
        return self.config["split"]["folds"]

    @property
    def split(self) -> dict[str, Any]:
        """How the subjects are dealt into the test set and the folds (what ``splits.json`` is made of):
        the ``split`` section but ``cv_checkpoint``, which chooses weights, not subjects, so that changing
        it never deals the subjects anew (nor retrains)."""
        return {key: value for key, value in self.section("split").items() if key != "cv_checkpoint"}

    @property
    def cv_checkpoint(self) -> str:
        """The checkpoint (``final`` or ``best``) that predicts each fold's validation subjects."""
        return self.config["split"]["cv_checkpoint"]

    @property
    def inference(self) -> dict[str, Any]:
        return self.section("inference")

    @property
    def evaluation(self) -> dict[str, Any]:
        """The ``evaluation`` section: how every prediction is scored."""
        return self.section("evaluation")

    @property
    def postprocessing(self) -> dict[str, Any]:
        return self.section("postprocessing")

    @property
    def statistics(self) -> dict[str, Any]:
        return self.section("statistics")

    @property
    def published(self) -> dict[str, dict[str, Any]]:
        return {name: dict(entry) for name, entry in self.config["published_weights"].items()}

    def resources(self, stage: str) -> dict[str, Any]:
        """``threads``, ``mem_mb``, ``runtime`` and ``gpu`` of ``stage``'s jobs (train or predict)."""
        return {**{n: s.default for n, s in RESOURCE.items()}, **self.config["resources"][stage]}

    def variant_keys(self, variant: str) -> list[str]:
        """The keys ``variant`` sets itself (the rest come from ``training`` or are defaults), for naming
        them in errors and for the rules that judge what was written: the schema gives a variant's keys no
        defaults, so that the validated config holds them as written."""
        return sorted(self.config["variants"][variant])

    @property
    def seeds(self) -> list[int]:
        """The training seeds: ``training.seeds``, else ``training.seed`` alone."""
        training = self.config["training"]
        return list(training["seeds"]) if training.get("seeds") is not None else [training["seed"]]

    def training(self, variant: str, seed: int | None = None) -> dict[str, Any]:
        """Every training setting of ``variant`` (trained with ``seed``, default the first of
        :attr:`seeds`), defaults filled in."""
        chosen = self.seeds[0] if seed is None else seed
        return complete_training(variant_settings(self.config, variant, chosen))

    def check(self) -> None:
        """Every rule between settings; the first broken one raises :class:`SettingsError` naming its key."""
        for path in _non_finite(self.config, ""):
            raise SettingsError(f"{self.where} {path}: not a finite number")
        check_replicates(self.given.get("training") or {}, self.where)
        dataset = self.config["dataset"]
        if dataset["download"] and dataset["source"] != "smile_uhura":
            raise SettingsError(
                f"{self.where} dataset.download: only the smile_uhura release can be downloaded, "
                f"dataset.source is {dataset['source']}"
            )
        if dataset["source"] != "synthetic" and not dataset["subjects"]:
            raise SettingsError(
                f"{self.where} dataset.subjects: must list the subject ids when dataset.source is "
                f"{dataset['source']}"
            )
        for name, baseline in self.baselines.items():
            if baseline is not None and baseline not in self.config["variants"]:
                raise SettingsError(f"{self.where} variants.{name}.baseline: {baseline!r} is not a variant")
        for name in self.variants:
            own = self.variant_keys(name)
            try:
                check_training(self.training(name), config_key(name, own, self.where), own)
            except SettingsError as error:
                raise SettingsError(f"{error} (variant {name})") from None
        if self.config["postprocessing"]["region_mask"] and dataset["source"] != "local":
            raise SettingsError(
                f"{self.where} postprocessing.region_mask: only a local data set provides region masks "
                f"(masks/<id> beside images/ and labels/); dataset.source is {dataset['source']}"
            )
        check_radius_edges(
            self.config["evaluation"]["radius_edges_mm"], f"{self.where} evaluation.radius_edges_mm"
        )
        inference = self.config["inference"]
        if inference["patch_size"] is not None and inference["strides"] is not None:
            check_window(
                inference["patch_size"], inference["strides"], lambda n: f"{self.where} inference.{n}"
            )
        if dataset["source"] == "synthetic":
            self._check_phantom_size()
            self._check_phantom_count()

    def _check_phantom_count(self) -> None:
        """Enough phantoms for the test set and one validation subject per fold."""
        count, split = self.config["dataset"]["synthetic"]["n_subjects"], self.config["split"]
        test = (
            split["test_subjects"] if isinstance(split["test_subjects"], int) else len(split["test_subjects"])
        )
        if count < test + split["folds"]:
            raise SettingsError(
                f"{self.where} dataset.synthetic.n_subjects: {count} phantoms cannot fill {split['folds']} "
                f"folds (split.folds) and {test} test subjects (split.test_subjects)"
            )

    def _check_phantom_size(self) -> None:
        """The phantoms' size is known before any job runs; real volumes are checked when loaded."""
        shape = self.config["dataset"]["synthetic"]["shape"]
        check_phantom_voxels(shape, f"{self.where} dataset.synthetic.shape")
        patches = {f"variants.{name}": self.training(name)["patch_size"] for name in self.variants}
        patches["inference"] = self.config["inference"]["patch_size"]
        for where, patch in patches.items():
            key = "inference.patch_size" if where == "inference" else "training.patch_size"
            if patch is not None and any(p > s for p, s in zip(patch, shape, strict=True)):
                raise SettingsError(
                    f"{self.where} {key}: {list(patch)} is larger than the volumes {list(shape)} "
                    "(dataset.synthetic.shape)"
                )


def _filling_defaults(validator_class: Any) -> Any:
    """``validator_class`` that also sets each missing property to its schema default, as Snakemake's
    ``validate`` does (the jsonschema FAQ's recipe), so both doors complete a config alike."""
    from jsonschema import validators

    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validated_settings(config: dict[str, Any], where: str = "config") -> WorkflowSettings:
    """``config`` checked against the generated schema (its defaults filled in, in place) and then by
    every rule between settings (:meth:`WorkflowSettings.check`): the workflow's config and a ``spockmip
    train --config`` file take this one path. The first problem raises :class:`SettingsError` naming the
    key as written, after ``where``."""
    from jsonschema import Draft202012Validator, ValidationError
    from jsonschema.exceptions import best_match

    from spockmip.settings.schema import json_schema

    given = copy.deepcopy(config)
    try:
        _filling_defaults(Draft202012Validator)(json_schema()).validate(config)
    except ValidationError as error:
        invalid = best_match([error])
        key = ".".join(map(str, invalid.absolute_path)) or "(top level)"
        raise SettingsError(f"{where} {key}: {invalid.message}") from None
    settings = WorkflowSettings(config, given, where)
    settings.check()
    return settings
