"""Training-loop helpers used by sbp_tf.experiment: workdir state and reports."""
