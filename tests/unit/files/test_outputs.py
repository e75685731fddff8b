"""Outputs appear whole or not at all, never under a name discovery reads, and never over an input."""

import hashlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pytest

from spockmip.errors import OutputError
from spockmip.files.outputs import (
    FILE_MODE,
    StagedOutputs,
    atomic_path,
    orphaned_temporaries,
    refuse_overwriting_inputs,
    staged_outputs,
    write_nifti_like,
)


def _checksums(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``, files with their content's hash."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        if path.is_file()
        else "/"
        for path in sorted(folder.rglob("*"))
    }


def _reference() -> nib.Nifti1Image:
    return nib.Nifti1Image(np.zeros((4, 5, 6), dtype=np.float32), np.diag([0.5, 0.5, 0.5, 1.0]))


# ---- atomic_path ----


def test_the_temporary_keeps_the_name_in_a_hidden_folder_and_is_gone_afterwards(tmp_path: Path) -> None:
    destination = tmp_path / "x.nii.gz"
    with atomic_path(destination) as temporary:
        assert temporary.name == "x.nii.gz" and temporary.parent.parent == tmp_path
        assert temporary.parent.name.startswith(".x.nii.gz.") and temporary.parent.is_dir()
        nib.save(_reference(), temporary)
        assert orphaned_temporaries(destination) == [temporary.parent]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]
    assert nib.load(destination).shape == (4, 5, 6)
    assert destination.stat().st_mode & 0o777 == FILE_MODE


def test_a_failed_write_leaves_neither_the_file_nor_its_folder(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.csv") as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert _checksums(tmp_path) == {"x.csv": hashlib.sha256(b"old\n").hexdigest()}


def test_orphaned_temporaries_are_the_folders_of_this_destination_only(tmp_path: Path) -> None:
    orphan = tmp_path / ".x.nii.gz.k1ll3d"
    orphan.mkdir()
    (tmp_path / ".x.nii.gz.note").write_text("a user's hidden file, not ours")
    (tmp_path / ".y.nii.gz.k1ll3d").mkdir()
    assert orphaned_temporaries(tmp_path / "x.nii.gz") == [orphan]
    assert orphaned_temporaries(tmp_path / "absent" / "x.nii.gz") == []


# ---- refuse_overwriting_inputs ----


def test_an_output_file_that_is_an_input_file_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "a.nii.gz"
    image.write_bytes(b"input")
    with pytest.raises(OutputError) as caught:
        refuse_overwriting_inputs({image: "--output"}, {image: "--input"})
    assert str(caught.value) == f"{image}: the --output would overwrite --input {image}"


def test_an_output_folder_that_is_or_holds_an_input_is_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.nii.gz").write_bytes(b"label")
    with pytest.raises(OutputError, match=r"the --output folder would overwrite --label folder"):
        refuse_overwriting_inputs({labels: "--output folder"}, {labels: "--label folder"})
    with pytest.raises(
        OutputError, match=r"^.*/labels: the --output folder would overwrite --label .*a.nii.gz$"
    ):
        refuse_overwriting_inputs({labels: "--output folder"}, {labels / "a.nii.gz": "--label"})


def test_inputs_reached_through_symlinks_are_refused(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.nii.gz").write_bytes(b"label")
    (tmp_path / "link").symlink_to(labels, target_is_directory=True)
    (tmp_path / "file-link.nii.gz").symlink_to(labels / "a.nii.gz")
    with pytest.raises(OutputError) as caught:
        refuse_overwriting_inputs({tmp_path / "link": "--output folder"}, {labels: "--label folder"})
    assert (
        str(caught.value)
        == f"{tmp_path / 'link'}: the --output folder would overwrite --label folder {labels}"
    )
    with pytest.raises(OutputError) as caught:
        refuse_overwriting_inputs(
            {labels / "a.nii.gz": "--output"}, {tmp_path / "file-link.nii.gz": "--label"}
        )
    assert str(caught.value).endswith(
        f"--label {tmp_path / 'file-link.nii.gz'} (that is {labels / 'a.nii.gz'})"
    )


def test_an_output_in_an_input_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.nii.gz").write_bytes(b"image")
    output = images / "probabilities" / "a.nii.gz"
    with pytest.raises(OutputError) as caught:
        refuse_overwriting_inputs(
            {output: "--probabilities"}, {images: "--input folder", images / "a.nii.gz": "--input"}
        )
    assert str(caught.value) == f"{output}: the --probabilities would be written into --input folder {images}"


def test_an_input_overwritten_is_named_before_its_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.nii.gz").write_bytes(b"image")
    with pytest.raises(OutputError, match=r"would overwrite --input .*a\.nii\.gz$"):
        refuse_overwriting_inputs(
            {images / "a.nii.gz": "--output"}, {images: "--input folder", images / "a.nii.gz": "--input"}
        )


def test_outputs_beside_the_inputs_are_accepted(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.nii.gz").write_bytes(b"image")
    refuse_overwriting_inputs(
        {tmp_path / "predictions": "--output folder", tmp_path / "a.nii.gz": "--probabilities"},
        {images: "--input folder", images / "a.nii.gz": "--input"},
    )


# ---- staged_outputs ----


def _write_three(staging: StagedOutputs, folder: Path) -> list[Path]:
    """A NIfTI, a CSV and a PNG into ``folder`` through the staging area, by the library's own writers."""
    write_nifti_like(np.ones((4, 5, 6)), _reference(), staging.path(folder / "a.nii.gz"), np.uint8)
    with atomic_path(staging.path(folder / "metrics.csv")) as temporary:
        temporary.write_text("subject,dice\na,1\n")
    figure = plt.figure()
    with atomic_path(staging.path(folder / "figures" / "a.png")) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return [folder / "a.nii.gz", folder / "metrics.csv", folder / "figures" / "a.png"]


def test_a_failing_block_leaves_the_destination_byte_identical_and_creates_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.nii.gz").write_bytes(b"the previous prediction")
    (results / "kept.txt").write_text("a user's note")
    before, outside = _checksums(results), sorted(tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="fourth result failed"), staged_outputs() as staging:
        _write_three(staging, results)
        _write_three(staging, tmp_path / "new" / "folder")
        assert any(p.name.startswith(".") for p in results.iterdir())
        raise RuntimeError("fourth result failed")
    assert _checksums(results) == before
    assert sorted(tmp_path.iterdir()) == outside


def test_a_successful_block_moves_every_result_into_place(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "a.nii.gz").write_bytes(b"the previous prediction")
    with staged_outputs() as staging:
        written = _write_three(staging, results) + _write_three(staging, tmp_path / "new" / "folder")
        assert not any(path.exists() for path in written[3:])
    assert all(path.is_file() for path in written)
    assert nib.load(results / "a.nii.gz").get_fdata().sum() == 4 * 5 * 6
    assert (results / "metrics.csv").read_text() == "subject,dice\na,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "results"]
    assert sorted(p.name for p in results.iterdir()) == ["a.nii.gz", "figures", "metrics.csv"]
    assert all(path.stat().st_mode & 0o777 == FILE_MODE for path in written)


def test_a_staged_path_never_written_fails_the_block_and_moves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="never written"), staged_outputs() as staging:
        staging.path(tmp_path / "a.csv").write_text("a\n")
        staging.path(tmp_path / "b.csv")
    assert list(tmp_path.iterdir()) == []
