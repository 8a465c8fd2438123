"""Helpers of sbp_tf.experiment's training loop: workdir state, reports."""
