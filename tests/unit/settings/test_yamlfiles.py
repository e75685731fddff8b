"""User-written YAML: a key defined twice, an unreadable file and broken YAML are refused in one line."""

from pathlib import Path

import pytest

from spockmip.errors import SettingsError
from spockmip.settings.yamlfiles import load_yaml


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_loads_as_plain_yaml(tmp_path: Path) -> None:
    text = "defaults: &d {epochs: 5, lr: 0.1}\ntrain:\n  <<: *d\n  epochs: 50\nlist: [1, 2]\n"
    assert load_yaml(_written(tmp_path, text)) == {
        "defaults": {"epochs": 5, "lr": 0.1},
        "train": {"epochs": 50, "lr": 0.1},
        "list": [1, 2],
    }


def test_a_key_defined_twice_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = _written(tmp_path, "train:\n  epochs: 50\n  lr: 0.1\n  epochs: 1\n")
    with pytest.raises(SettingsError) as caught:
        load_yaml(path)
    assert str(caught.value) == f"{path}: line 4: key 'epochs' is defined twice (first on line 2)"


def test_a_key_twice_at_the_top_or_in_a_flow_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r": line 3: key 'a' is defined twice \(first on line 1\)$"):
        load_yaml(_written(tmp_path, "a: 1\nb: 2\na: 3\n"))
    with pytest.raises(SettingsError, match=r": line 1: key 'x' is defined twice"):
        load_yaml(_written(tmp_path, "sizes: {x: 1, x: 2}\n"))


def test_an_unreadable_file_is_named_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^.*absent\.yaml: No such file or directory$"):
        load_yaml(tmp_path / "absent.yaml")
    with pytest.raises(SettingsError, match=r"^.*: Is a directory$"):
        load_yaml(tmp_path)


def test_broken_yaml_is_named_with_its_line(tmp_path: Path) -> None:
    path = _written(tmp_path, "train:\n  epochs: 50\n lr: [0.1\n")
    with pytest.raises(SettingsError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not valid YAML (line ") and "\n" not in message
