"""Command-line options derived from :mod:`spockmip.settings`: each typed, bounded and helped from its
setting, so an option and its config key never disagree."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from spockmip.errors import SettingsError
from spockmip.settings.setting import Setting


def option_type(setting: Setting, option: str) -> Callable[[str], Any]:
    """An argparse type: the text as the setting's kind, checked like a config value."""

    def parse(text: str) -> Any:
        try:
            if setting.kind in ("integer", "triple", "patch", "integers"):
                value: Any = int(text)
            elif setting.kind in ("number", "numbers"):
                value = float(text)
            else:
                value = _number_or_text(text) if setting.schema is not None else text
        except ValueError:
            kind = "an integer" if setting.kind in ("integer", "triple", "patch", "integers") else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        try:
            setting.check_item(value, option)
        except SettingsError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{option}: ")) from None
        return value

    return parse


def _number_or_text(text: str) -> float | str:
    """A setting whose schema allows a name or a number (``otsu`` or a threshold) reads as a number when
    the text is one."""
    try:
        return float(text)
    except ValueError:
        return text


def add_setting_option(
    parser: argparse.ArgumentParser, setting: Setting, default_text: str | None = None, **extra: Any
) -> argparse.Action:
    """An option for ``setting``, typed, bounded and helped from its entry. Its default is None (not
    given), so the caller can tell what the user chose from what is left to another source."""
    if default_text is not None:
        shown = default_text
    elif isinstance(setting.default, tuple):
        shown = " ".join(map(str, setting.default))
    else:
        shown = "none" if setting.default is None else str(setting.default)
    help_text = f"{setting.help} (default: {shown})".replace("%", "%%")
    options: dict[str, Any] = {"default": None, "help": help_text}
    if setting.kind == "boolean":
        options["action"] = argparse.BooleanOptionalAction
    elif setting.choices and setting.schema is None:
        options["choices"] = setting.choices
        options["metavar"] = "{" + ",".join(map(str, setting.choices)) + "}"
    else:
        options["type"] = option_type(setting, setting.option)
    if setting.kind in ("triple", "patch", "integers", "numbers"):
        options["nargs"] = "+"
    options.update(extra)
    return parser.add_argument(setting.option, **options)


def given_sizes(values: Sequence[int] | None, option: str) -> tuple[int, int, int] | None:
    """One value for all three axes, or one per axis (X, Y, Z); None when the option was not given."""
    if values is None:
        return None
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)
    raise SettingsError(f"{option}: takes 1 or 3 values, got {len(values)}")


def given_settings(args: argparse.Namespace, settings: Mapping[str, Setting]) -> dict[str, Any]:
    """The settings the command line gave (options left out are absent), triples expanded."""
    given: dict[str, Any] = {}
    for name, setting in settings.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if setting.kind in ("triple", "patch"):
            value = given_sizes(value, setting.option)
        elif isinstance(value, list):
            value = tuple(value)
        given[name] = value
    return given
