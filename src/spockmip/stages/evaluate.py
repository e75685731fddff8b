"""Evaluation: every metric per subject, from prediction/label pairs, into one or more CSV files.

Torch-free, so evaluation jobs start fast. The CSVs are checked before any volume is read, may not be one
of the inputs nor lie in an input's folder, and are written together only once every subject is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from spockmip.evaluation.scoring import DEFAULT_SCORING, ScoringSettings, evaluate, write_metrics
from spockmip.files.outputs import check_writable, refuse_overwriting_inputs, staged_outputs


def run_evaluation(
    subjects: Sequence[str],
    predictions: Sequence[str | Path],
    labels: Sequence[str | Path],
    outputs: Mapping[str | Path, Sequence[str]],
    orientation: str = "stored",
    columns: Mapping[str, Any] | None = None,
    settings: ScoringSettings = DEFAULT_SCORING,
) -> pd.DataFrame:
    """Score each subject and write the rows of ``outputs[path]``'s subjects to each CSV ``path``.

    ``columns`` are constant columns put first (the variant and fold of a workflow job); ``settings``
    say how every pair is scored. Returns the whole table.

    No CSV may be a prediction or a label, nor lie in their folders: a table written among the volumes it
    scores is mixed into the data it was computed from, and travels wherever that folder is copied, shared
    or cleaned.
    """
    destinations = {Path(path): list(group) for path, group in outputs.items()}
    folders = {Path(p).parent: "the prediction folder" for p in predictions}
    folders |= {Path(p).parent: "the label folder" for p in labels}
    inputs = {Path(p): "the prediction" for p in predictions} | {Path(p): "the label" for p in labels}
    refuse_overwriting_inputs({path: "metrics table" for path in destinations}, folders | inputs)
    for path in destinations:
        check_writable(path)
    table = evaluate(subjects, predictions, labels, orientation, settings)
    for position, (name, value) in enumerate((columns or {}).items()):
        table.insert(position, name, value)
    with staged_outputs() as staging:
        for path, group in destinations.items():
            write_metrics(table[table["subject"].isin(group)], staging.path(path))
    return table
