"""Reading YAML the user wrote (configs, profiles), refusing what plain YAML loaders accept silently.

A key written twice in one mapping is legal to PyYAML, which keeps the last value: a config that sets
``epochs: 50`` and further down ``epochs: 1`` then trains for one epoch without a word. Here it is
refused, naming the file and the line. Every problem is a :class:`SettingsError` starting with the path.
Nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from spockmip.errors import SettingsError

MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that defines a key twice.

    Keys brought in by a merge (``<<: *defaults``) may be overridden, as merging is meant for; only keys
    written out twice in the mapping itself are refused. ``path`` names the file in the message.
    """

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # the base loader refuses it with its own message
                continue
            line = key_node.start_mark.line + 1
            if key in first_lines:
                raise SettingsError(
                    f"{self.path}: line {line}: key {key!r} is defined twice "
                    f"(first on line {first_lines[key]})"
                )
            first_lines[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``; a :class:`SettingsError` naming the file when it cannot be read, is
    not valid YAML, or defines a key twice in one mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not a text file (not UTF-8)") from None
    loader = _UniqueKeyLoader(text, path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unreadable"
        problem = getattr(error, "problem", None)
        raise SettingsError(f"{path}: not valid YAML ({where}{': ' + problem if problem else ''})") from None
    finally:
        loader.dispose()
