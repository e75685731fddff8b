"""Scoring: every metric of a prediction against its label, one row per subject."""
