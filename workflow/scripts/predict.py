"""Segment subjects with one model, or with the mean probability of several (a fold ensemble).

params.weights lists the weights sources (our best.pt files, or a published config + safetensors folder);
params.predictions names each image's segmentation.
"""

from spockmip.devices import select_device
from spockmip.inference import inference_config_from_settings, predict_file
from spockmip.jobs import start_job
from spockmip.weights import load_weights

start_job(snakemake.log[0], snakemake.threads)
config, threshold = inference_config_from_settings(snakemake.params.inference)
models = [load_weights(source, snakemake.params.activation) for source in snakemake.params.weights]
for image, output in zip(snakemake.input.images, snakemake.params.predictions, strict=True):
    predict_file(
        models,
        image,
        output,
        config,
        threshold,
        device=select_device(),
        orientation=snakemake.params.orientation,
    )
