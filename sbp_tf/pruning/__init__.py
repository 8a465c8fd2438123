"""Pruning at initialization: scores, masks, rescaling and diagnostics."""

from sbp_tf.pruning.targets import Target, prunable_targets, prunable_attrs  # noqa: F401
