"""The networks: 3D U-Nets weight-compatible with the published checkpoints, and loading their weights."""
