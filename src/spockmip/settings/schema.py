"""The workflow config's JSON Schema, generated from :mod:`spockmip.settings`.

``workflow/schemas/config.schema.yaml`` is this module's :func:`schema_yaml`, written by
``workflow/schemas/generate.py`` and kept current by a test; Snakemake validates the config against it and
fills in its defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spockmip.settings.catalogue import (
    COMPARISON,
    DEFAULT_VARIANTS,
    PUBLISHED,
    PUBLISHED_HELP,
    PUBLISHED_REQUIRED,
    RESOURCE,
    RESOURCE_STAGES,
    SECTIONS,
    TRAINING,
    VARIANT,
    VARIANT_TRAINING,
    VARIANTS_HELP,
)
from spockmip.settings.setting import Section

# How a variant key's description names its default, and the whole description of a training setting that a
# variant overrides (the Markdown reference, spockmip.settings.reference, reads both back).
DEFAULT_NOTE = " Default: "
OVERRIDE_NOTE = "Overrides training.{} for this variant."


def _object(help_text: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "description": help_text,
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "properties": dict(properties),
    }


def _section_schema(section: Section) -> dict[str, Any]:
    properties: dict[str, Any] = {name: s.json_schema() for name, s in section.settings.items()}
    properties.update({name: _section_schema(sub) for name, sub in section.sections.items()})
    return _object(section.help, properties)


def _variant_schema() -> dict[str, Any]:
    """A variant's keys, none with a schema default: Snakemake fills defaults into the config, and a variant
    must hold only the keys its author wrote (the rules judge what was written,
    :meth:`spockmip.settings.workflow.WorkflowSettings.variant_keys`). The defaults are in the descriptions;
    the workflow fills them in when it reads a variant's settings."""
    properties = {name: _default_described(s.json_schema()) for name, s in {**VARIANT, **COMPARISON}.items()}
    properties["model"] = _without_default(VARIANT["model"].json_schema())  # required of every variant
    for name in VARIANT_TRAINING:
        entry = _without_default(TRAINING[name].json_schema())
        entry["description"] = OVERRIDE_NOTE.format(name)
        properties[name] = entry
    properties = {name: properties[name] for name in [*VARIANT, *VARIANT_TRAINING, *COMPARISON]}
    return {"type": "object", "additionalProperties": False, "required": ["model"], "properties": properties}


def _default_described(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its default, which its description names instead."""
    value = schema["default"]
    default = value if isinstance(value, str) else json.dumps(value)
    return {**_without_default(schema), "description": f"{schema['description']}{DEFAULT_NOTE}{default}."}


def _without_default(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "default"}


def json_schema() -> dict[str, Any]:
    """The workflow config's JSON Schema: every key, its type, bounds, default and description."""
    properties: dict[str, Any] = {
        name: _section_schema(section) for name, section in SECTIONS.items() if name != "statistics"
    }
    properties = {
        "dataset": properties["dataset"],
        "split": properties["split"],
        "training": properties["training"],
        "variants": {
            "description": VARIANTS_HELP,
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z0-9_]+$"},
            "additionalProperties": _variant_schema(),
            "default": DEFAULT_VARIANTS,
        },
        "published_weights": {
            "description": PUBLISHED_HELP,
            "type": "object",
            "default": {},
            "propertyNames": {"pattern": "^[A-Za-z0-9_]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": list(PUBLISHED_REQUIRED),
                "properties": {
                    name: _without_default(s.json_schema()) if name in PUBLISHED_REQUIRED else s.json_schema()
                    for name, s in PUBLISHED.items()
                },
            },
        },
        "inference": properties["inference"],
        "evaluation": properties["evaluation"],
        "postprocessing": properties["postprocessing"],
        "statistics": _section_schema(SECTIONS["statistics"]),
        "resources": _object(
            "Per-job resources of the heavy rules (Snakemake threads and resources).",
            {
                stage: _object(text, {n: s.json_schema() for n, s in RESOURCE.items()})
                for stage, text in RESOURCE_STAGES.items()
            },
        ),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": (
            "Configuration of the spockmip workflow, generated from spockmip.settings (edit its "
            "catalogue, then run python workflow/schemas/generate.py). Every key has a description and a "
            "default (a variant's keys name theirs in the description or take the training section's, so "
            "that a validated variant holds only what was written); unknown keys are errors, so a typo never "
            "silently falls back to a default."
        ),
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }


def schema_yaml() -> str:
    """:func:`json_schema` as the YAML file the workflow validates against."""
    import yaml

    header = (
        "# Generated from the settings catalogue (src/spockmip/settings/) by workflow/schemas/generate.py; "
        "do not edit.\n"
    )
    return header + yaml.safe_dump(json_schema(), sort_keys=False, width=110, allow_unicode=True)
