"""Figures: overlays compare MIPs as the papers do, gap maps show what MIPs hide, the zoom goes to the thin
vessels, and every figure function writes a PNG."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import ndimage as ndi

import spockmip.reporting.figures
from spockmip.evaluation.metrics import BOXPLOT_METRICS, PRESENTATION, all_metrics
from spockmip.reporting.figures import (
    BACKGROUND,
    BIN_COLOURS,
    CENTRED_ZOOM,
    CLASS_COLOURS,
    COVERED_SHADE,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    GAP_COLOURS,
    NO_THIN,
    THIN,
    THIN_COVERED,
    THIN_MISSED,
    TRAINING_TERMS,
    TRUE_POSITIVE,
    ZOOM_REASONS,
    BinnedCentreline,
    gap_code,
    gap_codes,
    mip_classes,
    overlay_mip,
    save_gap_maps,
    save_learning_curves,
    save_metric_boxplots,
    save_subject_overlays,
    subject_views,
    zoom_window,
)

SPACING = (1.0, 1.0, 1.0)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the functions would save, kept instead of written."""
    figures: list[Figure] = []
    monkeypatch.setattr(spockmip.reporting.figures, "_save", lambda figure, path: figures.append(figure))
    return figures


def _pixels(ax) -> np.ndarray:
    return np.asarray(ax.get_images()[0].get_array())


def test_a_prediction_one_voxel_wider_shows_a_false_positive_rim_around_a_white_vessel() -> None:
    label = np.zeros((20, 20, 12), bool)
    label[3:17, 9:11, 5:7] = True  # a 2x2 vessel along x
    wider = ndi.binary_dilation(label)  # one voxel wider all round, along z too
    classes = mip_classes(wider, label)
    label_mip = label.any(axis=2)
    rim = ndi.binary_dilation(label_mip) & ~label_mip
    assert (classes[label_mip] == TRUE_POSITIVE).all()  # classified in 3D first, it would all be blue
    np.testing.assert_array_equal(classes == FALSE_POSITIVE, rim)
    assert (classes[~label_mip & ~rim] == BACKGROUND).all()


def test_a_cut_across_the_ray_is_red_and_a_cut_along_it_is_hidden() -> None:
    label = np.zeros((20, 20, 12), bool)
    label[2:18, 5, 3] = True  # a thin vessel along x
    label[10, 12, 1:11] = True  # a thin vessel along z
    cut = label.copy()
    cut[8:11, 5, 3] = False
    cut[10, 12, 4:7] = False
    colours = overlay_mip(cut, label)
    assert (colours[8:11, 5] == (255, 0, 0)).all()
    assert (colours[2:8, 5] == (255, 255, 255)).all() and (colours[11:18, 5] == (255, 255, 255)).all()
    assert mip_classes(cut, label)[10, 12] == TRUE_POSITIVE  # what the captions warn of


