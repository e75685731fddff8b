"""Every variant's overlay of one test subject beside the image MIP, with a zoom where they differ."""

from spockmip.data.subjects import load_subject
from spockmip.files.volumes import load_mask
from spockmip.reporting.figures import save_subject_overlays
from spockmip.runtime.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
params = snakemake.params
subject = load_subject(snakemake.input.image, snakemake.input.label)
predictions = {
    variant: load_mask(path, reference=snakemake.input.label)
    for variant, path in zip(params.variants, snakemake.input.predictions, strict=True)
}
save_subject_overlays(
    subject.image, subject.label, predictions, snakemake.output[0], snakemake.wildcards.subject, params.models
)
