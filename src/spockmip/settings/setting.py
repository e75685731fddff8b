"""One setting: what a user may write, what it means, its default, and how a value is checked.

:class:`Setting` is the type every entry of :mod:`spockmip.settings.catalogue` has; the JSON Schema of the
workflow config, the command-line options and the checks of every door are all derived from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from spockmip.errors import SettingsError

Kind = Literal["integer", "number", "string", "boolean", "triple", "patch", "integers", "numbers"]
# The U-Net halves every side four times, so each patch side must be a multiple of this.
PATCH_MULTIPLE = 16


@dataclass(frozen=True)
class Setting:
    """One setting: what a user may write, what it means, and what it is when not written.

    ``target`` names the field of the library's config object that receives the value (``loss.alpha``),
    where it differs from the setting's name. ``schema`` replaces the generated JSON Schema of settings
    whose values no single kind describes (a name or a number, say). ``flag`` is the command-line option,
    where one exists under another name than ``--<name>``.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False
    min_items: int | None = None
    max_items: int | None = None
    target: str | None = None
    schema: Mapping[str, Any] | None = None
    flag: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def json_schema(self) -> dict[str, Any]:
        """This setting's JSON Schema, default and description included."""
        if self.schema is not None:
            body = dict(self.schema)
        elif self.kind in ("triple", "patch", "integers", "numbers"):
            item: dict[str, Any] = {"type": "number" if self.kind == "numbers" else "integer"}
            item.update(self._bounds())
            if self.kind == "patch":
                item.update(minimum=PATCH_MULTIPLE, multipleOf=PATCH_MULTIPLE)
            body = {"type": "array", "items": item}
            fixed = 3 if self.kind in ("triple", "patch") else None
            if (self.min_items or fixed) is not None:
                body["minItems"] = self.min_items or fixed
            if (self.max_items or fixed) is not None:
                body["maxItems"] = self.max_items or fixed
        else:
            body = {"type": self.kind}
            if self.choices:
                body["enum"] = list(self.choices)
            body.update(self._bounds())
        if self.nullable:
            body["type"] = [body["type"], "null"] if "type" in body else None
            if "enum" in body:
                body["enum"] = [*body["enum"], None]
        body = {key: value for key, value in body.items() if value is not None}
        return {**body, "default": _plain(self.default), "description": self.help}

    def _bounds(self) -> dict[str, float]:
        bounds = {
            "minimum": self.minimum,
            "exclusiveMinimum": self.exclusive_minimum,
            "maximum": self.maximum,
        }
        return {key: value for key, value in bounds.items() if value is not None}

    def check(self, value: Any, key: str) -> None:
        """Refuse a value the schema would refuse, and any non-finite number (JSON Schema lets NaN pass
        every bound and infinity every lower one); ``key`` names the setting in the message."""
        if value is None:
            if self.nullable:
                return
            raise SettingsError(f"{key}: a value is required")
        sequence = self.kind in ("triple", "patch", "integers", "numbers")
        if sequence != isinstance(value, list | tuple) and self.schema is None:
            wanted = "a list" if sequence else f"a single {self.kind}"
            raise SettingsError(f"{key}: {value!r} is not {wanted}")
        values = value if isinstance(value, list | tuple) else [value]
        if self.kind in ("triple", "patch") and len(values) != 3:
            raise SettingsError(f"{key}: {list(values)} is not three values (X, Y, Z)")
        for item in values:
            self.check_item(item, key)

    def check_item(self, item: Any, key: str) -> None:
        """One value, or one element of a list setting: its type, choices and bounds."""
        self._check_type(item, key)
        if isinstance(item, float) and not math.isfinite(item):
            raise SettingsError(f"{key}: {item} is not a finite number")
        if self.choices and item not in self.choices and self.schema is None:
            raise SettingsError(f"{key}: {item!r} is not one of {', '.join(map(str, self.choices))}")
        if isinstance(item, int | float) and not isinstance(item, bool):
            self._check_bounds(item, key)
        if self.kind == "patch" and item % PATCH_MULTIPLE:
            raise SettingsError(
                f"{key}: {item} is not divisible by {PATCH_MULTIPLE} (the U-Net halves each side four times)"
            )

    def _check_type(self, item: Any, key: str) -> None:
        if self.schema is not None:
            self._check_schema(item, key)
            return
        integral = self.kind in ("integer", "triple", "patch", "integers")
        if self.kind == "boolean":
            fits = isinstance(item, bool)
        elif integral:
            fits = isinstance(item, int) and not isinstance(item, bool)
        elif self.kind in ("number", "numbers"):
            fits = isinstance(item, int | float) and not isinstance(item, bool)
        else:
            fits = isinstance(item, str)
        if not fits:
            wanted = {"boolean": "true or false", "string": "a string"}.get(self.kind, "a number")
            raise SettingsError(f"{key}: {item!r} is not {'an integer' if integral else wanted}")

    def _check_schema(self, item: Any, key: str) -> None:
        """A value of a setting that its own JSON Schema describes (a name or a number, say), checked by
        that schema: the one declaration of what it allows. jsonschema is imported here only, so that
        importing the settings stays cheap."""
        import jsonschema

        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(self.schema).iter_errors(item)
        )
        if error is not None:
            raise SettingsError(f"{key}: {error.message}")

    def _check_bounds(self, item: float, key: str) -> None:
        if self.minimum is not None and item < self.minimum:
            raise SettingsError(f"{key}: {item} is less than the minimum of {_bound(self.minimum)}")
        if self.exclusive_minimum is not None and item <= self.exclusive_minimum:
            raise SettingsError(f"{key}: {item} is not greater than {_bound(self.exclusive_minimum)}")
        if self.maximum is not None and item > self.maximum:
            raise SettingsError(f"{key}: {item} is greater than the maximum of {_bound(self.maximum)}")


def _bound(value: float) -> str:
    """A bound as a message shows it: whole numbers in full (a seed's 4294967295), others short."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _plain(value: Any) -> Any:
    """Tuples as lists, as JSON and YAML write them."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def named(*settings: Setting) -> dict[str, Setting]:
    """Settings by name, in the order given (a catalogue section)."""
    return {setting.name: setting for setting in settings}


@dataclass(frozen=True)
class Section:
    """A flat section of the workflow config: its settings and what it is for."""

    help: str
    settings: dict[str, Setting]
    sections: dict[str, Section] = field(default_factory=dict)
