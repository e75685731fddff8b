"""Gather per-subject metrics (raw, and post-processed where given) and write one summary table (CSV,
Markdown, LaTeX, HTML) with its note, and the table's provenance record.

Without params.statistics the table is descriptive; with it, each variant is compared with its baseline
over subjects (the rows must then be one per subject and variant).
"""

from spockmip.evaluation.scoring import ScoringSettings, write_metrics
from spockmip.reporting.statistics import StatisticsSettings
from spockmip.reporting.tables import (
    gather_metrics,
    postprocessing_text,
    read_choices,
    summarise,
    table_note,
    topology_text,
    write_summary,
)
from spockmip.runtime.jobs import start_job
from spockmip.runtime.records import Stopwatch, write_file_record

watch = Stopwatch.start()
start_job(snakemake.log[0], snakemake.threads)
params, inputs, output = snakemake.params, snakemake.input, snakemake.output
table = gather_metrics(inputs.metrics, inputs.get("postprocessed", []))
write_metrics(table, output.metrics)
settings = StatisticsSettings(**params.statistics) if params.statistics else None
summary = summarise(table, params.order, params.baselines, settings)
choices = read_choices(params.choice_runs, inputs.get("choices", []))
topology = topology_text(table, ScoringSettings.of(params.evaluation).betti_matching)
write_summary(
    summary,
    table_note(
        summary, params.observations, settings, postprocessing_text(choices, params.chosen_here), topology
    ),
    output.csv,
    output.markdown,
    output.latex,
    output.html,
)
# How the table was made, beside it: its settings, code, inputs and outputs; the machine and time taken.
write_file_record(
    output.provenance,
    "table",
    params.library,
    {name: value for name, value in params.items() if name != "library"},
    list(inputs),
    [path for name, path in output.items() if name != "provenance"],
    watch,
    snakemake.threads,
)
