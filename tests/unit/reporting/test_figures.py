"""Figures: errors decided in 3D stay visible after projection, and every figure function writes a PNG."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spockmip.reporting.figures
from spockmip.reporting.figures import (
    CLASS_COLOURS,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    TRAINING_TERMS,
    TRUE_POSITIVE,
    most_different_window,
    overlay_mip,
    projected_classes,
    save_learning_curves,
    save_metric_boxplots,
    save_subject_overlays,
)


def test_a_false_positive_hidden_behind_a_vessel_is_drawn_as_false_positive() -> None:
    label = np.zeros((6, 6, 8), np.uint8)
    label[2, 3, 1] = 1  # a vessel voxel, found
    label[4, 4, 5] = 1  # a vessel voxel, missed
    prediction = label.copy()
    prediction[2, 3, 6] = 1  # spurious, on the same z-ray as the found vessel
    prediction[4, 4, 5] = 0
    prediction[4, 4, 0] = 1  # spurious, on the same ray as the missed vessel: the miss must win
    prediction[1, 1, 2] = 1  # spurious, alone
    classes = projected_classes(prediction, label, "z")
    assert classes[2, 3] == FALSE_POSITIVE  # comparing the two MIPs would call this a true positive
    assert classes[4, 4] == FALSE_NEGATIVE
    assert classes[1, 1] == FALSE_POSITIVE
    label_only = np.zeros_like(label)
    label_only[0, 0, :] = 1
    assert projected_classes(label_only, label_only)[0, 0] == TRUE_POSITIVE
    assert (overlay_mip(prediction, label)[2, 3] == CLASS_COLOURS[FALSE_POSITIVE]).all()


def test_the_zoom_window_lands_where_the_variants_disagree() -> None:
    same = np.zeros((40, 50), np.uint8)
    other = same.copy()
    other[30:34, 5:9] = FALSE_POSITIVE
    row, column = most_different_window([same, other], 10)
    assert row <= 30 and row + 10 >= 34 and column <= 5 and column + 10 >= 9
    assert most_different_window([same, same], 10) == (15, 20)


def test_figure_functions_write_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = np.zeros((24, 20, 12), np.uint8)
    label[5:19, 10, 6] = 1
    predictions = {"unet": label.copy(), "unet_mip": np.roll(label, 2, axis=1)}
    image = rng.random(label.shape)
    save_subject_overlays(image, label, predictions, tmp_path / "overlay.png", "sub1", "fold 0")

    rows = [
        {"variant": v, "fold": f, "subject": s, "dice": rng.random(), "cl_dice": rng.random(),
         "betti0_error": rng.integers(0, 5), "betti1_error": rng.integers(0, 5), "hd95_mm": rng.random()}
        for v in ("unet", "unet_mip") for f in (0, 1) for s in ("a", "b")
    ]  # fmt: skip
    rows[0]["hd95_mm"] = np.nan  # undefined (one mask empty): left out of its panel
    save_metric_boxplots(
        pd.DataFrame(rows), ["dice", "betti0_error", "hd95_mm"], ["unet", "unet_mip"], tmp_path / "box.png",
        "test",
    )  # fmt: skip

    def history(mip: float) -> pd.DataFrame:
        epochs = np.arange(1, 5)
        return pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "train_segmentation": 0.9 / epochs,
                             "train_mip": mip / epochs, "validation_ftl": 0.8 - 0.1 * epochs,
                             "validation_ds_ftl": 1.6 - 0.2 * epochs, "best": True})  # fmt: skip

    histories = {
        "unet": {"fold 0": history(0.0), "fold 1": history(0.0)},
        "unet_mip": {"fold 0, seed 1": history(0.001), "fold 0, seed 2": history(0.002)},
    }
    save_learning_curves(histories, {"unet": "level0", "unet_mip": "released"}, tmp_path / "curves.png")
    for name in ("overlay", "box", "curves"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name


def test_learning_curves_draw_the_continuity_term_and_plot_histories_without_its_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history with a nonzero train_continuity gets that term's line; one written before the column
    existed (no column) still plots, and empty cells (NaN) are gaps in the line."""
    drawn = []
    monkeypatch.setattr(spockmip.reporting.figures, "_save", lambda figure, path: drawn.append(figure))
    epochs = np.arange(1, 5)

    def history(**terms: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"epoch": epochs, "train_loss": 1 / epochs, "train_segmentation": 0.9 / epochs,
                             "train_mip": 0.0, **terms, "validation_ftl": 0.8 - 0.1 * epochs,
                             "validation_ds_ftl": 1.6 - 0.2 * epochs, "best": True})  # fmt: skip

    partial = np.array([np.nan, np.nan, 0.3, 0.2])
    histories = {
        "unet_cldice": {"fold 0": history(train_continuity=0.5 / epochs)},
        "unet_skelrec": {"fold 0": history(train_continuity=partial)},
        "unet": {"fold 0": history(train_continuity=np.zeros(4))},
        "unet_old": {"fold 0": history()},
    }
    save_learning_curves(histories, dict.fromkeys(histories, "level0"), tmp_path / "curves.png")
    (figure,) = drawn
    continuity_style = TRAINING_TERMS["train_continuity"][0]
    training_axes = figure.axes[0:8:2]
    styles = [[line.get_linestyle() for line in ax.get_lines()] for ax in training_axes]
    assert styles == [["-", "--", continuity_style], ["-", "--", continuity_style], ["-", "--"], ["-", "--"]]
    np.testing.assert_array_equal(training_axes[1].get_lines()[2].get_ydata(), partial)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert TRAINING_TERMS["train_continuity"][1] in legend
