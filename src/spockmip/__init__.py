"""spockmip: 3D cerebral-vessel segmentation with MIP-loss (SPOCKMIP) and deformation-aware (DS6) training."""

__version__ = "0.1.0"
