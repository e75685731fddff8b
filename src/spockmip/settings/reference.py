"""The workflow config's reference in Markdown, rendered from :func:`spockmip.settings.schema.json_schema`.

``config/README.md`` is a hand-written part (the config files and how to combine them) followed by
:func:`config_reference_markdown`: one table per section of the config, each key with its type, default,
allowed values and help. Every cell is read off the JSON Schema, so the reference states nothing the schema
does not; ``workflow/schemas/generate.py`` writes it beside the schema and a test keeps it current.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from spockmip.settings.schema import DEFAULT_NOTE, OVERRIDE_NOTE, json_schema

# The line that ends config/README.md's hand-written part; everything after it is generated.
MARKER = (
    "<!-- Generated below this line from the settings catalogue (src/spockmip/settings/) by "
    "python workflow/schemas/generate.py; edit the catalogue, not the text. -->"
)
_INTRO = (
    "Every key of the workflow config, section by section, as its JSON Schema "
    "(`workflow/schemas/config.schema.yaml`) declares it; Snakemake checks every config against that schema "
    "before any job, so an unknown key, a wrong type or a value outside the allowed ones stops the run with "
    "one line naming the key. A key of a nested section is written under it "
    "(`dataset: {synthetic: {seed: 7}}` sets `dataset.synthetic.seed`). A variant's keys have no default in "
    "the schema, so that a variant holds only what its author wrote: a key it leaves out takes the default "
    "shown, or the training section's value where the table says so."
)
_COLUMNS = ("Key", "Type", "Default", "Allowed", "Description")


def config_reference_markdown() -> str:
    """Every key of the workflow config, one Markdown table per section, in the schema's order."""
    lines = ["## Every key", "", _INTRO]
    for name, entry in json_schema()["properties"].items():
        lines += _section(name, entry, level=3)
    return "\n".join(lines) + "\n"


def config_readme(current: str) -> str:
    """``current`` (config/README.md as it is) with everything after :data:`MARKER` generated anew."""
    head, found, _ = current.partition(MARKER)
    if not found:
        raise ValueError(f"config/README.md lacks the line that ends its hand-written part:\n{MARKER}")
    return f"{head}{MARKER}\n\n{config_reference_markdown()}"


def _section(path: str, entry: Mapping[str, Any], level: int) -> list[str]:
    """A heading, the section's help, a table of its keys, then its nested sections one level down."""
    lines = ["", f"{'#' * level} `{path}`", "", _text(entry["description"])]
    if "properties" in entry:
        properties = entry["properties"]
        nested = {name: value for name, value in properties.items() if "properties" in value}
        keys = {name: value for name, value in properties.items() if name not in nested}
        lines += _table(keys, entry.get("required", ()))
        for name, value in nested.items():
            lines += _section(f"{path}.{name}", value, level + 1)
    else:  # a mapping from names the user chooses to entries of one schema (variants, published_weights)
        item = entry["additionalProperties"]
        facts = [f"names match {_code(entry['propertyNames']['pattern'])}"]
        if "minProperties" in entry:
            facts.append(f"at least {_items(entry['minProperties'], 'entry', 'entries')}")
        lines += [
            "",
            f"A mapping from a name to the keys below ({'; '.join(facts)}); default "
            f"{_code(_value(entry['default']))}.",
        ]
        lines += _table(item["properties"], item.get("required", ()))
    return lines


def _table(keys: Mapping[str, Any], required: Any) -> list[str]:
    if not keys:
        return []
    rows = [_COLUMNS, tuple("---" for _ in _COLUMNS)]
    for name, entry in keys.items():
        default, description = _default(name, entry, name in required)
        rows.append((_code(name), _type(entry), default, _allowed(entry), _text(description)))
    return ["", *("| " + " | ".join(row) + " |" for row in rows)]


def _default(name: str, entry: Mapping[str, Any], required: bool) -> tuple[str, str]:
    """The default cell and the help: a schema default, or (a variant's keys, which have none so that a
    validated variant holds only what was written) the default its description names, or the training
    setting it overrides."""
    description = entry["description"]
    if "default" in entry:
        return _code(_value(entry["default"])), description
    if required:
        return "required", description
    if description == OVERRIDE_NOTE.format(name):
        return f"as {_code('training.' + name)}", description
    help_text, found, default = description.rpartition(DEFAULT_NOTE)
    if not found:
        raise ValueError(f"{name}: neither a default nor a described one")
    return _code(default.removesuffix(".")), help_text


def _type(entry: Mapping[str, Any]) -> str:
    if "oneOf" in entry:
        return " or ".join(_type(alternative) for alternative in entry["oneOf"])
    types = entry["type"] if isinstance(entry["type"], list) else [entry["type"]]
    words = {"array": f"list of {_type(entry.get('items', {}))}s" if "items" in entry else "list"}
    return " or ".join(words.get(kind, kind) for kind in types)


def _allowed(entry: Mapping[str, Any]) -> str:
    if "oneOf" in entry:
        return "; or ".join(
            f"{_type(alternative)}: {_allowed(alternative)}" if _allowed(alternative) else _type(alternative)
            for alternative in entry["oneOf"]
        )
    parts = []
    if "enum" in entry:
        parts.append(", ".join(_code(_value(value)) for value in entry["enum"]))
    parts += _bounds(entry)
    if "pattern" in entry:
        parts.append(f"matches {_code(entry['pattern'])}")
    if "minLength" in entry:
        parts.append(f"at least {_items(entry['minLength'], 'character', 'characters')}")
    if "items" in entry:
        parts += _length(entry)
        if entry.get("uniqueItems"):
            parts.append("no repeats")
        each = _allowed(entry["items"])
        if each:
            parts.append(f"each {each}")
    return "; ".join(parts)


def _bounds(entry: Mapping[str, Any]) -> list[str]:
    low, high = entry.get("minimum"), entry.get("maximum")
    parts = [f"{_number(low)} to {_number(high)}"] if low is not None and high is not None else []
    if not parts:
        words = {"minimum": "at least", "maximum": "at most"}
        parts += [f"{word} {_number(entry[key])}" for key, word in words.items() if key in entry]
    words = {"exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}
    parts += [f"{word} {_number(entry[key])}" for key, word in words.items() if key in entry]
    if "multipleOf" in entry:
        parts.append(f"a multiple of {_number(entry['multipleOf'])}")
    return [", ".join(parts)] if parts else []


def _length(entry: Mapping[str, Any]) -> list[str]:
    low, high = entry.get("minItems"), entry.get("maxItems")
    if low is not None and low == high:
        return [f"exactly {_items(low, 'item', 'items')}"]
    if low is not None and high is not None:
        return [f"{low} to {high} items"]
    if low is not None:
        return [f"at least {_items(low, 'item', 'items')}"]
    return [f"at most {_items(high, 'item', 'items')}"] if high is not None else []


def _items(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else json.dumps(value)


def _value(value: Any) -> str:
    """A value as YAML reads it back: strings bare (an empty one quoted), the rest as JSON."""
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value, ensure_ascii=False)


def _code(text: str) -> str:
    """Inline code in a table cell: a pipe would end the cell even there."""
    return "`" + text.replace("|", "\\|") + "`"


def _text(text: str) -> str:
    """Prose in a table cell or paragraph: angle brackets would read as HTML tags, a pipe as a cell edge."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
