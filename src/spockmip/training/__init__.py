"""Training one (variant, fold): the resumable loop, what a run writes, what makes a run resumable."""