def _two_variants() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A thin vessel along x at y = 45 and a thick one at y = 20..24; one variant adds a large false
    positive blob and cuts the thick vessel at x = 40..50, the other cuts the thin vessel at x = 28..31."""
    label = np.zeros((60, 60, 8), bool)
    label[5:56, 45, 4] = True
    label[5:56, 20:25, 2:7] = True
    blob = label.copy()
    blob[30:50, 2:14, 3:6] = True
    blob[40:51, 20:25, 2:7] = False
    cut = label.copy()
    cut[28:32, 45, 4] = False
    return label, {"blob": blob, "cut": cut}


def test_the_zoom_goes_to_the_thin_gap_one_variant_has_and_not_to_the_larger_difference(
    drawn: list[Figure],
) -> None:
    label, predictions = _two_variants()
    views = subject_views(np.zeros(label.shape), label, predictions, SPACING)
    row, column, size = views.window
    assert views.reason == ZOOM_REASONS[0] and size == 20
    gap_row = label.shape[1] - 1 - 45  # display rows run from high y to low y
    assert row <= gap_row < row + size and column <= 28 and column + size > 31
    save_subject_overlays(views, "unused.png", "sub1", "fold 0")
    (figure,) = drawn
    assert len(figure.axes) == 6  # image and two variants, whole and zoomed
    assert [ax.get_title() for ax in figure.axes[:3]] == ["image MIP", "blob", "cut"]
    (box,) = figure.axes[2].patches
    assert box.get_xy() == (column - 0.5, row - 0.5)
    zoomed_cut = _pixels(figure.axes[5])
    assert zoomed_cut.shape == (size, size, 3)
    assert (zoomed_cut[gap_row - row, 28 - column : 32 - column] == CLASS_COLOURS[FALSE_NEGATIVE]).all()
    assert (_pixels(figure.axes[4])[gap_row - row, 28 - column] == CLASS_COLOURS[TRUE_POSITIVE]).all()
    assert "hidden" in figure.get_suptitle() and ZOOM_REASONS[0] in figure.get_suptitle()


def test_the_zoom_falls_back_to_thin_misses_then_to_the_overlays_then_to_the_centre() -> None:
    empty = np.full((30, 40), NO_THIN, np.uint8)
    missed = empty.copy()
    missed[25:27, 33:35] = THIN_MISSED
    missed[2, 2] = THIN_COVERED
    row, column, reason = zoom_window([missed, missed], [empty, empty], 10)
    assert reason == ZOOM_REASONS[1] and row <= 25 and row + 10 >= 27 and column <= 33 and column + 10 >= 35
    differing = empty.copy()
    differing[3:6, 4:8] = FALSE_POSITIVE
    row, column, reason = zoom_window([empty, empty], [empty, differing], 10)
    assert reason == ZOOM_REASONS[2] and row <= 3 and row + 10 >= 6 and column <= 4 and column + 10 >= 8
    assert zoom_window([empty], [differing], 10) == (10, 15, CENTRED_ZOOM)


def test_the_gap_map_draws_a_missed_thin_voxel_strong_where_it_projects(drawn: list[Figure]) -> None:
    label, predictions = _two_variants()
    views = subject_views(np.zeros(label.shape), label, predictions, SPACING)
    save_gap_maps(views, "unused.png", "sub1", "fold 0")
    (figure,) = drawn
    blob, cut = (_pixels(ax) for ax in figure.axes[:2])
    gap_row = label.shape[1] - 1 - 45
    assert (cut[gap_row, 28:32] == BIN_COLOURS["thin"]).all()
    muted_thin = np.round(COVERED_SHADE * np.array(BIN_COLOURS["thin"]))
    assert (blob[gap_row, 28:32] == muted_thin).all() and (cut[gap_row, 20] == muted_thin).all()
    thick_row = label.shape[1] - 1 - 22
    assert (blob[thick_row, 40:51] == BIN_COLOURS["thick"]).all()
    assert (cut[thick_row, 40:51] == np.round(COVERED_SHADE * np.array(BIN_COLOURS["thick"]))).all()
    thin_recall = all_metrics(predictions["cut"], label, SPACING)["thin_recall"]
    assert views.coverage["cut"][THIN] == thin_recall < 1 and views.coverage["blob"][THIN] == 1
    assert figure.axes[1].get_title().startswith(f"cut\nthin {100 * thin_recall:.0f} %")
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "thin (r ≤ 1 mm), missed" in legend


def test_a_missed_voxel_wins_its_ray_over_a_covered_one_whatever_their_bins() -> None:
    reference = np.zeros((3, 3, 6), bool)
    line = BinnedCentreline(np.array([[1, 1, 0], [1, 1, 5]]), np.array([THIN, 2]))
    assert gap_codes(line, np.array([True, False]), reference)[1, 1] == gap_code(2, True)
    assert gap_codes(line, np.array([False, False]), reference)[1, 1] == gap_code(THIN, True)
    assert gap_codes(line, np.array([True, True]), reference)[1, 1] == gap_code(THIN, False)
    assert len(set(map(tuple, GAP_COLOURS))) == len(GAP_COLOURS)  # every code its own colour


def test_the_box_plots_wrap_into_rows_of_four(drawn: list[Figure]) -> None:
    assert {"thin_recall", "thin_gaps"} <= set(BOXPLOT_METRICS) and len(BOXPLOT_METRICS) == 9
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        [
            {"variant": v, **{m: rng.random() for m in BOXPLOT_METRICS}}
            for v in ("unet", "unet_mip")
            for _ in "ab"
        ]
    )
    save_metric_boxplots(table, BOXPLOT_METRICS, ["unet", "unet_mip"], "unused.png", "test")
    (figure,) = drawn
    panels = [ax for ax in figure.axes if ax.get_visible()]
    rows = [ax.get_subplotspec().rowspan.start for ax in panels]
    assert rows == [0] * 4 + [1] * 4 + [2] and len(figure.axes) == 12
    titles = [ax.get_title().replace("\n", " ") for ax in panels]
    for title, metric in zip(titles, BOXPLOT_METRICS, strict=True):
        assert title.startswith(PRESENTATION[metric].description), (title, metric)


def test_figure_functions_write_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = np.zeros((24, 20, 12), np.uint8)
    label[5:19, 10, 6] = 1
    predictions = {"unet": label.copy(), "unet_mip": np.roll(label, 2, axis=1)}
    views = subject_views(rng.random(label.shape), label, predictions, (0.3, 0.3, 0.6), (0.3, 0.6))
    save_subject_overlays(views, tmp_path / "overlay.png", "sub1", "fold 0")
    save_gap_maps(views, tmp_path / "gaps.png", "sub1", "fold 0")

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
    for name in ("overlay", "gaps", "box", "curves"):
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
