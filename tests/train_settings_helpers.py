"""The workflow settings file that the ``spockmip train --config`` tests read (two variants, tiny runs)."""

SETTINGS = {
    "dataset": {"name": "cli"},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 4,
                 "patches_per_epoch": 8, "epochs": 1, "seed": 5},
    "variants": {
        "plain": {"model": "unet"},
        "mip": {"model": "unetmss", "mip_axis": "z", "epochs": 2, "baseline": "plain"},
    },
}  # fmt: skip
