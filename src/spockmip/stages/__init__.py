"""One function per stage, the one door both the command line and the workflow go through.

Each validates its inputs and settings, refuses outputs that would overwrite an input, stages its results
so that a failure leaves nothing new behind, and computes: :func:`~spockmip.stages.train.run_training`,
:func:`~spockmip.stages.predict.run_prediction`, :func:`~spockmip.stages.evaluate.run_evaluation` and
:func:`~spockmip.stages.synthesize.run_synthesis`. The ``spockmip`` commands and ``workflow/scripts/`` only
translate their inputs into these calls. The import of a stage loads only what that stage needs.
"""
