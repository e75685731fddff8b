"""Every variant's MIP overlay of one test subject, side by side."""

from spockmip.data import load_mask
from spockmip.figures import save_variant_overlays
from spockmip.jobs import start_job

start_job(snakemake.log[0], snakemake.threads)
label = load_mask(snakemake.input.label[0])
predictions = {
    variant: load_mask(path, reference=snakemake.input.label[0])
    for variant, path in zip(snakemake.params.variants, snakemake.input.predictions, strict=True)
}
save_variant_overlays(label, predictions, snakemake.output[0], snakemake.params.subject)
