"""Inference: the sliding window, a network read from its checkpoint, and a segmentation's written outputs."""
