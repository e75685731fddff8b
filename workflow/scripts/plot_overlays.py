"""Every variant's overlay and gap map of one test subject, both zoomed where the variants differ most on
the thin centre line."""

from spockmip.data.subjects import load_subject
from spockmip.files.volumes import load_mask, load_mask_and_spacing
from spockmip.reporting.figures import save_gap_maps, save_subject_overlays, subject_views
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
image = load_subject(snakemake.input.image).image
# The label's own voxel size bins its centre line by radius, as the metrics do.
label, spacing = load_mask_and_spacing(snakemake.input.label, reference=snakemake.input.image)
predictions = {
    variant: load_mask(path, reference=snakemake.input.label)
    for variant, path in zip(params.variants, snakemake.input.predictions, strict=True)
}
views = subject_views(image, label, predictions, spacing, params.radius_edges_mm)
subject = snakemake.wildcards.subject
save_subject_overlays(views, snakemake.output.overlays, subject, params.models)
save_gap_maps(views, snakemake.output.gaps, subject, params.models)
