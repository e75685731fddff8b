"""Segment every test subject with one model (our best.pt, or a published config + safetensors folder)."""

from spockmip.devices import select_device
from spockmip.inference import inference_config_from_settings, predict_file
from spockmip.jobs import start_job
from spockmip.weights import load_weights

start_job(snakemake.log[0], snakemake.threads)
config, threshold = inference_config_from_settings(snakemake.params.inference)
model = load_weights(snakemake.params.weights, snakemake.params.activation)
for image, output in zip(snakemake.input.images, snakemake.output.predictions, strict=True):
    predict_file(
        model,
        image,
        output,
        config,
        threshold,
        device=select_device(),
        orientation=snakemake.params.orientation,
    )
